"""StudyContext: one study's instances (``readable_instance``) in canonical order, its options, warnings and code
resolver."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from streamer.dicom import cleaning
from streamer.dicom import json_model as jm
from streamer.dicom import tags as t
from streamer.dicom import values as dv
from streamer.dicom.instance import KEEP_TAGS
from streamer.fhir.common import SchemeResolver, Warnings, consensus
from streamer.fhir.instance import DatasetView
from streamer.fhir.options import MappingOptions

P = TypeVar("P")

_BIG = 1 << 62


def canonical_key(ds: jm.Dataset) -> tuple[int, str]:
    """Sort key making output independent of arrival order: InstanceNumber (absent last), then SOPInstanceUID."""
    number = dv.parse_is(jm.first_raw(ds, t.InstanceNumber))
    return (
        number if number is not None and number >= 0 else _BIG,
        jm.first(ds, t.SOPInstanceUID) or "",
    )


def slim_element(elem: object) -> Any:
    """``elem`` as the slim instance holds it (None where slimming drops it).

    The instances of a StudyContext hold the caller's well-formed elements (see ``readable_instance``); wherever
    the mappers compare elements, the slim forms decide, as they always did.
    """
    if elem is None:  # absent: what normalize_element gives for it, without its set-up
        return None
    return cleaning.normalize_element(elem, KEEP_TAGS)


def same_elements(elems: list[Any]) -> bool:
    """True when all ``elems`` (at least one) are equal once slimmed (absent ones count as None)."""
    # list.count compares in C, identity first. Elements equal as given are equal slimmed too; only unequal
    # ones (rare: the tag varies) need slimming, which may make them equal (odd members, bulk data).
    if elems.count(elems[0]) == len(elems):
        return True
    slim = [slim_element(e) for e in elems]
    return slim.count(slim[0]) == len(slim)


def _uniform(insts: Sequence[jm.Dataset], tag: str) -> bool:
    """True when every instance has the same element for ``tag`` (or none): one read then suffices."""
    if len(insts) < 2:
        return True
    # ``same_elements``' first test (as ``list.count`` compares: identity, then ==) without building the
    # list: called some 50 times per study, and the elements nearly always agree
    elem = insts[0].get(tag)
    for ds in insts:
        other = ds.get(tag)
        if other is not elem and not other == elem:  # noqa: SIM201 - the test list.count makes
            return same_elements([ds.get(tag) for ds in insts])
    return True


def distinct_elements(insts: Sequence[jm.Dataset], tag: str) -> list[Any]:
    """The distinct slim elements of ``tag`` over ``insts`` (absent ones skipped), first-seen order."""
    given: list[Any] = []
    for ds in insts:
        elem = ds.get(tag)
        if elem is not None and elem not in given:
            given.append(elem)
    # elements equal as given are equal slimmed: slimming the distinct ones keeps the first of each
    out: list[Any] = []
    for elem in given:
        slim = slim_element(elem)
        if slim is not None and slim not in out:
            out.append(slim)
    return out


@functools.lru_cache(maxsize=4096)
def _zoned(
    date_raw: str, time_raw: str | None, offset_raw: str | None, zone_name: str | None
) -> tuple[str, bool] | None:
    """(FHIR dateTime, True when a time was dropped for want of a zone) from raw DA, TM and
    TimezoneOffsetFromUTC values; None when one of them is invalid (the caller then warns as it reads).
    Cached: series and studies repeat the same date, time and offset strings."""
    date = dv.parse_da(date_raw)
    time = None if time_raw is None else dv.parse_tm(time_raw)
    offset = None if offset_raw is None else dv.parse_tz_offset(offset_raw)
    if (
        date is None
        or (time is None) != (time_raw is None)
        or (offset is None) != (offset_raw is None)
    ):
        return None
    value = dv.fhir_datetime(date, time, offset, zone_name)
    assert value is not None  # a date gives at least the date
    return value, time is not None and value == date and len(date) == 10


def tag_label(name: str, tag: str) -> str:
    """``Name (GGGG,EEEE)`` for warnings."""
    return f"{name} ({tag[:4]},{tag[4:]})"


@dataclass(slots=True)
class StudyContext:
    """Everything the mappers of one study read."""

    study_uid: str
    instances: list[dict[str, Any]]
    options: MappingOptions
    warnings: Warnings = field(default_factory=Warnings)
    series: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    schemes: SchemeResolver = field(init=False)
    view: DatasetView = field(init=False)
    # imaging_study.series_order, kept: the Devices and the ImagingStudy both walk the series in that order
    series_order: list[str] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.schemes = SchemeResolver(
            (
                i
                for ds in self.instances
                for i in jm.items(ds, t.CodingSchemeIdentificationSequence)
            ),
            self.warnings,
        )
        # bundle._context replaces it with the slim first instance when an id_function will look
        self.view = DatasetView(self.instances[0])

    def uniform(self, *tags: str) -> bool:
        """True when every instance of the study has the same element (or none) for each of ``tags``."""
        return all(_uniform(self.instances, tag) for tag in tags)

    def representatives(self, insts: Sequence[jm.Dataset], tag: str) -> Sequence[jm.Dataset]:
        """``insts[:1]`` when all ``insts`` agree on ``tag`` (a consensus of one value is that value), else
        ``insts``: what a consensus over ``tag`` needs to read."""
        return insts[:1] if _uniform(insts, tag) else insts

    def text(self, insts: Sequence[jm.Dataset], tag: str, name: str) -> str | None:
        """Consensus of the first value of ``tag`` (stripped string)."""
        if _uniform(insts, tag):
            return jm.first(insts[0], tag) if insts else None
        return consensus([jm.first(ds, tag) for ds in insts], tag_label(name, tag), self.warnings)

    def texts(self, insts: Sequence[jm.Dataset], tag: str, name: str) -> tuple[str, ...]:
        """Consensus of all values of ``tag`` (multi-valued elements are compared as a whole)."""
        if _uniform(insts, tag):
            return tuple(jm.strings(insts[0], tag)) if insts else ()
        got = consensus(
            [tuple(jm.strings(ds, tag)) for ds in insts], tag_label(name, tag), self.warnings
        )
        return got or ()

    def parsed(
        self,
        insts: Sequence[jm.Dataset],
        tag: str,
        name: str,
        parser: Callable[[str], P | None],
    ) -> P | None:
        """Consensus of the parsed first value; unparseable values are dropped with a warning."""
        if _uniform(insts, tag):
            # the usual case, without the list and the consensus: one value agrees with itself
            raw = jm.first(insts[0], tag) if insts else None
            if raw is None:
                return None
            parsed = parser(raw)
            if parsed is None:
                self.warnings.add(f"{tag_label(name, tag)}: invalid value dropped")
            return parsed
        out: list[Any] = []
        bad = False
        for ds in insts:
            raw = jm.first(ds, tag)
            if raw is None:
                continue
            value = parser(raw)
            if value is None:
                bad = True
            else:
                out.append(value)
        if bad:
            self.warnings.add(f"{tag_label(name, tag)}: invalid value dropped")
        result: P | None = consensus(out, tag_label(name, tag), self.warnings)
        return result

    def read(
        self, ds: jm.Dataset, tag: str, name: str, parser: Callable[[str], P | None]
    ) -> P | None:
        """The parsed first value of ``tag`` in one instance; an unparseable one is dropped with a warning."""
        raw = jm.first(ds, tag)
        if raw is None:
            return None
        value = parser(raw)
        if value is None:
            self.warnings.add(f"{tag_label(name, tag)}: invalid value dropped")
        return value

    def datetime(
        self,
        insts: Sequence[jm.Dataset],
        date_tag: tuple[str, str],
        time_tag: tuple[str, str],
        what: str,
    ) -> str | None:
        """A FHIR dateTime from a DA + TM pair, honouring TimezoneOffsetFromUTC (0008,0201), then
        ``options.dicom_timezone``; date precision only when no zone is known (see values.fhir_datetime)."""
        if (
            insts
            and _uniform(insts, date_tag[0])
            and _uniform(insts, time_tag[0])
            and _uniform(insts, t.TimezoneOffsetFromUTC)
        ):
            # the usual case: one set of raw values, all valid (else the reads below warn)
            ds = insts[0]
            date_raw = jm.first(ds, date_tag[0])
            if date_raw is None:
                return None
            hit = _zoned(
                date_raw,
                jm.first(ds, time_tag[0]),
                jm.first(ds, t.TimezoneOffsetFromUTC),
                self.options.dicom_timezone,
            )
            if hit is not None:
                if hit[1]:
                    self._warn_no_zone(what)
                return hit[0]
        date = self.parsed(insts, date_tag[0], date_tag[1], dv.parse_da)
        if date is None:
            return None
        time = self.parsed(insts, time_tag[0], time_tag[1], dv.parse_tm)
        offset = self.offset(insts)
        value = dv.fhir_datetime(date, time, offset, self.options.dicom_timezone)
        if time is not None and value == date and len(date) == 10:
            self._warn_no_zone(what)
        return value

    def _warn_no_zone(self, what: str) -> None:
        self.warnings.add(
            f"{what}: no time zone known (TimezoneOffsetFromUTC (0008,0201) absent, dicom_timezone "
            "unset): date precision only"
        )

    def offset(self, insts: Sequence[jm.Dataset]) -> timedelta | None:
        """TimezoneOffsetFromUTC (0008,0201) agreed by the instances, or None."""
        return self.parsed(
            insts, t.TimezoneOffsetFromUTC, "TimezoneOffsetFromUTC", dv.parse_tz_offset
        )
