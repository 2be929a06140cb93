"""Shared helpers of the mappers: FHIR-safe text, consensus over instances, codes, warnings.

FHIR R4B primitive rules enforced here (R4B datatypes.html): ``string`` must contain non-whitespace and SHOULD
not carry leading/trailing whitespace; ``code`` is ``[^\\s]+(\\s[^\\s]+)*``; ``uri`` has no whitespace.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, TypeVar

from streamer.dicom import json_model as jm
from streamer.dicom import tags as t
from streamer.dicom.values import pn_components
from streamer.fhir import terminology as _codes

T = TypeVar("T", bound=Hashable)

_WS = re.compile(r"\s+")
_ODD_WS = re.compile(r"[^\S \r\n\t]")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")

DCM = "http://dicom.nema.org/resources/ontology/DCM"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


class Warnings:
    """Ordered, de-duplicated warning texts. Never put patient data (names, IDs, dates) in them."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict[str, None] = {}

    def add(self, text: str) -> None:
        """Record one warning."""
        self._items[text] = None

    def extend(self, texts: Iterable[str]) -> None:
        """Record several warnings."""
        for text in texts:
            self._items[text] = None

    def as_tuple(self) -> tuple[str, ...]:
        """All warnings, first-seen order."""
        return tuple(self._items)


def clean_text(value: str | None) -> str | None:
    """A FHIR ``string``: odd whitespace (VT, FF, NBSP, ...) becomes a space, stripped; None when empty."""
    if not value:
        return None
    if not value.isprintable():
        value = _ODD_WS.sub(" ", value).replace("\x00", "")
    value = value.strip()
    return value or None


def clean_code(value: str | None) -> str | None:
    """A FHIR ``code``: whitespace runs collapsed to one space, stripped; None when empty."""
    if not value:
        return None
    value = _WS.sub(" ", value.replace("\x00", "")).strip()
    return value or None


def as_uri(value: str | None) -> str | None:
    """An absolute URI for a system, or None. Bare OIDs become ``urn:oid:``."""
    if not value:
        return None
    value = value.strip()
    if _OID.fullmatch(value):
        return f"urn:oid:{value}"
    if _URI.fullmatch(value):
        return value
    return None


def entity_system(item: jm.Dataset) -> str | None:
    """System URI of an HL7v2 hierarchic designator item (PS3.3 10.14): Universal Entity ID by its type."""
    uid = jm.first(item, t.UniversalEntityID)
    kind = (jm.first(item, t.UniversalEntityIDType) or "").upper()
    if not uid:
        return None
    if kind == "ISO" and _OID.fullmatch(uid):
        return f"urn:oid:{uid}"
    if kind == "UUID" and re.fullmatch(r"[0-9a-fA-F\-]{36}", uid):
        return f"urn:uuid:{uid.lower()}"
    if kind in {"URI", "URL"}:
        return as_uri(uid)
    return as_uri(uid) if _OID.fullmatch(uid) else None


def consensus(
    values: Sequence[T | None],
    label: str,
    warnings: Warnings,
) -> T | None:
    """The value the instances agree on.

    Rule (documented): empty values are ignored; of the rest the most frequent wins, a tie goes to the value of
    the earliest instance (instances are in canonical order: InstanceNumber, then SOPInstanceUID). Disagreement
    gives one warning naming ``label`` (a tag name, never the values).
    """
    counts: dict[T, int] = {}
    for v in values:
        if v is not None and v != ():
            counts[v] = counts.get(v, 0) + 1
    if not counts:
        return None
    if len(counts) == 1:
        return next(iter(counts))
    warnings.add(
        f"{label}: {len(counts)} different values across instances; "
        "the most frequent (earliest on a tie) is used"
    )
    best = max(counts.values())
    for v, n in counts.items():
        if n == best:
            return v
    return None  # pragma: no cover


class SchemeResolver:
    """CodingSchemeDesignator -> system URI: the dataset's CodingSchemeIdentificationSequence (0008,0110)
    first (PS3.3 C.12.1.1.2), then the PS3.16 Section 8 table of the terminology package."""

    __slots__ = ("_local", "warnings")

    def __init__(self, ds_items: Iterable[jm.Dataset], warnings: Warnings) -> None:
        self._local: dict[str, str] = {}
        self.warnings = warnings
        for item in ds_items:
            designator = jm.first(item, t.CodingSchemeDesignator)
            if not designator:
                continue
            uri = as_uri(jm.first(item, t.CodingSchemeURL)) or as_uri(
                jm.first(item, t.CodingSchemeUID)
            )
            if uri:
                self._local.setdefault(designator, uri)

    def local(self, designator: str | None) -> str | None:
        """The URI the dataset itself declares for ``designator`` (0008,0110), or None."""
        return self._local.get(designator) if designator else None

    def coding(self, designator: str | None, code: str) -> dict[str, Any]:
        """``{system?, code}``: the dataset's own scheme URI, else the PS3.16 Section 8 table (legacy SNOMED-RT
        codes translated to SNOMED CT); a designator without a known URI (private ``99xxx``, local schemes, an
        untranslatable SNOMED-RT code) gets the derived system ``urn:dicom:coding-scheme:<designator>`` and
        one warning, so the scheme is never lost."""
        local = self.local(designator)
        if local:
            return {"system": local, "code": code}
        coding: dict[str, Any] = _codes.coding(designator or "", code)
        if designator and "system" not in coding:
            system = _codes.designator_system(designator)
            self.warnings.add(
                f"CodingSchemeDesignator {designator[:16]!r} has no known URI: system {system[:60]} derived"
            )
            coding = {"system": system, **coding}
        return coding


def coding_from_item(item: jm.Dataset, schemes: SchemeResolver) -> dict[str, Any] | None:
    """A Code Sequence item (PS3.3 8.8: CodeValue / LongCodeValue / URNCodeValue, CodingSchemeDesignator,
    CodingSchemeVersion, CodeMeaning) -> FHIR Coding; None when the item has neither code nor meaning."""
    urn = clean_code(jm.first(item, t.URNCodeValue))
    code = clean_code(jm.first(item, t.CodeValue) or jm.first(item, t.LongCodeValue))
    display = clean_text(jm.first(item, t.CodeMeaning))
    coding: dict[str, Any] = {}
    if urn and not code:
        coding["system"] = "urn:ietf:rfc:3986"
        coding["code"] = urn
    elif code:
        base = schemes.coding(clean_code(jm.first(item, t.CodingSchemeDesignator)), code)
        if "system" in base:
            coding["system"] = base["system"]
            version = clean_text(jm.first(item, t.CodingSchemeVersion))
            if version:
                coding["version"] = version
        coding["code"] = clean_code(base.get("code")) or code
    if display:
        coding["display"] = display
    return coding or None


def codeable_from_item(item: jm.Dataset, schemes: SchemeResolver) -> dict[str, Any] | None:
    """A Code Sequence item -> CodeableConcept ``{coding: [...], text: CodeMeaning}``."""
    coding = coding_from_item(item, schemes)
    if coding is None:
        return None
    cc: dict[str, Any] = {}
    if "code" in coding:
        cc["coding"] = [coding]
    if "display" in coding:
        cc["text"] = coding["display"]
    return cc or None


def name_part(value: str | None) -> str | None:
    """A PN component as FHIR text; placeholders without any letter or digit (``----``, ``.``) are dropped."""
    text = clean_text(value)
    return text if text and any(c.isalnum() for c in text) else None


def person_display(groups: Mapping[str, str]) -> str | None:
    """A PN value -> display text ``prefix given middle family suffix`` (Alphabetic group first)."""
    for key in ("Alphabetic", "Ideographic", "Phonetic"):
        group = groups.get(key)
        if group:
            cleaned = _group_display(group)
            if cleaned:
                return cleaned
    return None


@lru_cache(maxsize=4096)
def _group_display(group: str) -> str | None:
    """One PN component group -> display text; cached, as the same physicians and operators recur in study
    after study."""
    family, given, middle, prefix, suffix = (name_part(c) or "" for c in pn_components(group))
    return clean_text(" ".join(p for p in (prefix, given, middle, family, suffix) if p))


def dicom_uid_identifier(uid: str, **extra: Any) -> dict[str, Any]:
    """The DICOM UID identifier form ``{system: urn:dicom:uid, value: urn:oid:<uid>}`` (R4B imagingstudy notes)."""
    return {**extra, "system": "urn:dicom:uid", "value": f"urn:oid:{uid}"}


def concept(system: str, code: str, display: str) -> dict[str, Any]:
    """A fresh one-coding CodeableConcept (never shared: callers may change the Bundles they get)."""
    return {"coding": [{"system": system, "code": code, "display": display}]}


def decimal(value: float) -> int | float:
    """A FHIR decimal as JSON number: integral values without a fraction (``80.0`` -> ``80``)."""
    return int(value) if value.is_integer() and abs(value) < 1e15 else value


def collect(values: Iterable[T]) -> list[T]:
    """Distinct values in first-seen order."""
    return list(dict.fromkeys(values))
