"""Body weight / height Observations (FHIR R4B vital signs) from PatientWeight (0010,1030) and PatientSize
(0010,1020) of the Patient Study module (PS3.3 C.7.2.2).

LOINC 29463-7 "Body weight" in kg and 8302-2 "Body height" in cm (DICOM stores metres; the HL7 vital-signs profile
and the German base profile bind body height to ``cm`` or ``[in_i]``, so metres are converted to UCUM ``cm`` in
every mode), category
vital-signs, subject the Patient, partOf and derivedFrom the ImagingStudy (R4B Observation allows both),
effectiveDateTime = the study's ``started``, else the earliest series ``started`` (same time-zone rules).
Implausible values (≤ 0, weight > 700 kg, height > 3 m, checked on the DICOM value) are not emitted and are warned
about. Default id: UUIDv5 of StudyInstanceUID + LOINC code.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from streamer.dicom import tags as t
from streamer.dicom import values as dv
from streamer.fhir import ids
from streamer.fhir.common import LOINC, UCUM, concept, decimal
from streamer.fhir.context import StudyContext

_OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

# (tag, keyword, LOINC, display, DICOM unit, plausible maximum in it, UCUM unit, power of ten to it)
VITALS: tuple[tuple[str, str, str, str, str, float, str, int], ...] = (
    (t.PatientWeight, "PatientWeight", "29463-7", "Body weight", "kg", 700.0, "kg", 0),
    (t.PatientSize, "PatientSize", "8302-2", "Body height", "m", 3.0, "cm", 2),
)


def _scaled(value: float, power: int) -> float:
    """``value * 10**power`` without binary noise (1.75 m -> 175 cm, not 175.00000000000003)."""
    if power == 0:
        return value
    return float(Decimal(repr(value)).scaleb(power))


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
    for tag, keyword, loinc, display, unit, maximum, ucum, power in VITALS:
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
        quantity = decimal(_scaled(value, power))
        obs["valueQuantity"] = {"value": quantity, "unit": ucum, "system": UCUM, "code": ucum}
        obs["derivedFrom"] = [dict(study_ref)]
        out.append(obs)
    return out
