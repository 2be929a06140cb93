"""Body weight / height Observations (FHIR R4B vital signs) from PatientWeight (0010,1030) and PatientSize
(0010,1020) of the Patient Study module (PS3.3 C.7.2.2).

LOINC 29463-7 "Body weight" in kg and 8302-2 "Body height" in m (DICOM stores metres; UCUM ``m``), category
vital-signs, subject the Patient, partOf and derivedFrom the ImagingStudy (R4B Observation allows both),
effectiveDateTime = the study's ``started``, else the earliest series ``started`` (same time-zone rules). Implausible values (≤ 0, weight > 700 kg,
height > 3 m) are not emitted and are warned about. Default id: UUIDv5 of StudyInstanceUID + LOINC code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamer.dicom import tags as t
from streamer.dicom import values as dv
from streamer.fhir import ids
from streamer.fhir.common import LOINC, UCUM, concept, decimal
from streamer.fhir.context import StudyContext

_OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

# (tag, keyword, LOINC, display, UCUM unit, plausible maximum)
VITALS: tuple[tuple[str, str, str, str, str, float], ...] = (
    (t.PatientWeight, "PatientWeight", "29463-7", "Body weight", "kg", 700.0),
    (t.PatientSize, "PatientSize", "8302-2", "Body height", "m", 3.0),
)


def build_observations(
    ctx: StudyContext,
    subject: Mapping[str, Any],
    study_ref: Mapping[str, Any],
    effective: str | None,
) -> list[dict[str, Any]]:
    """The vital-sign Observations of the study (empty when ``add_vital_signs`` is off)."""
    if not ctx.options.add_vital_signs:
        return []
    out: list[dict[str, Any]] = []
    for tag, keyword, loinc, display, unit, maximum in VITALS:
        value = ctx.parsed(ctx.instances, tag, keyword, dv.parse_ds)
        if value is None:
            continue
        if not 0 < value <= maximum:
            ctx.warnings.add(
                f"{keyword} ({tag[:4]},{tag[4:]}): implausible value (≤ 0 or > {maximum:g} {unit}); "
                "no Observation emitted"
            )
            continue
        rid = ids.resource_id(
            "Observation", ctx.options, ctx.view, loinc, ("study", ctx.study_uid, loinc)
        )
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "id": rid,
            "status": "final",
            "category": [concept(_OBS_CATEGORY, "vital-signs", "Vital Signs")],
            "code": {
                "coding": [{"system": LOINC, "code": loinc, "display": display}],
                "text": display,
            },
            "subject": dict(subject),
            "partOf": [dict(study_ref)],
        }
        if effective:
            obs["effectiveDateTime"] = effective
        else:
            ctx.warnings.add(
                f"{keyword}: no study or series date; Observation without effective time"
            )
        obs["valueQuantity"] = {"value": decimal(value), "unit": unit, "system": UCUM, "code": unit}
        obs["derivedFrom"] = [dict(study_ref)]
        out.append(obs)
    return out
