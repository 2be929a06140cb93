"""MII study-level content: ``meta.profile`` URLs and the ImagingStudy extensions."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from streamer.dicom import tags as t
from streamer.dicom.json_model import items, strings
from streamer.fhir.mii.common import URL, Extension, distinct

_SPACES = re.compile(r"\s+")


def profile_url(resource_type: str, kind: str | None = None) -> str | None:
    """The MII profile URL for ``meta.profile`` of a resource, or None when MII defines none.

    ImagingStudy -> ``mii-pr-bildgebung-bildgebungsstudie``; Device -> ``mii-pr-bildgebung-geraet``;
    Observation with ``kind`` ``"body-weight"`` / ``"29463-7"`` or ``"body-height"`` / ``"8302-2"``
    -> the German base vital-sign profiles the MII ``gewicht`` / ``groesse`` extensions reference
    (they need LOINC code, category vital-signs and a UCUM value). Other Observations (findings:
    ``mii-pr-bildgebung-radiologische-beobachtung``) are not produced from DICOM, so None.
    """
    if resource_type == "ImagingStudy":
        return URL.IMAGING_STUDY
    if resource_type == "Device":
        return URL.DEVICE
    if resource_type == "Observation":
        if kind in ("body-weight", "29463-7"):
            return URL.DE_WEIGHT
        if kind in ("body-height", "8302-2"):
            return URL.DE_HEIGHT
    return None


def study_extensions(
    instances: Sequence[Mapping[str, Any]],
    *,
    weight_ref: str | None = None,
    height_ref: str | None = None,
    warnings: list[str] | None = None,
) -> list[Extension]:
    """ImagingStudy extensions: ``bildgebungsgrund``, ``gewicht``, ``groesse``.

    bildgebungsgrund (valueString) = Reason for the Requested Procedure (0040,1002), top level or
    in Request Attributes Sequence (0040,0275) items, all distinct values of all instances joined
    with ``"; "``. gewicht / groesse = ``valueReference`` to the body weight / height Observation
    (e.g. ``"Observation/<id>"`` or the entry's fullUrl), only when given.
    """
    reasons: list[str] = []
    for ds in instances:
        reasons.extend(strings(ds, t.ReasonForTheRequestedProcedure))
        for item in items(ds, t.RequestAttributesSequence):
            reasons.extend(strings(item, t.ReasonForTheRequestedProcedure))
    reasons = distinct(_SPACES.sub(" ", r) for r in reasons)
    out: list[Extension] = []
    if reasons:
        out.append({"url": URL.REASON, "valueString": "; ".join(reasons)})
    if weight_ref:
        out.append({"url": URL.WEIGHT, "valueReference": {"reference": weight_ref}})
    if height_ref:
        out.append({"url": URL.HEIGHT, "valueReference": {"reference": height_ref}})
    return out
