"""The mappers' view of an instance: a fast ``readable_instance`` and a keyword view for ``id_function``.

Identity checks and slimming are DICOM concerns and live in ``streamer.dicom.instance``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamer.dicom import cleaning
from streamer.dicom import json_model as jm
from streamer.dicom.instance import KEEP_TAGS, slim_instance


def _case_variants(tags: frozenset[str]) -> frozenset[str]:
    """Every other spelling of ``tags`` with some hex letters in lower case (``0020000d`` for ``0020000D``)."""
    out: set[str] = set()
    for tag in tags:
        spellings = [""]
        for c in tag:
            spellings = [s + v for s in spellings for v in {c, c.lower()}]
        out.update(spellings)
    return frozenset(out - tags)


# Keys that slim_instance reads as a kept tag although a plain ``ds.get(tag)`` misses them.
_LOWER_CASE_KEEP = _case_variants(KEEP_TAGS)


def readable_instance(ds: Mapping[str, Any], warnings: list[str] | None = None) -> dict[str, Any]:
    """A fresh dict from which the mappers read what they read from ``slim_instance(ds)``, made faster.

    Slimming builds a new instance of the kept tags. This is a shallow copy of the caller's dict instead, in
    which each kept element is cleaned as slimming cleans it (``cleaning.clean``: a well-formed element is
    the caller's own object, an odd one is replaced or dropped, with the same warnings appended to
    ``warnings``); tags outside ``KEEP_TAGS`` stay as given but are never read (``StudyContext.view`` for
    ``id_function`` is built from the slim form). Element equality is decided by ``context.same_elements``
    / ``context.slim_element``, which compare slim forms.

    An instance slimming would re-key (a lower-case spelling of a kept tag) or that is not a dict is slimmed.
    Shares elements with ``ds``: read-only.
    """
    if ds.__class__ is not dict or not ds.keys().isdisjoint(_LOWER_CASE_KEEP):
        return slim_instance(ds, warnings)
    assert isinstance(ds, dict)
    return cleaning.clean(ds, KEEP_TAGS, warnings)


class DatasetView:
    """Keyword attribute access on a DICOM JSON dataset, for ``id_function``.

    ``view.PatientID`` returns the single value (PN: the Alphabetic text), a list for multi-valued elements,
    ``""`` for an element without value; an absent element raises AttributeError.
    """

    __slots__ = ("_ds",)

    def __init__(self, ds: Mapping[str, Any]) -> None:
        self._ds = ds

    def _tag(self, keyword: str) -> str | None:
        # imported here: only an id_function reads instances by keyword (no pydicom at processor start)
        from pydicom.datadict import tag_for_keyword

        tag = tag_for_keyword(keyword)
        return None if tag is None else f"{tag:08X}"

    def __getattr__(self, keyword: str) -> Any:
        tag = self._tag(keyword)
        if tag is None or tag not in self._ds:
            raise AttributeError(f"No such DICOM attribute: {keyword}")
        values = jm.raw_values(self._ds, tag)
        out = [
            (v.get("Alphabetic", "") if isinstance(v, Mapping) and "vr" not in v else v)
            for v in values
        ]
        if not out:
            return ""
        return out[0] if len(out) == 1 else out

    def __contains__(self, keyword: object) -> bool:
        tag = self._tag(keyword) if isinstance(keyword, str) else None
        return tag is not None and tag in self._ds

    def get(self, keyword: str, default: Any = None) -> Any:
        """``getattr`` with a default."""
        try:
            return getattr(self, keyword)
        except AttributeError:
            return default

    def non_empty(self, keyword: str) -> bool:
        """True when the element is present with a non-empty value."""
        value = self.get(keyword)
        return value not in (None, "", [])
