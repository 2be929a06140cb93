"""ImagingStudy (FHIR R4B) from one study's instances.

Mapping per the HL7 ImagingStudy DICOM mapping (R4B imagingstudy-mappings.html) and notes:
identifier (StudyInstanceUID as ``urn:dicom:uid``/``urn:oid:``; AccessionNumber type ACSN with the system/assigner
of IssuerOfAccessionNumberSequence (0008,0051); StudyID), status ``available``, modality (series modalities, then
ModalitiesInStudy (0008,0061)), subject, started (StudyDate/StudyTime + TimezoneOffsetFromUTC), basedOn
(accession as a logical ServiceRequest reference), referrer (0008,0090), interpreter (0008,1060), endpoint,
numberOfSeries/-Instances (counted), procedureCode (0008,1032), location (0008,1040), reasonCode (0040,100A),
(0040,1002), (0040,1012) also inside (0040,0275)/(0040,A370), description (0008,1030), series[] and instances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from streamer.dicom import json_model as jm
from streamer.dicom import tags as t
from streamer.dicom import values as dv
from streamer.fhir import terminology as _codes
from streamer.fhir.common import (
    V2_0203,
    clean_code,
    clean_text,
    codeable_from_item,
    coding_from_item,
    collect,
    concept,
    dicom_uid_identifier,
    entity_system,
    person_display,
)
from streamer.fhir.context import StudyContext, distinct_elements, slim_element, tag_label

_UINT_MAX = 2_147_483_647
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
# series.performer.function is bound (extensible) to series-performer-function: CON, VRF, PRF, SPRF, REF of
# v3-ParticipationType. The Device performer gets no function: none of these codes says "the device that
# acquired the series", and an out-of-set code (DEV) only earns a validator warning; the actor's type says it.
_FUNCTION = {"PRF": "performer", "SPRF": "secondary performer"}


def acquisition_modalities() -> frozenset[str]:
    """DICOM PS3.16 CID 29 "Acquisition Modality" codes (``terminology/data/modalities.json``).

    R4B ImagingStudy.modality lists only acquisition modalities (definition: "those in the DICOM Context Group 29").
    """
    return _codes.modality_group(29)


def study_modalities(profile: str) -> frozenset[str]:
    """The codes ImagingStudy.modality may list: CID 29 (R4B); in MII mode CID 33 "Modality", to which the MII
    Bildgebungsstudie profile binds ``modality`` (required), so SR, SEG, RTSTRUCT, ... are listed there too."""
    return _codes.modality_group(33 if profile == "mii" else 29)


def _function(code: str) -> dict[str, Any]:
    """series.performer.function (v3 ParticipationType)."""
    return concept(_PARTICIPATION, code, _FUNCTION[code])


def _unsigned(ctx: StudyContext, value: int | None, label: str) -> int | None:
    if value is None:
        return None
    if 0 <= value <= _UINT_MAX:
        return value
    ctx.warnings.add(f"{label}: out of range for unsignedInt, dropped")
    return None


def _displays(insts: Sequence[jm.Dataset], tag: str) -> list[str]:
    """Distinct PN displays of ``tag`` over ``insts`` (each distinct element parsed once)."""
    displays: list[str] = []
    for elem in distinct_elements(insts, tag):
        for groups in jm.person_names({tag: elem}, tag):
            d = person_display(groups)
            if d:
                displays.append(d)
    return collect(displays)


def _names(ctx: StudyContext, tag: str) -> list[dict[str, str]]:
    """Distinct PN values of ``tag`` over the study, as Reference.display (no Practitioner is invented)."""
    return [{"display": d} for d in _displays(ctx.instances, tag)]


def _request_containers(ctx: StudyContext) -> list[jm.Dataset]:
    """The datasets that carry request attributes: each instance with distinct request data (top level) and
    its RequestAttributesSequence (0040,0275) and ReferencedRequestSequence (0040,A370) items.

    Every instance of a study usually carries the same request data, so instances are compared by those
    elements first (as given, then as slimmed) and only the first of each kind is looked into."""
    containers: list[jm.Dataset] = []
    seen_given: list[list[Any]] = []
    seen_elements: list[list[Any]] = []
    for ds in ctx.instances:
        given = [ds.get(tag) for tag in _REQUEST_TAGS]
        if given in seen_given:
            continue
        seen_given.append(given)
        elements = [slim_element(e) for e in given]  # equal elements as slimmed count as the same
        if elements in seen_elements:
            continue
        seen_elements.append(elements)
        containers.append(ds)
        containers.extend(jm.items(ds, t.RequestAttributesSequence))
        containers.extend(jm.items(ds, t.ReferencedRequestSequence))
    return containers


def _accession(ctx: StudyContext) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Accession identifier (type ACSN; system/assigner from (0008,0051)) and the same as basedOn reference."""
    value = clean_text(ctx.text(ctx.instances, t.AccessionNumber, "AccessionNumber"))
    if value is None:
        return None
    ident: dict[str, Any] = {"use": "usual", "type": concept(V2_0203, "ACSN", "Accession ID")}
    issuers = [
        i for ds in ctx.instances[:1] for i in jm.items(ds, t.IssuerOfAccessionNumberSequence)
    ]
    if issuers:
        system = entity_system(issuers[0])
        local = clean_text(jm.first(issuers[0], t.LocalNamespaceEntityID))
        if system:
            ident["system"] = system
        if local:
            ident["assigner"] = {"display": local}
    ident["value"] = value
    based_on = {"type": "ServiceRequest", "identifier": orjson.loads(orjson.dumps(ident))}
    return ident, based_on


# The top-level elements that carry request data (directly or in their items), compared per instance.
_REQUEST_TAGS = (
    t.ReasonForRequestedProcedureCodeSequence,
    t.ReasonForPerformedProcedureCodeSequence,
    t.ReasonForTheRequestedProcedure,
    t.RequestedProcedureCodeSequence,
    t.RequestedProcedureID,
    t.ScheduledProcedureStepID,
    t.RequestAttributesSequence,
    t.ReferencedRequestSequence,
)


def _append_new(out: list[dict[str, Any]], seen: set[str], ccs: Sequence[dict[str, Any]]) -> None:
    for cc in ccs:
        key = repr(sorted(cc.items()))
        if key not in seen:
            seen.add(key)
            out.append(cc)


def _reason_codes(ctx: StudyContext, containers: Sequence[jm.Dataset]) -> list[dict[str, Any]]:
    """Reasons, each its own CodeableConcept: the coded requested (0040,100A) and performed (0040,1012)
    reasons (text = their CodeMeaning), then the free-text Reason for the Requested Procedure (0040,1002) as
    an entry with only ``text`` (never merged into a coded reason: the text is the request's, the code may be
    the performed procedure's); top level and inside the RequestAttributesSequence (0040,0275) and
    ReferencedRequestSequence (0040,A370) items; de-duplicated."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for c in containers:
        coded = [
            cc
            for tag in (
                t.ReasonForRequestedProcedureCodeSequence,
                t.ReasonForPerformedProcedureCodeSequence,
            )
            for item in jm.items(c, tag)
            if (cc := codeable_from_item(item, ctx.schemes)) is not None
        ]
        text = clean_text(jm.first(c, t.ReasonForTheRequestedProcedure))
        if text:
            coded.append({"text": text})
        _append_new(out, seen, coded)
    return out


def _coding_keys(cc: Mapping[str, Any]) -> set[tuple[Any, ...]]:
    """What makes two procedure codes the same: their (system, code) pairs, else their text."""
    keys = {(c.get("system"), c.get("code")) for c in cc.get("coding", ())}
    return keys or {("text", cc.get("text"))}


def _procedure_codes(ctx: StudyContext, containers: Sequence[jm.Dataset]) -> list[dict[str, Any]]:
    """procedureCode: the performed ProcedureCodeSequence (0008,1032) of the earliest instance, then the
    RequestedProcedureCodeSequence (0032,1064) items, top level and inside the RequestAttributesSequence
    (0040,0275) / ReferencedRequestSequence (0040,A370) items; a code already listed is not repeated."""
    items = jm.items(ctx.instances[0], t.ProcedureCodeSequence)
    for ds in ctx.instances[1:]:
        if jm.items(ds, t.ProcedureCodeSequence) != items:
            ctx.warnings.add(
                f"{tag_label('ProcedureCodeSequence', t.ProcedureCodeSequence)}: differs across instances; "
                "the earliest instance's is used"
            )
            break
    items = [*items]
    for c in containers:
        items.extend(jm.items(c, t.RequestedProcedureCodeSequence))
    out: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for item in items:
        cc = codeable_from_item(item, ctx.schemes)
        if cc is None:
            continue
        keys = _coding_keys(cc)
        if keys & seen:
            continue
        seen |= keys
        out.append(cc)
    return out


# Identifiers of the request below the accession (PS3.3 C.4.10 / C.4.11): the identifier type has no code in
# the extensible IdentifierType value set, so it is named in text.
_REQUEST_IDS = (
    (t.RequestedProcedureID, "RequestedProcedureID", "Requested Procedure ID"),
    (t.ScheduledProcedureStepID, "ScheduledProcedureStepID", "Scheduled Procedure Step ID"),
)


def _request_references(containers: Sequence[jm.Dataset]) -> list[dict[str, Any]]:
    """basedOn references below the accession: each distinct Requested Procedure ID (0040,1001) and Scheduled
    Procedure Step ID (0040,0009), top level and inside the request items, as a logical ServiceRequest
    reference ``{type: ServiceRequest, identifier: {type: {text}, value}}`` (the requested procedure and its
    scheduled step are what the study fulfils; FHIR models both as ServiceRequest)."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for c in containers:
        for tag, _keyword, label in _REQUEST_IDS:
            value = clean_text(jm.first(c, tag))
            if value and (label, value) not in seen:
                seen.add((label, value))
                out.append(
                    {
                        "type": "ServiceRequest",
                        "identifier": {"type": {"text": label}, "value": value},
                    }
                )
    return out


def _title(ds: jm.Dataset) -> str | None:
    """Instance title: ContentLabel (0070,0080) | ConceptNameCodeSequence (0040,A043) CodeMeaning |
    DocumentTitle (0042,0010) | ImageType (0008,0008) values joined by ``\\`` (HL7 mapping)."""
    label = clean_text(jm.first(ds, t.ContentLabel))
    if label:
        return label
    for item in jm.items(ds, t.ConceptNameCodeSequence):
        meaning = clean_text(jm.first(item, t.CodeMeaning))
        if meaning:
            return meaning
    title = clean_text(jm.first(ds, t.DocumentTitle))
    if title:
        return title
    image_type = [s for v in jm.strings(ds, t.ImageType) if (s := clean_text(v))]
    return "\\".join(image_type) if image_type else None


def _instance(ctx: StudyContext, ds: jm.Dataset) -> dict[str, Any] | None:
    sop = jm.first(ds, t.SOPInstanceUID) or ""
    sop_class = clean_code(jm.first(ds, t.SOPClassUID))
    if sop_class is None or " " in sop_class:
        ctx.warnings.add(
            f"instance {sop}: SOPClassUID (0008,0016) missing or invalid; instance not listed"
        )
        return None
    coding: dict[str, Any] = {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{sop_class}"}
    known = _codes.uid_name(sop_class)
    if known:
        coding["display"] = known
    inst: dict[str, Any] = {"uid": sop, "sopClass": coding}
    raw_number = jm.first_raw(ds, t.InstanceNumber)
    number = dv.parse_is(raw_number)
    if raw_number is not None and number is None:
        ctx.warnings.add(f"{tag_label('InstanceNumber', t.InstanceNumber)}: invalid value dropped")
    number = _unsigned(ctx, number, tag_label("InstanceNumber", t.InstanceNumber))
    if number is not None:
        inst["number"] = number
    title = _title(ds)
    if title:
        inst["title"] = title
    return inst


def _laterality(ctx: StudyContext, insts: Sequence[jm.Dataset]) -> dict[str, Any] | None:
    """Laterality (0020,0060), else ImageLaterality (0020,0062) of the instances -> SNOMED (CID 244)."""
    value = ctx.text(insts, t.Laterality, "Laterality") or ctx.text(
        insts, t.ImageLaterality, "ImageLaterality"
    )
    if value is None:
        return None
    coding = _codes.laterality(value)
    if coding is None and value.strip().upper() != "U":
        ctx.warnings.add("Laterality (0020,0060)/(0020,0062): unmapped value dropped")
    return coding


def _body_site(ctx: StudyContext, insts: Sequence[jm.Dataset]) -> dict[str, Any] | None:
    """BodyPartExamined (0018,0015) -> SNOMED (PS3.16 Annex L), unmapped kept as display text; without it, the
    first AnatomicRegionSequence (0008,2218) item's code (HL7 mapping)."""
    body_part = ctx.text(insts, t.BodyPartExamined, "BodyPartExamined")
    if body_part:
        site = _codes.body_site(body_part)
        if site is not None:
            return site
        text = clean_text(body_part)
        return {"display": text} if text else None
    for ds in insts:
        for region in jm.items(ds, t.AnatomicRegionSequence):
            coding = coding_from_item(region, ctx.schemes)
            if coding:
                return coding
    return None


def _earliest_acquisition(ctx: StudyContext, insts: Sequence[jm.Dataset]) -> str | None:
    """series.started fallback (as dcm4chee-arc): the earliest AcquisitionDateTime (0008,002A), else
    AcquisitionDate/AcquisitionTime (0008,0022)/(0008,0032), of the series' instances."""
    found: list[str] = []
    zone_name = ctx.options.dicom_timezone
    for ds in insts:
        offset = ctx.read(ds, t.TimezoneOffsetFromUTC, "TimezoneOffsetFromUTC", dv.parse_tz_offset)
        dt = ctx.read(ds, t.AcquisitionDateTime, "AcquisitionDateTime", dv.parse_dt)
        if dt is not None:
            value = dv.fhir_datetime(
                dt.date, dt.time, dt.offset if dt.offset is not None else offset, zone_name
            )
        else:
            date = ctx.read(ds, t.AcquisitionDate, "AcquisitionDate", dv.parse_da)
            time = ctx.read(ds, t.AcquisitionTime, "AcquisitionTime", dv.parse_tm)
            value = dv.fhir_datetime(date, time, offset, zone_name)
        if value:
            found.append(value)
    return min(found) if found else None


def series_modality(ctx: StudyContext, insts: Sequence[jm.Dataset]) -> str:
    """The series Modality (0008,0060); ``OT`` (Other) with a warning when absent (it is Type 1)."""
    modality = clean_code(ctx.text(insts, t.Modality, "Modality"))
    if modality is None:
        ctx.warnings.add("Modality (0008,0060) missing in a series: coded as OT (Other)")
        return "OT"
    return modality


def _series(
    ctx: StudyContext,
    uid: str,
    insts: list[dict[str, Any]],
    device_ref: Mapping[str, Any] | None,
) -> dict[str, Any]:
    s: dict[str, Any] = {"uid": uid}
    label = tag_label("SeriesNumber", t.SeriesNumber)
    number = _unsigned(ctx, ctx.parsed(insts, t.SeriesNumber, "SeriesNumber", dv.parse_is), label)
    if number is not None:
        s["number"] = number
    s["modality"] = _codes.modality_coding(series_modality(ctx, insts))
    description = clean_text(ctx.text(insts, t.SeriesDescription, "SeriesDescription"))
    if description:
        s["description"] = description
    s["numberOfInstances"] = len(insts)
    site = _body_site(ctx, insts)
    if site:
        s["bodySite"] = site
    lat = _laterality(ctx, insts)
    if lat:
        s["laterality"] = lat
    started = ctx.datetime(
        insts,
        (t.SeriesDate, "SeriesDate"),
        (t.SeriesTime, "SeriesTime"),
        "series.started",
    ) or _earliest_acquisition(ctx, insts)
    if started:
        s["started"] = started
    performers: list[dict[str, Any]] = []
    if device_ref is not None:
        performers.append({"actor": dict(device_ref)})  # no function: see _FUNCTION
    for tag, fn in ((t.PerformingPhysicianName, "PRF"), (t.OperatorsName, "SPRF")):
        performers.extend(
            {"function": _function(fn), "actor": {"display": d}} for d in _displays(insts, tag)
        )
    if performers:
        s["performer"] = performers
    if ctx.options.add_instances:
        listed = [i for ds in insts if (i := _instance(ctx, ds)) is not None]
        if listed:
            s["instance"] = listed
    return s


def series_order(ctx: StudyContext) -> list[str]:
    """Series UIDs ordered by SeriesNumber (absent last), then UID: independent of arrival order (computed
    once per study: ``ctx.series`` is complete before any mapper runs)."""
    if ctx.series_order is not None:
        return ctx.series_order

    def key(uid: str) -> tuple[int, str]:
        numbers = [dv.parse_is(jm.first_raw(ds, t.SeriesNumber)) for ds in ctx.series[uid]]
        valid = [n for n in numbers if n is not None]
        return (min(valid) if valid else 1 << 62, uid)

    ctx.series_order = sorted(ctx.series, key=key)
    return ctx.series_order


def build_imaging_study(
    ctx: StudyContext,
    study_id: str,
    subject: Mapping[str, Any],
    device_refs: Mapping[str, Mapping[str, Any]],
    endpoint_ref: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The ImagingStudy resource dict. ``device_refs`` maps series UID -> Device reference."""
    study: dict[str, Any] = {"resourceType": "ImagingStudy", "id": study_id}
    identifiers: list[dict[str, Any]] = [dicom_uid_identifier(ctx.study_uid, use="official")]
    accession = _accession(ctx)
    if accession:
        identifiers.append(accession[0])
    study_id_value = clean_text(ctx.text(ctx.instances, t.StudyID, "StudyID"))
    if study_id_value:
        # StudyID (0020,0010) is assigned by the equipment and repeats across sites ("1"): scoped to the
        # study it names (system = the StudyInstanceUID as urn:oid), so it never matches another study's.
        identifiers.append(
            {"use": "secondary", "system": f"urn:oid:{ctx.study_uid}", "value": study_id_value}
        )
    study["identifier"] = identifiers
    study["status"] = "available"

    order = series_order(ctx)
    series = [_series(ctx, uid, ctx.series[uid], device_refs.get(uid)) for uid in order]
    acquisition = study_modalities(ctx.options.profile)
    modalities: dict[str, dict[str, Any]] = {}
    for s in series:
        if s["modality"]["code"] in acquisition:
            modalities.setdefault(s["modality"]["code"], dict(s["modality"]))
    for ds in ctx.instances[:1]:
        for m in jm.strings(ds, t.ModalitiesInStudy):
            code = clean_code(m)
            if code and code not in modalities and code.upper() in acquisition:
                modalities[code] = _codes.modality_coding(code)
    if modalities:
        study["modality"] = list(modalities.values())
    study["subject"] = dict(subject)
    started = ctx.datetime(
        ctx.instances, (t.StudyDate, "StudyDate"), (t.StudyTime, "StudyTime"), "started"
    )
    if started:
        study["started"] = started
    containers = _request_containers(ctx)
    based_on = ([accession[1]] if accession else []) + _request_references(containers)
    if based_on:
        study["basedOn"] = based_on
    referrers = _names(ctx, t.ReferringPhysicianName)
    if referrers:
        study["referrer"] = referrers[0]
        if len(referrers) > 1:
            ctx.warnings.add(
                "ReferringPhysicianName (0008,0090): several values; the first is used"
            )
    interpreters = _names(ctx, t.NameOfPhysiciansReadingStudy)
    if interpreters:
        study["interpreter"] = interpreters
    if endpoint_ref is not None:
        study["endpoint"] = [dict(endpoint_ref)]
    study["numberOfSeries"] = len(series)
    study["numberOfInstances"] = sum(s["numberOfInstances"] for s in series)
    procedures = _procedure_codes(ctx, containers)
    if procedures:
        study["procedureCode"] = procedures
    department = clean_text(
        ctx.text(ctx.instances, t.InstitutionalDepartmentName, "InstitutionalDepartmentName")
    )
    if department:
        study["location"] = {"display": department}
    reasons = _reason_codes(ctx, containers)
    if reasons:
        study["reasonCode"] = reasons
    description = clean_text(ctx.text(ctx.instances, t.StudyDescription, "StudyDescription"))
    if description:
        study["description"] = description
    study["series"] = series
    return study
