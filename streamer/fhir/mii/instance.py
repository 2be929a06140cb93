"""MII extension of one ``ImagingStudy.series.instance`` (``instanz-details``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from streamer.dicom import tags as t
from streamer.fhir import terminology
from streamer.fhir.mii.common import (
    URL,
    Extension,
    complex_extension,
    numbers,
    pixel_measures,
    slice_thickness_of,
    sub_quantity,
    texts,
)

CS_IMAGE_TYPE: Final = "mii-cs-bildgebung-instance-image-type"


def instance_extensions(
    ds: Mapping[str, Any], *, warnings: list[str] | None = None
) -> list[Extension]:
    """``mii-ex-bildgebung-instanz-details`` for one ``ImagingStudy.series.instance``.

    pixelSpacingX/Y from Pixel Spacing (0028,0030) = [row spacing, column spacing] (PS3.3
    10.7.1.3), so X = 2nd value and Y = 1st; only with exactly two positive numbers (anything else is
    left out with a warning). Enhanced multi-frame: the shared Pixel Measures Sequence (0028,9110).
    sliceThickness (0018,0050) mm. imageType from Image Type (0008,0008): every value stripped;
    values in the MII image-type CodeSystem become codings, the full value is the text.
    burnedInAnnotation from Burned In Annotation (0028,0301) YES/NO.
    Returns ``[]`` when there is nothing to say.
    """
    subs: list[Extension | None] = []
    spacing = numbers(ds, t.PixelSpacing, warnings)
    if not spacing:
        pm = pixel_measures(ds)
        spacing = numbers(pm, t.PixelSpacing, warnings) if pm is not None else []
    if len(spacing) == 2 and all(v > 0 for v in spacing):
        subs.append(sub_quantity("pixelSpacingX", spacing[1], "millimeter", "mm"))
        subs.append(sub_quantity("pixelSpacingY", spacing[0], "millimeter", "mm"))
    elif spacing and warnings is not None:
        warnings.append(
            "MII instance: PixelSpacing (0028,0030) is not two positive numbers; left out"
        )
    subs.append(
        sub_quantity("sliceThickness", slice_thickness_of(ds, warnings), "millimeter", "mm")
    )
    image_type = texts(ds, t.ImageType)
    if image_type:
        codings = [
            c
            for c in (terminology.mii_coding(CS_IMAGE_TYPE, v) for v in image_type)
            if c is not None
        ]
        concept: dict[str, Any] = {"text": "\\".join(image_type)}
        if codings:
            concept["coding"] = list({c["code"]: c for c in codings}.values())
        subs.append({"url": "imageType", "valueCodeableConcept": concept})
    burned = next(iter(texts(ds, t.BurnedInAnnotation)), "").upper()
    if burned in ("YES", "NO"):
        subs.append({"url": "burnedInAnnotation", "valueBoolean": burned == "YES"})
    ext = complex_extension(URL.INSTANCE_DETAILS, subs)
    return [ext] if ext is not None else []
