"""Profile mode ``mii``: the MII-KDS Bildgebung content (the German Medical Informatics Initiative's
imaging profiles) added to the core resources.

The content itself (extensions, profile URLs) comes from ``streamer.fhir.mii``; this module places it:
``meta.profile`` on ImagingStudy, Device and the vital-sign Observations, and on the Patient the MII Person
Patient profile when the Patient has what that profile asks for (``mii/person.py``); the study extensions
(bildgebungsgrund, gewicht / groesse referencing the weight / height Observations by fullUrl); the per-modality
series extensions (from all the series' instances); the instanz-details extension on every listed instance.
"""

from __future__ import annotations

from typing import Any

from streamer.dicom import json_model as jm
from streamer.dicom import tags as t
from streamer.fhir import ids, mii
from streamer.fhir.context import StudyContext
from streamer.fhir.mii.person import PATIENT, claims_patient_profile


def _with_profile(resource: dict[str, Any], url: str | None) -> dict[str, Any]:
    """``resource`` with ``url`` added to ``meta.profile``; meta placed right after resourceType/id."""
    if not url:
        return resource
    meta = dict(resource.get("meta", {}))
    meta["profile"] = [*meta.get("profile", []), url]
    head = {"resourceType": resource["resourceType"], "id": resource["id"], "meta": meta}
    return {**head, **{k: v for k, v in resource.items() if k not in head}}


def _with_extensions(element: dict[str, Any], extensions: list[dict[str, Any]]) -> dict[str, Any]:
    """``element`` with ``extension`` placed first (FHIR JSON order: id, extension, ...)."""
    if not extensions:
        return element
    head: dict[str, Any] = {k: element[k] for k in ("resourceType", "id", "meta") if k in element}
    rest = {k: v for k, v in element.items() if k not in head and k != "extension"}
    return {**head, "extension": [*element.get("extension", []), *extensions], **rest}


def apply_profile(ctx: StudyContext, resources: list[dict[str, Any]]) -> None:
    """Add the MII profile content to the study's resources (in place; the list items may be replaced)."""
    notes: list[str] = []
    vitals: dict[str, str] = {}
    for i, r in enumerate(resources):
        if r["resourceType"] == "Observation":
            loinc = r["code"]["coding"][0]["code"]
            resources[i] = _with_profile(r, mii.profile_url("Observation", loinc))
            vitals[loinc] = ids.full_url("Observation", r["id"])
        elif r["resourceType"] == "Device":
            resources[i] = _with_profile(r, mii.profile_url("Device"))
        elif r["resourceType"] == "Patient" and claims_patient_profile(r):
            resources[i] = _with_profile(r, PATIENT)
    for i, r in enumerate(resources):
        if r["resourceType"] != "ImagingStudy":
            continue
        r = _with_profile(r, mii.profile_url("ImagingStudy"))
        by_sop = {jm.first(ds, t.SOPInstanceUID): ds for ds in ctx.instances}
        series_out = []
        for s in r.get("series", []):
            insts = ctx.series.get(s["uid"], [])
            s_ext = mii.series_extensions(s["modality"]["code"], insts, warnings=notes)
            if "instance" in s:
                s = dict(s)
                s["instance"] = [
                    _with_extensions(
                        inst, mii.instance_extensions(by_sop[inst["uid"]], warnings=notes)
                    )
                    if inst["uid"] in by_sop
                    else inst
                    for inst in s["instance"]
                ]
            series_out.append(_with_extensions(s, s_ext))
        r["series"] = series_out
        study_ext = mii.study_extensions(
            ctx.instances,
            weight_ref=vitals.get("29463-7"),
            height_ref=vitals.get("8302-2"),
            warnings=notes,
        )
        resources[i] = _with_extensions(r, study_ext)
    ctx.warnings.extend(notes)
