"""MII modality extensions of X-ray series: CT (``modalitaet-ct``) and MG/CR/DX (``modalitaet-mg-cr-dx``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamer.dicom import tags as t
from streamer.fhir import terminology
from streamer.fhir.mii.common import (
    URL,
    Dataset,
    Extension,
    complex_extension,
    distinct,
    series_number,
    sub_quantity,
    tag_reader,
    texts,
)


def xray_subs(
    instances: Sequence[Dataset], w: list[str] | None, label: str
) -> list[Extension | None]:
    """KVP, exposureTime, exposure, xRayTubeCurrent, shared by CT and MG/CR/DX.

    Exposure time, exposure and tube current fall back to their micro-unit elements (µs, µAs, µA)."""
    return [
        sub_quantity(
            "KVP", series_number(instances, tag_reader(t.KVP), f"{label} KVP", w), "kilovolt", "kV"
        ),
        sub_quantity(
            "exposureTime",
            series_number(
                instances,
                tag_reader(t.ExposureTime, fallback=(t.ExposureTimeInuS, 1e-3)),
                f"{label} ExposureTime",
                w,
            ),
            "milliseconds",
            "ms",
        ),
        sub_quantity(
            "exposure",
            series_number(
                instances,
                tag_reader(t.Exposure, fallback=(t.ExposureInuAs, 1e-3)),
                f"{label} Exposure",
                w,
            ),
            "milliampere second",
            "mA.s",
        ),
        sub_quantity(
            "xRayTubeCurrent",
            series_number(
                instances,
                tag_reader(t.XRayTubeCurrent, fallback=(t.XRayTubeCurrentInuA, 1e-3)),
                f"{label} XRayTubeCurrent",
                w,
            ),
            "milliampere",
            "mA",
        ),
    ]


def ct(instances: Sequence[Dataset], w: list[str] | None, mod: str) -> Extension | None:
    """``mii-ex-bildgebung-modalitaet-ct``: CTDIvol (0018,9345) mGy + X-ray parameters + kernel."""
    kernels = distinct(k for ds in instances for k in texts(ds, t.ConvolutionKernel))
    return complex_extension(
        URL.CT,
        [
            sub_quantity(
                "CTDIvol",
                series_number(instances, tag_reader(t.CTDIvol), "CT CTDIvol", w),
                "milligray",
                "mGy",
            ),
            *xray_subs(instances, w, "CT"),
            {"url": "convolutionalKernel", "valueString": "\\".join(kernels)} if kernels else None,
        ],
    )


def mg_cr_dx(instances: Sequence[Dataset], w: list[str] | None, mod: str) -> Extension | None:
    """``mii-ex-bildgebung-modalitaet-mg-cr-dx``; View Position (0018,5101) via CID 4010/4014.

    One view position in the series gives a coded concept (text only when the table has no code);
    several are kept as text only, with a warning.
    """
    subs = xray_subs(instances, w, "MG/CR/DX")
    views = distinct(v for ds in instances for v in texts(ds, t.ViewPosition))
    if len(views) == 1:
        concept: dict[str, Any] = {"text": views[0]}
        coding = terminology.view_position(views[0], mod)
        if coding is not None:
            concept["coding"] = [coding]
        subs.append({"url": "viewPosition", "valueCodeableConcept": concept})
    elif len(views) > 1:
        subs.append({"url": "viewPosition", "valueCodeableConcept": {"text": "\\".join(views)}})
        if w is not None:
            w.append("MII viewPosition (0018,5101): instances differ; kept as text only")
    return complex_extension(URL.MG_CR_DX, subs)
