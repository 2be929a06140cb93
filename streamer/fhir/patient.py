"""Patient (FHIR R4B) from the Patient module (PS3.3 C.7.1.1) of one study's instances.

- identifier: PatientID (0010,0020), system from IssuerOfPatientIDQualifiersSequence (0010,0024) Universal Entity
  ID, else IssuerOfPatientID (0010,0021) when it is an OID/URI; assigner.display = issuer; a type only when the
  qualifiers give an Identifier Type Code (0040,0035) (HL7 v2 table 0203), never an assumed MR.
  OtherPatientIDsSequence (0010,1002) items and OtherPatientIDs (0010,1000) as secondary identifiers.
- name: every PN value (PS3.5 6.2.1): family^given^middle^prefix^suffix -> family, given [given, middle], prefix,
  suffix, without a ``use`` (DICOM does not say which use a name has); Ideographic and Phonetic groups become
  extra HumanNames tagged with the core extension ``iso21090-EN-representation`` (IDE / SYL).
- gender: M/F/O -> male/female/other, any other present value -> unknown (administrative-gender).
- birthDate: DA, full or partial. address: PatientAddress (0010,1040), HL7 v2 XAD ``^`` form or free text,
  with RegionOfResidence / CountryOfResidence. telecom: every PatientTelephoneNumbers (0010,2154) value.
- mothersMaidenName extension from PatientMotherBirthName (0010,1060).

Conflicts between instances: the PatientID/issuer pair the most instances carry wins (earliest on a tie), every
other attribute follows ``common.consensus`` per attribute; each conflict gives a warning naming the tag.
"""

from __future__ import annotations

from typing import Any

from streamer.dicom import json_model as jm
from streamer.dicom import tags as t
from streamer.dicom import values as dv
from streamer.fhir import ids
from streamer.fhir.common import (
    V2_0203,
    as_uri,
    clean_code,
    clean_text,
    concept,
    consensus,
    entity_system,
    name_part,
)
from streamer.fhir.context import StudyContext, tag_label

_GENDER = {"M": "male", "F": "female", "O": "other"}
_EN_REPRESENTATION = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation"
_MAIDEN = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName"


# HL7 v2 table 0203 codes of the IdentifierType value set (R4B valueset-identifier-type): only these are coded;
# another Identifier Type Code is kept as text.
_IDENTIFIER_TYPES = {
    "DL": "Driver's license number",
    "PPN": "Passport number",
    "BRN": "Breed Registry Number",
    "MR": "Medical record number",
    "MCN": "Microchip Number",
    "EN": "Employer number",
    "TAX": "Tax ID number",
    "NIIP": "National Insurance Payor Identifier (Payor)",
    "PRN": "Provider number",
    "MD": "Medical License number",
    "DR": "Donor Registration Number",
    "ACSN": "Accession ID",
    "UDI": "Universal Device Identifier",
    "SNO": "Serial Number",
    "SB": "Social Beneficiary Identifier",
    "PLAC": "Placer Identifier",
    "FILL": "Filler Identifier",
    "JHN": "Jurisdictional health number (Canada)",
}


def _identifier_type(ds: jm.Dataset) -> dict[str, Any] | None:
    """Identifier.type from the Identifier Type Code (0040,0035) of the IssuerOfPatientIDQualifiersSequence
    (0010,0024) (HL7 v2 table 0203), or None: DICOM says nothing else about what kind of identifier it is."""
    for q in jm.items(ds, t.IssuerOfPatientIDQualifiersSequence):
        code = clean_code(jm.first(q, t.IdentifierTypeCode))
        if code:
            display = _IDENTIFIER_TYPES.get(code.upper())
            if display:
                return concept(V2_0203, code.upper(), display)
            return {"text": code}
    return None


def _issuer_system(ds: jm.Dataset) -> tuple[str | None, str | None]:
    """(system URI, assigner display) of the PatientID namespace of ``ds`` (or of an OtherPatientIDs item)."""
    issuer = clean_text(jm.first(ds, t.IssuerOfPatientID))
    system = None
    for q in jm.items(ds, t.IssuerOfPatientIDQualifiersSequence):
        system = entity_system(q)
        if system:
            break
    if system is None and issuer:
        system = as_uri(issuer) if ":" in issuer or issuer[:1] in "012" else None
    return system, issuer


def patient_key(ds: jm.Dataset) -> tuple[str, str] | None:
    """(PatientID, IssuerOfPatientID) of one instance, or None without PatientID."""
    pid = clean_text(jm.first(ds, t.PatientID))
    if pid is None:
        return None
    return pid, clean_text(jm.first(ds, t.IssuerOfPatientID)) or ""


def _human_name(group: str, representation: str | None) -> dict[str, Any] | None:
    family, given, middle, prefix, suffix = (name_part(c) for c in dv.pn_components(group))
    name: dict[str, Any] = {}
    if representation:
        name["extension"] = [{"url": _EN_REPRESENTATION, "valueCode": representation}]
    if family:
        name["family"] = family
    given_names = [g for g in (given, middle) if g]
    if given_names:
        name["given"] = given_names
    if prefix:
        name["prefix"] = [prefix]
    if suffix:
        name["suffix"] = [suffix]
    if not (family or given_names or prefix or suffix):
        return None
    return name


def human_names(values: list[dict[str, str]]) -> list[dict[str, Any]]:
    """All PN values -> HumanNames (Alphabetic, then Ideographic, Phonetic); no ``use``: DICOM does not say
    whether a name is the official, usual or another one."""
    out: list[dict[str, Any]] = []
    for groups in values:
        for key, rep in (("Alphabetic", None), ("Ideographic", "IDE"), ("Phonetic", "SYL")):
            group = groups.get(key)
            if group:
                name = _human_name(group, rep)
                if name is not None:
                    out.append(name)
    return out


def _address(raw: str | None, region: str | None, country: str | None) -> dict[str, Any] | None:
    addr: dict[str, Any] = {}
    if raw:
        if "^" in raw:
            parts = [clean_text(p) for p in raw.split("^")] + [None] * 6
            lines = [p for p in parts[0:2] if p]
            if lines:
                addr["line"] = lines
            for key, value in zip(
                ("city", "state", "postalCode", "country"), parts[2:6], strict=True
            ):
                if value:
                    addr[key] = value
        else:
            text = clean_text(raw)
            if text:
                addr["text"] = text
    if region and "state" not in addr:
        addr["state"] = region
    if country and "country" not in addr:
        addr["country"] = country
    return addr or None


def _identify(ident: dict[str, Any], value: str, system: str | None, issuer: str | None) -> None:
    """Fill an Identifier's system, value and assigner, in that (serialized) order."""
    if system:
        ident["system"] = system
    ident["value"] = value
    if issuer:
        ident["assigner"] = {"display": issuer}


def _other_ids(ctx: StudyContext, main: tuple[str, str] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = {main} if main else set()
    ds = ctx.instances[0]
    for item in jm.items(ds, t.OtherPatientIDsSequence):
        key = patient_key(item)
        if key is None or key in seen:
            continue
        seen.add(key)
        system, issuer = _issuer_system(item)
        ident: dict[str, Any] = {"use": "secondary"}
        kind = _identifier_type(item)
        text = clean_text(jm.first(item, t.TypeOfPatientID))
        if kind is None and text:
            kind = {"text": text}  # TEXT, RFID, BARCODE (PS3.3 C.7.1.1): the form, as given
        if kind:
            ident["type"] = kind
        _identify(ident, key[0], system, issuer)
        out.append(ident)
    for value in jm.strings(ds, t.OtherPatientIDs):
        text = clean_text(value)
        if text and (text, "") not in seen and not any(k[0] == text for k in seen):
            seen.add((text, ""))
            out.append({"use": "secondary", "value": text})
    return out


def patient_id(ctx: StudyContext) -> tuple[str, tuple[str, str] | None]:
    """The Patient id and the winning (PatientID, issuer) pair.

    Default id: UUIDv5 of PatientID **and** IssuerOfPatientID; without PatientID, a patient scoped to the study
    (UUIDv5 of the StudyInstanceUID), so unrelated studies are never merged.
    """
    key = consensus(
        [patient_key(ds) for ds in ctx.instances],
        "PatientID (0010,0020)/IssuerOfPatientID (0010,0021)",
        ctx.warnings,
    )
    if key is None:
        ctx.warnings.add("PatientID (0010,0020) absent: the Patient is scoped to this study")
        parts: tuple[str, ...] = ("study", ctx.study_uid)
    else:
        parts = ("id", key[1], key[0])
    rid = ids.resource_id("Patient", ctx.options, ctx.view, "", parts)
    return rid, key


def build_patient(ctx: StudyContext, rid: str, key: tuple[str, str] | None) -> dict[str, Any]:
    """The Patient resource dict."""
    insts = ctx.instances
    if key is not None and not ctx.uniform(t.PatientID, t.IssuerOfPatientID):
        # patient attributes come from the instances carrying the winning PatientID/issuer (when the elements
        # agree, that is every instance)
        insts = [ds for ds in ctx.instances if patient_key(ds) == key] or ctx.instances
    patient: dict[str, Any] = {"resourceType": "Patient", "id": rid}
    extensions: list[dict[str, Any]] = []
    maiden = consensus(
        [
            tuple(g.get("Alphabetic", "") for g in jm.person_names(ds, t.PatientMotherBirthName))
            for ds in ctx.representatives(insts, t.PatientMotherBirthName)
        ],
        tag_label("PatientMotherBirthName", t.PatientMotherBirthName),
        ctx.warnings,
    )
    if maiden:
        family = name_part(dv.pn_components(maiden[0])[0]) if maiden[0] else None
        if family:
            extensions.append({"url": _MAIDEN, "valueString": family})
    if extensions:
        patient["extension"] = extensions
    identifiers: list[dict[str, Any]] = []
    if key is not None:
        first = insts[0]
        system, issuer = _issuer_system(first)
        ident: dict[str, Any] = {"use": "usual"}
        kind = _identifier_type(first)
        if kind:
            ident["type"] = kind
        _identify(ident, key[0], system, issuer)
        identifiers.append(ident)
    identifiers.extend(_other_ids(ctx, key))
    if identifiers:
        patient["identifier"] = identifiers
    names = consensus(
        [
            tuple(tuple(sorted(g.items())) for g in jm.person_names(ds, t.PatientName))
            for ds in ctx.representatives(insts, t.PatientName)
        ],
        tag_label("PatientName", t.PatientName),
        ctx.warnings,
    )
    if names:
        human = human_names([dict(g) for g in names])
        if human:
            patient["name"] = human
    phones = ctx.texts(insts, t.PatientTelephoneNumbers, "PatientTelephoneNumbers")
    telecom = [
        {"system": "phone", "value": p} for p in dict.fromkeys(clean_text(v) for v in phones) if p
    ]
    if telecom:
        patient["telecom"] = telecom
    present = [ds for ds in insts if jm.has(ds, t.PatientSex)]
    if present:
        sex = ctx.text(present, t.PatientSex, "PatientSex")
        patient["gender"] = _GENDER.get((sex or "").upper(), "unknown")
    birth = ctx.parsed(insts, t.PatientBirthDate, "PatientBirthDate", dv.parse_da)
    if birth:
        patient["birthDate"] = birth
    address = _address(
        ctx.text(insts, t.PatientAddress, "PatientAddress"),
        clean_text(ctx.text(insts, t.RegionOfResidence, "RegionOfResidence")),
        clean_text(ctx.text(insts, t.CountryOfResidence, "CountryOfResidence")),
    )
    if address:
        patient["address"] = [address]
    return patient
