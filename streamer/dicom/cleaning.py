"""Cleaning of DICOM JSON (PS3.18 Annex F): what slimming and the mapping keep of each element.

A DICOM JSON dataset maps ``"GGGGEEEE"`` tag keys to ``{"vr": ..., "Value": [...]}`` elements (F.2.2). Values of
string VRs are strings, IS/DS may be JSON numbers (F.2.3.1), PN values are objects with ``Alphabetic`` /
``Ideographic`` / ``Phonetic`` groups (F.2.2), SQ values are nested datasets. Bulk data comes as ``InlineBinary``
or ``BulkDataURI`` instead of ``Value`` (F.2.4).

``normalize`` (slimming) and ``clean`` give every kept element one of these fates, each odd one with a warning
naming the tag (``PatientName (0010,0010): ...``), never its value:

* kept as it is (shared with the input, not copied): a well-formed element; ``Value`` absent, ``null``, ``[]``
  or holding ``null`` values (empty values, F.2.5) is "no value", without a warning;
* bulk data (``InlineBinary``, ``BulkDataURI``) and members other than ``vr`` / ``Value`` are dropped without a
  warning: bulk data is never read;
* dropped with a warning: an element that is not a JSON object, has no ``vr`` or one PS3.5 does not define, or
  whose ``Value`` is not a list;
* one value replaced by ``null`` with a warning (the other values keep their positions): a value of the wrong
  JSON type for the VR (an object, list or boolean where a string or number belongs, a plain string as a PN
  value instead of an object, anything in a bulk-data VR), one longer than the VR allows (``MAX_LENGTH``; a PN
  component group longer than 64 characters), a number that is not finite, or an integer outside the range of
  its VR (IS: +-(2^31-1), PS3.5 Table 6.2-1). A number in a string VR (``101500`` as a TM) is read as its
  text, as before, if that text fits the VR; a numeric string in a binary VR (``"7.5"`` as an FD) is read as
  a number;
* a sequence item that is not an object is dropped with a warning; items nested deeper than
  ``MAX_SEQUENCE_DEPTH`` sequence levels are dropped with a warning, so nothing here recurses without bound;
* keys that are not tags (not 8 hex digits; lower-case hex is a tag) are ignored, with one warning per call
  (per instance) giving their count, never the keys.

Only kept tags are looked at (dropping the others is what slimming is for). What is left is read through the
``json_model`` accessors.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from streamer.dicom import tags as t

Dataset = Mapping[str, Any]

#: Sequence nesting kept: items of sequences nested deeper are dropped with a warning. Real datasets nest a
#: few levels (the deepest mapped path, functional groups, is 2); the bound keeps every walk over a dataset
#: (slimming, comparisons, the mappers, serializing) far from Python's recursion limit.
MAX_SEQUENCE_DEPTH: Final = 32

#: UC, UR and UT have no PS3.5 maximum ("unlimited", 2^32-2 bytes); a value longer than this is dropped with
#: a warning so that one value cannot blow up a Bundle.
UNLIMITED_TEXT_CAP: Final = 1 << 20

#: Longest value, in characters, of each VR whose JSON values are strings: PS3.5 Table 6.2-1, except DA 10
#: and TM 16 (the ACR-NEMA forms ``YYYY.MM.DD`` and ``HH:MM:SS.FFFFFF`` that ``values`` reads) and the cap on
#: UC, UR and UT. Leading and trailing padding (spaces, NUL) does not count; in the VRs that allow several
#: values, each backslash-separated part of a (non-standard) joined string counts alone (up to 64 parts'
#: worth). AT values are ``GGGGEEEE`` strings (F.2.3). The binary numeric VRs hold JSON numbers; a
#: (non-standard) numeric string there may be as long as the longest value of the type (FL/FD: the 24
#: characters of a double's ``repr``).
MAX_LENGTH: Final[Mapping[str, int]] = MappingProxyType(
    {
        "AE": 16,
        "AS": 4,
        "AT": 8,
        "CS": 16,
        "DA": 10,
        "DS": 16,
        "DT": 26,
        "FD": 24,
        "FL": 24,
        "IS": 12,
        "LO": 64,
        "LT": 10240,
        "SH": 16,
        "SL": 11,
        "SS": 6,
        "ST": 1024,
        "SV": 21,
        "TM": 16,
        "UC": UNLIMITED_TEXT_CAP,
        "UI": 64,
        "UL": 10,
        "UR": UNLIMITED_TEXT_CAP,
        "US": 5,
        "UT": UNLIMITED_TEXT_CAP,
        "UV": 20,
    }
)
#: Longest PN component group (Alphabetic, Ideographic, Phonetic), PS3.5 Table 6.2-1.
MAX_PN_GROUP: Final = 64

_NUMBER_VRS = frozenset({"IS", "DS", "FL", "FD", "SL", "SS", "UL", "US", "SV", "UV"})
_BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_VRS = frozenset(MAX_LENGTH) | _NUMBER_VRS | _BULK_VRS | {"PN", "SQ"}
# the VRs in which a backslash separates values (not the text VRs, where it is content)
_SINGLE_TEXT_VRS = frozenset({"LT", "ST", "UT", "UR"})
# the inline test of ``_fill``: strings up to this length (and numbers, in ``_NUMBER_VRS``) pass at once;
# anything else (PN, SQ, an unknown VR) takes the full test in ``_element``
_FAST_LIMIT: dict[str, int] = dict(MAX_LENGTH)
# the integers the inline test passes: in IS (its exact range) and in the VRs whose range is wider
_INT_FAST = 2**31
_INT_FAST_VRS = frozenset({"IS", "DS", "FL", "FD"})
# the range of the integers of each number VR (PS3.5 Table 6.2-1 for IS; the binary types' own ranges)
_INT_RANGE: dict[str, tuple[int, int]] = {
    "IS": (-(2**31) + 1, 2**31 - 1),
    "SS": (-(2**15), 2**15 - 1),
    "US": (0, 2**16 - 1),
    "SL": (-(2**31), 2**31 - 1),
    "UL": (0, 2**32 - 1),
    "SV": (-(2**63), 2**63 - 1),
    "UV": (0, 2**64 - 1),
}
# an integer of more bits is too long for every string VR it may stand in (and ``str`` of it would raise:
# CPython converts at most 4300 digits)
_MAX_INT_BITS = 14000
# a joined string (``a\\b``) is too long beyond this many values' worth, however short its parts
_MAX_JOINED = 64
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_PAD = " \x00"

_UPPER_HEX = b"0123456789ABCDEF|"
_ANY_CASE_HEX = b"0123456789ABCDEFabcdef|"
_TAG = re.compile(r"[0-9A-Fa-f]{8}")
_ELEMENT_KEYS = frozenset({"vr", "Value"})

# keyword of each tag the code reads, for warnings (other tags are named by number only)
_NAMES: dict[str, str] = {
    v: k
    for k, v in vars(t).items()
    if k[:1].isupper() and isinstance(v, str) and _TAG.fullmatch(v) is not None
}


def tag_label(tag: str) -> str:
    """``Keyword (GGGG,EEEE)`` (or ``(GGGG,EEEE)`` for a tag the code does not read), for warnings."""
    number = f"({tag[:4]},{tag[4:]})"
    name = _NAMES.get(tag)
    return f"{name} {number}" if name else number


class _Walk:
    """What one cleaning walk shares: the kept tags, the warnings sink, the count of keys that are not tags."""

    __slots__ = ("keep", "odd_keys", "tag_keep", "warnings")
    tag_keep: frozenset[str] | None

    def __init__(self, keep: frozenset[str] | None, warnings: list[str] | None) -> None:
        self.keep = keep
        self.warnings = warnings
        self.odd_keys = 0
        # ``keep`` when it holds upper-case tags only: then a dataset whose keys are all in it needs no
        # re-keying and keeps every key (None: no such shortcut)
        self.tag_keep = keep if keep.__class__ is frozenset and _upper_tags_only(keep) else None

    def warn(self, tag: str, text: str) -> None:
        if self.warnings is not None:
            line = f"{tag_label(tag)}: {text}"
            if line not in self.warnings:
                self.warnings.append(line)

    def finish(self) -> None:
        if self.odd_keys and self.warnings is not None:
            n = self.odd_keys
            self.warnings.append(
                "1 key is not a DICOM tag; ignored"
                if n == 1
                else f"{n} keys are not DICOM tags; ignored"
            )


@functools.lru_cache(maxsize=16)
def _upper_tags_only(keep: frozenset[str]) -> bool:
    """True when every member of ``keep`` is an upper-case tag (cached: the same few sets come every time)."""
    return bool(keep) and _all_tags(dict.fromkeys(keep), _UPPER_HEX)


def normalize(
    ds: Dataset, keep: frozenset[str] | None = None, warnings: list[str] | None = None
) -> dict[str, Any]:
    """The dataset with upper-case tag keys, cleaned as the module docstring says, bulk data removed (recursive).

    With ``keep`` (a set of upper-case tag keys), only those tags survive, at every nesting level, and only
    they are cleaned and warned about. ``vr`` and ``Value`` are the only members kept. Well-formed elements
    and sequence items are shared with the input, not copied: treat the result as read-only. Warnings are
    appended to ``warnings`` (when given), once per text.
    """
    walk = _Walk(keep, warnings)
    out = _dataset(ds, walk, 0, share=False)
    walk.finish()
    return out


def clean(
    ds: dict[str, Any], keep: frozenset[str], warnings: list[str] | None = None
) -> dict[str, Any]:
    """A shallow copy of ``ds`` in which each element of a ``keep`` tag is cleaned as ``normalize`` cleans it
    (its sequence items slimmed to ``keep``); every other member stays as given. Kept tags are read in their
    upper-case spelling only (``normalize`` first when a lower-case spelling may occur)."""
    walk = _Walk(keep, warnings)
    if not _all_tags(ds, _ANY_CASE_HEX):
        walk.odd_keys += sum(1 for k in ds if k.__class__ is not str or not _TAG.fullmatch(k))
    out = dict(ds)
    _fill(out, ds, [k for k in ds if k in keep], walk, 0, copy=True)
    walk.finish()
    return out


def normalize_element(elem: object, keep: frozenset[str] | None = None) -> dict[str, Any] | None:
    """One element as ``normalize`` stores it (no warnings): a well-formed element is returned itself, another
    one cleaned (sequence items normalized with ``keep``); None where ``normalize`` drops it."""
    out: dict[str, Any] = {}
    _fill(out, {"": elem}, [""], _Walk(keep, None), 0, copy=False)
    return out.get("")


def _all_tags(ds: Mapping[str, Any], allowed: bytes) -> bool:
    """True when every key of ``ds`` is 8 characters of ``allowed`` (hex digits): a few C-level string
    operations instead of a test per key."""
    if ds.__class__ is not dict:
        return False
    try:
        joined = "|".join(ds).encode("ascii")
    except (TypeError, UnicodeEncodeError):  # a key that is not a string, or not ASCII
        return False
    n = len(ds)
    return (
        len(joined) == 9 * n - 1
        and not joined.translate(None, allowed)
        and joined.count(b"|") == n - 1
        and joined[8::9] == b"|" * (n - 1)
    )


def _dataset(ds: Dataset, walk: _Walk, depth: int, *, share: bool) -> dict[str, Any]:
    """``ds`` (a dataset at sequence depth ``depth``) restricted to the kept tags and cleaned. With ``share``,
    a dict that needs no change is returned itself."""
    keep = walk.keep
    src: Mapping[str, Any] = ds
    same = share
    out: dict[str, Any] = {}
    tag_keep = walk.tag_keep
    if share and tag_keep is not None and ds.__class__ is dict and tag_keep.issuperset(ds):
        # a sequence item of kept tags only (the usual one): one C-level test instead of the key scans below
        if _fill(out, ds, list(ds), walk, depth, copy=False):
            assert isinstance(ds, dict)
            return ds
        return out
    if not _all_tags(ds, _UPPER_HEX):
        # a key that is not an upper-case tag: re-key (upper case, non-tags counted and left out)
        src = _rekeyed(ds, walk)
        same = False
    keys = list(src) if keep is None else [k for k in src if k in keep]
    if len(keys) != len(src):
        same = False
    if not _fill(out, src, keys, walk, depth, copy=False):
        same = False
    if same:
        assert isinstance(ds, dict)
        return ds
    return out


def _fill(
    out: dict[str, Any],
    src: Mapping[str, Any],
    keys: list[str],
    walk: _Walk,
    depth: int,
    *,
    copy: bool,
) -> bool:
    """Put the cleaned element of each of ``keys`` of ``src`` into ``out`` (with ``copy``, ``out`` is a copy of
    ``src`` and only changed elements are written); True when every element was kept as it is."""
    same = True
    for k in keys:
        elem = src[k]
        # the usual well-formed element, tested inline: this loop runs once per kept tag of every instance
        if elem.__class__ is dict:
            vr = elem.get("vr")
            value = elem.get("Value")
            if vr.__class__ is str and value.__class__ is list and len(elem) == 2:
                limit = _FAST_LIMIT.get(vr)
                if limit is not None:
                    for v in value:
                        c = v.__class__
                        if c is str:
                            if len(v) > limit:
                                break
                        elif c is float:
                            if vr not in _NUMBER_VRS or v - v != 0.0:  # inf - inf, nan - nan: nan
                                break
                        elif c is int:
                            if vr not in _INT_FAST_VRS or not -_INT_FAST < v < _INT_FAST:
                                break
                        elif v is not None:
                            break
                    else:
                        if not copy:
                            out[k] = elem
                        continue
                elif vr == "PN" and _names_fine(value):
                    if not copy:
                        out[k] = elem
                    continue
        new = _element(k, elem, walk, depth)
        if new is None:
            same = False
            out.pop(k, None)
        elif new is not elem:
            same = False
            out[k] = new
        elif not copy:
            out[k] = elem
    return same


def _names_fine(value: list[Any]) -> bool:
    """True for PN values that are all objects of short strings (or null): the usual case, tested fast."""
    for v in value:
        if v.__class__ is dict:
            for s in v.values():
                if s.__class__ is not str or len(s) > MAX_PN_GROUP:
                    return False
        elif v is not None:
            return False
    return True


def _rekeyed(ds: Dataset, walk: _Walk) -> dict[str, Any]:
    """``ds`` with upper-case tag keys; keys that are not tags are counted in ``walk`` and left out. Of several
    spellings of one tag the upper-case one wins (as in ``instance.check_instance``), else the first."""
    out: dict[str, Any] = {}
    for key, elem in ds.items():
        if key.__class__ is str and _TAG.fullmatch(key):
            k = key.upper()
            if k == key or k not in out:
                out[k] = elem
        else:
            walk.odd_keys += 1
    return out


def _element(tag: str, elem: object, walk: _Walk, depth: int) -> dict[str, Any] | None:
    """One kept element cleaned: itself when it needs no change, a cleaned copy, or None (dropped)."""
    if not (elem.__class__ is dict or isinstance(elem, Mapping)):
        walk.warn(tag, "element is not a JSON object; dropped")
        return None
    assert isinstance(elem, Mapping)
    vr = elem.get("vr")
    if vr.__class__ is not str or vr not in _VRS:
        walk.warn(tag, "element has no valid VR (PS3.18 F.2.2); dropped")
        return None
    value = elem.get("Value")
    plain = elem.__class__ is dict and elem.keys() <= _ELEMENT_KEYS
    if value is None:
        # no value (bulk data, if any, is never read)
        return elem if plain and "Value" not in elem else {"vr": vr}  # type: ignore[return-value]
    if not isinstance(value, list):
        walk.warn(tag, "Value is not a list (PS3.18 F.2.2); element dropped")
        return None
    if vr == "SQ":
        items = _items(tag, value, walk, depth)
        if plain and items is value:
            return elem  # type: ignore[return-value]
        return {"vr": vr, "Value": items}
    values: list[Any] | None = None
    for i, v in enumerate(value):
        problem = _value_problem(vr, v)
        if problem is not None:
            walk.warn(tag, f"{problem}; value dropped")
            if values is None:
                values = list(value)
            values[i] = None
    if values is None:
        if plain:
            return elem  # type: ignore[return-value]
        values = list(value)
    return {"vr": vr, "Value": values}


def _items(tag: str, value: list[Any], walk: _Walk, depth: int) -> list[Any]:
    """The items of a sequence in a dataset at ``depth``, cleaned: ``value`` itself when none changed."""
    if not value:
        return value
    if depth >= MAX_SEQUENCE_DEPTH:
        walk.warn(
            tag, f"sequence nested deeper than {MAX_SEQUENCE_DEPTH} levels; its items dropped"
        )
        return []
    out: list[Any] = []
    same = True
    for item in value:
        if item.__class__ is dict or isinstance(item, Mapping):
            new = _dataset(item, walk, depth + 1, share=True)
            same = same and new is item
            out.append(new)
        else:
            walk.warn(tag, "sequence item is not a JSON object; item dropped")
            same = False
    return value if same else out


def _value_problem(vr: str, v: object) -> str | None:
    """What is wrong with one value of an element of ``vr`` (no value quoted), or None."""
    if v is None:
        return None
    if vr == "PN":
        if v.__class__ is dict or isinstance(v, Mapping):
            assert isinstance(v, Mapping)
            for group in _PN_GROUPS:
                s = v.get(group)
                if s is None:
                    continue
                if not isinstance(s, str):
                    return f"PN {group} group is not a string"
                if len(s) > MAX_PN_GROUP and len(s.strip(_PAD)) > MAX_PN_GROUP:
                    return f"PN {group} group longer than {MAX_PN_GROUP} characters"
            return None
        if isinstance(v, str):
            return "PN value is a plain string, not an object (PS3.18 F.2.2)"
        return f"PN value is {_json_type(v)}, not an object"
    limit = MAX_LENGTH.get(vr)
    if isinstance(v, str):
        if limit is None:
            return f"a string is not a value of VR {vr}"
        if len(v) > limit and _too_long(v, vr, limit):
            return f"value longer than VR {vr} allows ({limit} characters)"
        return None
    if isinstance(v, float):
        if not math.isfinite(v):
            return "a number that is not finite"
        if limit is None:
            return f"a number is not a value of VR {vr}"
        if vr not in _NUMBER_VRS and len(repr(v)) > limit:
            return f"value longer than VR {vr} allows ({limit} characters)"
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        if limit is None:
            return f"a number is not a value of VR {vr}"
        low, high = _INT_RANGE.get(vr, (None, None))
        if low is not None and high is not None:
            return None if low <= v <= high else f"a number outside the range of VR {vr}"
        if vr in ("FL", "FD"):
            try:
                float(v)
            except OverflowError:
                return f"a number outside the range of VR {vr}"
            return None
        if v.bit_length() > _MAX_INT_BITS or len(str(v)) > limit:
            return f"value longer than VR {vr} allows ({limit} characters)"
        return None
    return f"{_json_type(v)} is not a value of VR {vr}"


def _too_long(v: str, vr: str, limit: int) -> bool:
    """True when ``v`` (already longer than ``limit``) is too long without padding, part by part."""
    s = v.strip(_PAD)
    if len(s) <= limit:
        return False
    if vr in _SINGLE_TEXT_VRS or "\\" not in s or len(s) > _MAX_JOINED * (limit + 1):
        return True
    return any(len(p.strip(_PAD)) > limit for p in s.split("\\"))


def _json_type(v: object) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, Mapping):
        return "an object"
    if isinstance(v, list | tuple):
        return "a list"
    return f"a {type(v).__name__}"
