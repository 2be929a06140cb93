"""DICOM JSON model (PS3.18 Annex F) accessors.

A DICOM JSON dataset maps ``"GGGGEEEE"`` tag keys to ``{"vr": ..., "Value": [...]}`` elements (F.2.2). Values of
string VRs are strings, IS/DS may be JSON numbers (F.2.3.1), PN values are objects with ``Alphabetic`` /
``Ideographic`` / ``Phonetic`` groups (F.2.2), SQ values are nested datasets. Bulk data comes as ``InlineBinary``
or ``BulkDataURI`` instead of ``Value`` (F.2.4). Every accessor here tolerates anything: a missing or malformed
element simply has no values. What slimming and the mapping keep of each element, and what they warn about, is
``streamer.dicom.cleaning``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

Dataset = Mapping[str, Any]


def has(ds: Dataset, tag: str) -> bool:
    """True when ``tag`` holds an element (an object: ``normalize`` drops anything else)."""
    elem = ds.get(tag)
    return elem is not None and (elem.__class__ is dict or isinstance(elem, Mapping))


def raw_values(ds: Dataset, tag: str) -> list[Any]:
    """The ``Value`` list of an element, or ``[]`` (absent element, no Value, bulk data, wrong type)."""
    elem = ds.get(tag)
    if elem is None or (elem.__class__ is not dict and not isinstance(elem, Mapping)):
        return []
    value = elem.get("Value")
    return value if value.__class__ is list or isinstance(value, list) else []


_BLANK = " \x00\t\r\n"


def _as_text(v: object) -> str | None:
    if isinstance(v, str):
        s = v.strip(_BLANK)
        return s or None
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else None
    return None


def strings(ds: Dataset, tag: str) -> list[str]:
    """All non-empty values as stripped strings (numbers become their text; objects are skipped)."""
    out: list[str] = []
    for v in raw_values(ds, tag):
        # a str, the usual value, is read inline: these accessors run hundreds of times per study
        s = (v.strip(_BLANK) or None) if v.__class__ is str else _as_text(v)
        if s is not None:
            out.append(s)
    return out


def first(ds: Dataset, tag: str) -> str | None:
    """The first non-empty value as a stripped string, or None."""
    # ``raw_values`` inlined: the most called accessor (some 70 times per study)
    elem = ds.get(tag)
    if elem is None or (elem.__class__ is not dict and not isinstance(elem, Mapping)):
        return None
    values = elem.get("Value")
    if values.__class__ is not list and not isinstance(values, list):
        return None
    for v in values:
        s = (v.strip(_BLANK) or None) if v.__class__ is str else _as_text(v)  # as in ``strings``
        if s is not None:
            return s
    return None


def first_raw(ds: Dataset, tag: str) -> Any:
    """The first non-null raw value (string, number, ...) or None."""
    for v in raw_values(ds, tag):
        if v is not None:
            return v
    return None


def items(ds: Dataset, tag: str) -> list[Dataset]:
    """Sequence items (nested datasets) of an SQ element; non-object items are skipped."""
    # the class test first: isinstance against the Mapping ABC is slow, and items are nearly always dicts
    return [i for i in raw_values(ds, tag) if i.__class__ is dict or isinstance(i, Mapping)]


def person_names(ds: Dataset, tag: str) -> list[dict[str, str]]:
    """PN values as ``{"Alphabetic"|"Ideographic"|"Phonetic": text}`` (PS3.18 F.2.2).

    A bare string (not standard DICOM JSON, but seen in the wild) is read as the PS3.5 6.2.1 form
    ``alphabetic=ideographic=phonetic``.
    """
    out: list[dict[str, str]] = []
    for v in raw_values(ds, tag):
        groups: dict[str, str] = {}
        if v.__class__ is dict or isinstance(v, Mapping):
            for g in ("Alphabetic", "Ideographic", "Phonetic"):
                s = v.get(g)
                if isinstance(s, str) and s.strip(" ^=\x00"):
                    groups[g] = s.strip(" \x00")
        elif isinstance(v, str):
            for g, s in zip(("Alphabetic", "Ideographic", "Phonetic"), v.split("="), strict=False):
                if s.strip(" ^\x00"):
                    groups[g] = s.strip(" \x00")
        if groups:
            out.append(groups)
    return out
