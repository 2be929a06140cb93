"""Code tables DICOM -> FHIR: body sites, laterality, modalities, coding schemes, MII value sets.

Every table is a JSON file in ``streamer/fhir/terminology/data/`` whose ``"source"`` field names
the part of the DICOM standard it comes from (PS3.16 Annex L, CID 29/33/244/4010/4014/18/25/4020/
4021/84, PS3.3 C.8.9.1.1.3, PS3.16 Section 8). A file is read once, on first use, and cached; no
pandas. Lookups return fresh ``dict`` objects (``{"system", "code", "display"}``) the caller may
keep or change; ``None`` means "not mapped", and the caller keeps the original value as text.
Nothing here raises on odd input (any ``str``, empty, padded, lower case).
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import quote

__all__ = [
    "DCM",
    "LOINC",
    "SNOMED",
    "UCUM",
    "body_site",
    "coding",
    "coding_system_uri",
    "designator_system",
    "laterality",
    "mii_coding",
    "modality_coding",
    "modality_group",
    "pet_units",
    "radionuclide",
    "radiopharmaceutical",
    "snomed_ct_from_srt",
    "table_source",
    "uid_name",
    "view_position",
]

SNOMED = "http://snomed.info/sct"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"

_NON_ALNUM = re.compile(r"[^0-9A-Z]+")
_SPACES = re.compile(r"\s+")


@cache
def _table(name: str) -> dict[str, Any]:
    """Load ``data/<name>.json`` once."""
    text = resources.files(__name__).joinpath("data", f"{name}.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def table_source(name: str) -> str:
    """The ``source`` citation of table ``name`` (e.g. ``"body_sites"``)."""
    return str(_table(name)["source"])


def _key(value: str) -> str:
    """Upper case, without padding, spaces, underscores or other punctuation (``' t_spine '``)."""
    return _NON_ALNUM.sub("", value.upper())


def _text_key(value: str) -> str:
    """Case- and whitespace-insensitive key for code meanings."""
    return _SPACES.sub(" ", value.strip()).casefold()


def _coding(system: str, code: str, display: str | None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


# --------------------------------------------------------------------------------------------
# Body Part Examined -> SNOMED CT (PS3.16 Annex L)


@cache
def _body_sites() -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    table = _table("body_sites")
    default_system = table.get("system", SNOMED)
    by_term: dict[str, dict[str, str]] = {}
    by_meaning: dict[str, dict[str, str]] = {}
    for row in table["entries"]:
        code, display = row.get("code"), row.get("display") or ""
        scheme = row.get("scheme")
        system = coding_system_uri(scheme) if scheme else default_system
        if not code or system is None:
            continue
        hit = _coding(system, code, display)
        by_term.setdefault(_key(row["body_part_examined"]), hit)
        if display:
            by_meaning.setdefault(_text_key(display), hit)
    return by_term, by_meaning


def body_site(value: object) -> dict[str, str] | None:
    """SNOMED CT coding for a Body Part Examined (0018,0015) value, per DICOM PS3.16 Annex L.

    Tolerant of case, padding, spaces, underscores and hyphens (``" t_spine"`` -> TSPINE); also
    accepts the Annex L code meaning (``"Abdomen and Pelvis"``). ``None`` when unmapped (including
    the Annex L terms without a SNOMED code such as FETALARM): the caller keeps the text.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    by_term, by_meaning = _body_sites()
    hit = by_term.get(_key(value)) or by_meaning.get(_text_key(value))
    return dict(hit) if hit else None


# --------------------------------------------------------------------------------------------
# Laterality (CID 244)

_LATERALITY_WORDS = {"RIGHT": "R", "LEFT": "L", "BILATERAL": "B", "BOTH": "B"}


@cache
def _laterality() -> dict[str, tuple[str, str]]:
    table = _table("laterality")
    displays = {row["code"]: row["display"] for row in table["entries"]}
    return {term: (code, displays[code]) for term, code in table["dicom_terms"].items()}


def laterality(value: str) -> dict[str, str] | None:
    """SNOMED CT coding for Laterality (0020,0060) / Image Laterality (0020,0062), PS3.16 CID 244.

    ``R`` -> 24028007 Right, ``L`` -> 7771000 Left, ``B`` -> 51440002 Bilateral (case and padding
    ignored; the words RIGHT/LEFT/BILATERAL/BOTH too). ``U`` (unpaired) and anything else -> None.
    """
    if not isinstance(value, str):
        return None
    term = value.strip().upper()
    term = _LATERALITY_WORDS.get(term, term)
    hit = _laterality().get(term)
    return _coding(SNOMED, hit[0], hit[1]) if hit else None


# --------------------------------------------------------------------------------------------
# Modality (CID 29 / CID 33)


def modality_group(cid: int) -> frozenset[str]:
    """The codes of DICOM PS3.16 context group ``cid`` (29 Acquisition Modality or 33 Modality)."""
    return _modality_groups()[cid]


@cache
def _modality_groups() -> dict[int, frozenset[str]]:
    return {int(cid): frozenset(codes) for cid, codes in _table("modalities")["cids"].items()}


def uid_name(uid: str) -> str | None:
    """The registered name of a DICOM UID (PS3.6 Annex A), e.g. of a SOP Class; None when unknown."""
    name: str | None = _table("uid_names")["entries"].get(uid)
    return name


@cache
def _modalities() -> dict[str, str]:
    return {row["code"]: row["display"] for row in _table("modalities")["entries"]}


def modality_coding(code: str) -> dict[str, str]:
    """DCM coding for a Modality (0008,0060) value; display from PS3.16 CID 29/33 when known.

    The code is stripped of padding (an empty code stays empty: the caller decides). Unknown or
    retired modalities get no display, never an invented one.
    """
    value = _SPACES.sub(" ", code).strip() if isinstance(code, str) else ""
    display = _modalities().get(value.upper())
    if display:
        value = value.upper()  # CS values are upper case; " ct" is the known CT
    return _coding(DCM, value, display)


# --------------------------------------------------------------------------------------------
# Coding Scheme Designator -> URI (PS3.16 Section 8)


@cache
def _schemes() -> tuple[dict[str, str], frozenset[str]]:
    uris: dict[str, str] = {}
    legacy: set[str] = set()
    for row in _table("coding_schemes")["entries"]:
        uris[row["designator"].upper()] = row["uri"]
        if row.get("legacy_snomed"):
            legacy.add(row["designator"].upper())
    return uris, frozenset(legacy)


def coding_system_uri(designator: str) -> str | None:
    """FHIR system URI for a DICOM Coding Scheme Designator (0008,0102), per PS3.16 Section 8.

    SCT/SRT/SNM3 -> ``http://snomed.info/sct``, LN -> ``http://loinc.org``, RADLEX ->
    ``http://radlex.org``, DCM, UCUM, NCIt, UMLS, RXNORM, I10, I10C, I9C, C4, MDC, ... (see
    ``data/coding_schemes.json``). Case and padding are ignored. ``None`` when unknown (private
    ``99xxx`` schemes included): the caller keeps the designator and never invents a URI.
    """
    if not isinstance(designator, str):
        return None
    return _schemes()[0].get(designator.strip().upper())


DESIGNATOR_SYSTEM = "urn:dicom:coding-scheme:"


def designator_system(designator: str) -> str:
    """The system derived from a Coding Scheme Designator that has no known URI (private ``99xxx`` and local
    schemes): ``urn:dicom:coding-scheme:<designator>``, the designator stripped of padding, case kept (PS3.16
    designators are case-sensitive) and percent-encoded where a URI needs it (RFC 3986). Not a registered
    namespace: it keeps the scheme recoverable (the part after the prefix, URL-decoded, is the designator) and
    never equals the URI of a known scheme. Within one dataset a CodingSchemeIdentificationSequence (0008,0110)
    entry for the designator wins over this rule."""
    return DESIGNATOR_SYSTEM + quote(designator.strip(), safe="")


@cache
def _srt_to_sct() -> dict[str, str]:
    from pydicom.sr import _snomed_dict

    mapping: dict[str, str] = _snomed_dict.mapping["SRT"]
    return mapping


def snomed_ct_from_srt(code: str) -> str | None:
    """SNOMED CT concept id for a legacy SNOMED-RT style code (``T-D4000`` -> ``113345001``).

    Uses the SNOMED-RT ID column of the DICOM PS3.16 SNOMED tables (pydicom's copy). A code that
    already is a SNOMED CT id (digits) is returned unchanged; unknown -> None.
    """
    if not isinstance(code, str):
        return None
    value = code.strip()
    if value.isdigit():
        return value
    return _srt_to_sct().get(value.upper())


def coding(designator: str, code: str, meaning: str | None = None) -> dict[str, str]:
    """A FHIR Coding dict from a DICOM code triplet (Code Sequence Macro, PS3.3 Table 8.8-1).

    The system comes from :func:`coding_system_uri`; legacy SNOMED (SRT, SNM3, 99SDM) codes are
    translated to SNOMED CT ids, and when that is not possible the system is left out (a
    SNOMED-RT id is not a SNOMED CT code). An unknown designator gives a Coding without system:
    the caller may keep the designator elsewhere (e.g. in text).
    """
    value = _SPACES.sub(" ", code).strip() if isinstance(code, str) else ""
    display = meaning.strip() if isinstance(meaning, str) else None
    out: dict[str, str] = {}
    des = designator.strip().upper() if isinstance(designator, str) else ""
    uris, legacy = _schemes()
    uri = uris.get(des)
    if uri is not None and des in legacy:
        sct = snomed_ct_from_srt(value)
        if sct is not None:
            value = sct
        else:
            uri = None
    if uri is not None:
        out["system"] = uri
    if value:
        out["code"] = value
    if display:
        out["display"] = display
    return out


# --------------------------------------------------------------------------------------------
# View Position (0018,5101): CID 4010 (DX/CR) and CID 4014 (MG)


@cache
def _views(name: str) -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]]]:
    table = _table(name)
    by_code: dict[str, tuple[str, str]] = {}
    by_meaning: dict[str, tuple[str, str]] = {}
    for row in table["entries"]:
        hit = (row["code"], row["display"])
        by_code[row["code"]] = hit
        by_meaning.setdefault(_text_key(row["display"]), hit)
        if row.get("srt"):
            by_code.setdefault(row["srt"].upper(), hit)
    by_abbr = {abbr: by_code[code] for abbr, code in table["abbreviations"].items()}
    by_abbr.update({k: v for k, v in by_code.items() if k not in by_abbr})
    return by_abbr, by_meaning


def view_position(value: str, modality: str = "DX") -> dict[str, str] | None:
    """SNOMED CT coding for View Position (0018,5101), or None (keep the text).

    MG uses PS3.16 CID 4014 (with its "ACR MQCM 1999 Equivalent" abbreviations MLO, CC, ML, LM,
    XCCL, ...); every other modality (DX, CR, RF, ...) uses CID 4010 (AP, PA, LL, RL, RAO, ...).
    Also accepts the code meaning, the SNOMED CT code or the SNOMED-RT id; falls back to the
    other table. RLD/LLD/RLO/LLO have no CID 4010 concept and give None.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    order = ("view_positions_mg", "view_positions_dx")
    if not (isinstance(modality, str) and modality.strip().upper() == "MG"):
        order = order[::-1]
    term = value.strip().upper()
    for name in order:
        by_abbr, by_meaning = _views(name)
        hit = by_abbr.get(term) or by_meaning.get(_text_key(value))
        if hit:
            return _coding(SNOMED, hit[0], hit[1])
    return None


# --------------------------------------------------------------------------------------------
# Radionuclides (CID 18 + 4020) and radiopharmaceuticals (CID 25 + 4021)


@cache
def _agents(name: str) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """(by code value or SNOMED-RT id, by alphanumeric-only upper-case meaning or synonym)."""
    table = _table(name)
    uris = _schemes()[0]
    by_code: dict[str, dict[str, str]] = {}
    by_meaning: dict[str, dict[str, str]] = {}
    for row in table["entries"]:
        system = uris.get(row["scheme"].upper())
        if system is None:
            continue
        hit = _coding(system, row["code"], row["display"])
        by_code.setdefault(row["code"].upper(), hit)
        if row.get("srt"):
            by_code.setdefault(row["srt"].upper(), hit)
        by_meaning.setdefault(_key(row["display"]), hit)
    for synonym, code in table.get("synonyms", {}).items():
        if code.upper() in by_code:
            by_meaning.setdefault(_key(synonym), by_code[code.upper()])
    return by_code, by_meaning


def _agent(name: str, code: str | None, meaning: str | None) -> dict[str, str] | None:
    by_code, by_meaning = _agents(name)
    if isinstance(code, str) and code.strip():
        hit = by_code.get(code.strip().upper())
        if hit:
            return dict(hit)
    if isinstance(meaning, str) and meaning.strip():
        hit = by_meaning.get(_key(meaning))
        if hit:
            return dict(hit)
    return None


def radionuclide(code: str | None = None, meaning: str | None = None) -> dict[str, str] | None:
    """Coding for a radionuclide (Radionuclide Code Sequence (0054,0300) item).

    Looks up PS3.16 CID 18 and CID 4020 by code value (SNOMED CT id, legacy SNOMED-RT id such as
    ``C-111A1``, or DCM code) and then by code meaning (``^18^Fluorine``). None when unmapped.
    """
    return _agent("radionuclides", code, meaning)


def radiopharmaceutical(
    code: str | None = None, meaning: str | None = None
) -> dict[str, str] | None:
    """Coding for a radiopharmaceutical (Radiopharmaceutical (0018,0031) text or code sequence).

    Looks up PS3.16 CID 25 and CID 4021 by code value and then by code meaning
    (``Fluorodeoxyglucose F^18^``); the radionuclide tables are not consulted, since a drug such as
    FDG is not its isotope (F-18). None when unmapped.
    """
    return _agent("radiopharmaceuticals", code, meaning)


# --------------------------------------------------------------------------------------------
# PET/NM Units (0054,1001) -> UCUM


@cache
def _units() -> dict[str, tuple[str, str]]:
    return {row["dicom"]: (row["code"], row["display"]) for row in _table("units")["entries"]}


def pet_units(value: str) -> dict[str, str] | None:
    """UCUM coding for Units (0054,1001) (PS3.3 C.8.9.1.1.3, UCUM codes of PS3.16 CID 84).

    ``BQML`` -> ``Bq/ml``, ``CNTS`` -> ``{counts}``, ... None when unknown, never an exception, so
    an odd Units value cannot stop a study's mapping; the caller keeps the DICOM term as text.
    """
    if not isinstance(value, str):
        return None
    hit = _units().get(value.strip().upper())
    return _coding(UCUM, hit[0], hit[1]) if hit else None


# --------------------------------------------------------------------------------------------
# MII KDS Bildgebung code systems (DICOM defined terms published as FHIR CodeSystems)


@cache
def _mii_systems() -> tuple[str, dict[str, dict[str, str]]]:
    table = _table("mii_codesystems")
    return table["base"], table["systems"]


def mii_coding(system_id: str, value: str) -> dict[str, str] | None:
    """Coding in an MII Bildgebung CodeSystem (``mii-cs-bildgebung-scanning-sequence``, ...).

    ``value`` is a DICOM defined term (padding and case ignored; spaces and hyphens are dropped to
    match, e.g. ``WHOLE BODY`` -> ``WHOLEBODY``). None when the term is not in the CodeSystem.
    """
    if not isinstance(value, str):
        return None
    base, systems = _mii_systems()
    codes = systems.get(system_id)
    if codes is None:
        return None
    term = value.strip().upper()
    display = codes.get(term)
    if display is None:
        term = re.sub(r"[\s\-]+", "", term)
        display = codes.get(term)
    return _coding(base + system_id, term, display) if display is not None else None
