"""DICOM JSON model (PS3.18 Annex F) accessors.

A DICOM JSON dataset maps ``"GGGGEEEE"`` tag keys to ``{"vr": ..., "Value": [...]}`` elements (F.2.2). Values of
string VRs are strings, IS/DS may be JSON numbers (F.2.3.1), PN values are objects with ``Alphabetic`` /
``Ideographic`` / ``Phonetic`` groups (F.2.2), SQ values are nested datasets. Bulk data comes as ``InlineBinary``
or ``BulkDataURI`` instead of ``Value`` (F.2.4). Every accessor here tolerates anything: a missing or malformed
element simply has no values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

Dataset = Mapping[str, Any]

_HEX = frozenset("0123456789ABCDEF")
_ELEMENT_KEYS = frozenset({"vr", "Value"})
_EMPTY: list[Any] = []
_NORMAL_DEPTH = 16  # sequence nesting ``_normal_sequence`` checks; real datasets nest a few levels


def normalize(ds: Dataset, keep: frozenset[str] | None = None) -> dict[str, Any]:
    """Return the dataset with upper-case tag keys, non-tag keys dropped and bulk data removed (recursive).

    With ``keep`` (a set of upper-case tag keys), only those tags survive, at every nesting level. Elements that
    are not objects are dropped; ``vr`` and ``Value`` are the only members kept. A plain element that already has
    that shape (``{"vr": "LO", "Value": [...]}``, not a sequence) is shared with the input, not copied: treat the
    result as read-only.
    """
    out: dict[str, Any] = {}
    items: Any = ds.items()
    if keep is not None and ds.__class__ is dict:
        try:
            joined = "".join(ds)
        except TypeError:
            joined = ""
        if joined and joined.upper() == joined:
            # no lower-case key: the kept keys are exactly those in ``keep`` (set lookups only)
            items = [(k, ds[k]) for k in ds if k in keep]
    for key, elem in items:
        if keep is not None and key in keep:
            k = key
        elif key.__class__ is str and len(key) == 8:
            k = key.upper()
            if keep is not None:
                if k not in keep:
                    continue
            elif not all(c in _HEX for c in k):
                continue
        else:
            continue
        if elem.__class__ is dict:
            # ``_plain`` inlined: this loop runs once per kept tag of every instance slimmed
            vr = elem.get("vr")
            if (
                vr.__class__ is str
                and vr != "SQ"
                and elem.keys() <= _ELEMENT_KEYS
                and elem.get("Value", _EMPTY).__class__ is list
            ):
                out[k] = elem  # already plain: share it
                continue
        elif not isinstance(elem, Mapping):
            continue
        out[k] = _rebuilt(elem, keep)
    return out


def normalize_element(elem: object, keep: frozenset[str] | None = None) -> dict[str, Any] | None:
    """One element as ``normalize`` stores it: a plain element is returned itself, another object is rebuilt
    (sequence items normalized with ``keep``); None for a non-object, which ``normalize`` drops. With ``keep``,
    a sequence already in that form is returned itself too (``normalize`` would store an equal copy)."""
    if elem is None:
        return None
    if isinstance(elem, dict) and _plain(elem):
        return elem
    if keep is not None and elem.__class__ is dict and _normal_sequence(elem, keep):
        return elem  # rebuilding would give an equal copy (same keys, same order)
    if isinstance(elem, Mapping):
        return _rebuilt(elem, keep)
    return None


def _normal_sequence(elem: dict[str, Any], keep: frozenset[str], depth: int = 0) -> bool:
    """True when ``elem`` is a sequence that ``_rebuilt(elem, keep)`` would copy unchanged, key order included:
    ``{"vr": "SQ"[, "Value": [...]]}`` whose items are dicts holding only ``keep`` tags, each element plain or
    such a sequence itself. Checking is cheaper than rebuilding, and sequences are usually in this form.

    Nesting deeper than ``_NORMAL_DEPTH`` answers False: such input is rebuilt as before, so it fails (or not)
    with the RecursionError it always did."""
    if depth > _NORMAL_DEPTH:
        return False
    keys = tuple(elem)
    if keys != ("vr", "Value") and keys != ("vr",):
        return False
    if elem["vr"] != "SQ":
        return False
    value = elem.get("Value", _EMPTY)
    if value.__class__ is not list:
        return False
    for item in value:
        if item.__class__ is not dict or not item.keys() <= keep:
            return False
        for e in item.values():
            if e.__class__ is not dict or not (_plain(e) or _normal_sequence(e, keep, depth + 1)):
                return False
    return True


def _plain(elem: dict[str, Any]) -> bool:
    """``{"vr": str, "Value": list}`` (Value optional), not a sequence: already in normalized form."""
    vr = elem.get("vr")
    return (
        vr.__class__ is str
        and vr != "SQ"
        and elem.keys() <= _ELEMENT_KEYS
        and elem.get("Value", _EMPTY).__class__ is list
    )


def _rebuilt(elem: Mapping[str, Any], keep: frozenset[str] | None) -> dict[str, Any]:
    vr = elem.get("vr")
    new: dict[str, Any] = {"vr": vr} if isinstance(vr, str) else {}
    value = elem.get("Value")
    if isinstance(value, list):
        if vr == "SQ" or (vr is None and value and isinstance(value[0], Mapping)):
            new["Value"] = [
                normalize(i, keep) if i.__class__ is dict or isinstance(i, Mapping) else i
                for i in value
            ]
        else:
            new["Value"] = list(value)
    return new


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
