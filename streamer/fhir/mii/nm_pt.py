"""MII modality extensions of nuclear medicine series: NM (``modalitaet-nm``) and PET (``modalitaet-pt``).

Both read the first Radiopharmaceutical Information Sequence item of the series. Radionuclide Total Dose
(0018,1074) is in Bq for PET and in MBq for NM, as the two DICOM isotope modules and the two profiles define
it; the value is copied, never rescaled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from streamer.dicom import tags as t
from streamer.dicom.json_model import items, strings
from streamer.dicom.values import DateTimeParts, Time, parse_da, parse_dt, parse_tm
from streamer.fhir import terminology
from streamer.fhir.mii.common import (
    URL,
    Dataset,
    Extension,
    complex_extension,
    concept,
    distinct,
    first_text,
    invalid,
    number,
    positive,
    quantity,
    sub_quantity,
    texts,
)

P = TypeVar("P")


def nm(instances: Sequence[Dataset], w: list[str] | None, mod: str) -> Extension | None:
    """``mii-ex-bildgebung-modalitaet-nm``: isotope values plus the mean of each energy window."""
    subs, _ = _nuclear_subs(instances, w, pet=False)
    for mean in _energy_window_means(instances, w):
        subs.append(
            {"url": "energyWindowMean", "valueQuantity": quantity(mean, "kiloelectronvolt", "keV")}
        )
    return complex_extension(URL.NM, subs)


def pt(instances: Sequence[Dataset], w: list[str] | None, mod: str) -> Extension | None:
    """``mii-ex-bildgebung-modalitaet-pt``: isotope values plus the PET series type."""
    subs, _ = _nuclear_subs(instances, w, pet=True)
    series_type = distinct(v for ds in instances for v in texts(ds, t.SeriesType))
    if series_type:
        subs.append({"url": "seriesType", "valueString": "\\".join(series_type)})
    return complex_extension(URL.PT, subs)


def _radiopharmaceutical_item(instances: Sequence[Dataset], w: list[str] | None) -> Dataset | None:
    """The first Radiopharmaceutical Information Sequence (0054,0016) item of the series."""
    found: list[Dataset] = []
    for ds in instances:
        seq = items(ds, t.RadiopharmaceuticalInformationSequence)
        if seq:
            found.append(seq[0])
    if not found:
        return None
    if w is not None and len({repr(sorted(i.items())) for i in found}) > 1:
        w.append(
            "MII NM/PT: RadiopharmaceuticalInformationSequence differs between instances; the first is used"
        )
    return found[0]


def _nuclear_subs(
    instances: Sequence[Dataset], w: list[str] | None, *, pet: bool
) -> tuple[list[Extension | None], Dataset | None]:
    """Sub-extensions NM and PET share: radiopharmaceutical, radionuclide, tracer exposure time, units,
    total dose, half life. The NM profile spells ``tracerexposuretime`` in lower case, PET does not."""
    item = _radiopharmaceutical_item(instances, w)
    subs: list[Extension | None] = []
    if item is not None:
        code_items = items(item, t.RadiopharmaceuticalCodeSequence)
        text = next(iter(strings(item, t.Radiopharmaceutical)), None)
        pharma = concept(
            code_items[0] if code_items else None, terminology.radiopharmaceutical, text
        )
        if pharma is not None:
            subs.append({"url": "radiopharmaceutical", "valueCodeableConcept": pharma})
        nuclide_items = items(item, t.RadionuclideCodeSequence)
        if nuclide_items:
            nuclide = concept(nuclide_items[0], terminology.radionuclide)
            if nuclide is not None:
                subs.append({"url": "radionuclide", "valueCodeableConcept": nuclide})
        seconds = _tracer_exposure_seconds(item, instances, w)
        subs.append(
            sub_quantity(
                "tracerExposureTime" if pet else "tracerexposuretime", seconds, "Seconds", "s"
            )
        )
    units = distinct(u.upper() for ds in instances for u in texts(ds, t.Units))
    if units:
        unit_concept: dict[str, Any] = {"text": "\\".join(units)}
        coding = terminology.pet_units(units[0]) if len(units) == 1 else None
        if coding is not None:
            unit_concept["coding"] = [coding]
        subs.append({"url": "units", "valueCodeableConcept": unit_concept})
    if item is not None:
        dose = positive(number(item, t.RadionuclideTotalDose, w), t.RadionuclideTotalDose, w)
        subs.append(
            sub_quantity("radionuclideTotalDose", dose, "Becquerel", "Bq")
            if pet
            else sub_quantity("radionuclideTotalDose", dose, "Megabecquerel", "MBq")
        )
        subs.append(
            sub_quantity(
                "radionuclideHalfLife",
                positive(number(item, t.RadionuclideHalfLife, w), t.RadionuclideHalfLife, w),
                "Seconds",
                "s",
            )
        )
    return subs, item


def _energy_window_means(instances: Sequence[Dataset], w: list[str] | None) -> list[float]:
    """The distinct (lower + upper) / 2 of every energy window range of the series, in keV."""
    means: dict[float, None] = {}
    for ds in instances:
        for window in items(ds, t.EnergyWindowInformationSequence):
            for rng in items(window, t.EnergyWindowRangeSequence):
                lo, hi = (
                    number(rng, t.EnergyWindowLowerLimit, w),
                    number(rng, t.EnergyWindowUpperLimit, w),
                )
                if lo is not None and hi is not None and 0 < lo <= hi:
                    means.setdefault(round((lo + hi) / 2, 6), None)
    return list(means)


def _read(ds: Dataset, tag: str, parse: Callable[[str], P | None], w: list[str] | None) -> P | None:
    """The first value of ``tag`` parsed; one that does not parse is dropped with a warning."""
    raw = first_text(ds, tag)
    if raw is None:
        return None
    value = parse(raw)
    if value is None:
        invalid(tag, w)
    return value


def _datetime_of(d: str | None, clock: Time | None) -> tuple[datetime | None, bool]:
    """Naive datetime from a parsed DA and TM; the bool says whether the date part is real."""
    if clock is None:
        return None, False
    if d is not None and len(d) == 10:
        y, m, day = int(d[0:4]), int(d[5:7]), int(d[8:10])
        return datetime(y, m, day, clock.hour, clock.minute, clock.second), True  # noqa: DTZ001 - naive on purpose
    return datetime(2000, 1, 1, clock.hour, clock.minute, clock.second), False  # noqa: DTZ001


def _dt_value(parts: DateTimeParts | None) -> tuple[datetime | None, bool]:
    """Naive datetime from a parsed DT with a full date and a time; the bool says it was read."""
    if parts is None or parts.time is None or len(parts.date) != 10:
        return None, False
    y, m, d = int(parts.date[0:4]), int(parts.date[5:7]), int(parts.date[8:10])
    clock = parts.time
    return datetime(y, m, d, clock.hour, clock.minute, clock.second), True  # noqa: DTZ001


def _tracer_exposure_seconds(
    item: Dataset, instances: Sequence[Dataset], w: list[str] | None
) -> float | None:
    """Seconds from injection to the start of acquisition.

    Injection: Radiopharmaceutical Start DateTime (0018,1078), else Start Time (0018,1072) with the
    series/study date. Acquisition: the earliest Acquisition DateTime (0008,002A) or Acquisition
    Date/Time (0008,0022/0032) of the instances, else Series Date/Time. With clock times only a
    negative difference means the acquisition was after midnight (+24 h).
    """
    ref = instances[0]
    start, start_dated = _dt_value(_read(item, t.RadiopharmaceuticalStartDateTime, parse_dt, w))
    if start is None:
        date = _read(ref, t.SeriesDate, parse_da, w) or _read(ref, t.StudyDate, parse_da, w)
        start, start_dated = _datetime_of(
            date, _read(item, t.RadiopharmaceuticalStartTime, parse_tm, w)
        )
    if start is None:
        return None
    candidates: list[tuple[datetime, bool]] = []
    for ds in instances:
        acq, dated = _dt_value(_read(ds, t.AcquisitionDateTime, parse_dt, w))
        if acq is None:
            acq, dated = _datetime_of(
                _read(ds, t.AcquisitionDate, parse_da, w) or _read(ds, t.SeriesDate, parse_da, w),
                _read(ds, t.AcquisitionTime, parse_tm, w),
            )
        if acq is not None:
            candidates.append((acq, dated))
    if not candidates:
        acq, dated = _datetime_of(
            _read(ref, t.SeriesDate, parse_da, w), _read(ref, t.SeriesTime, parse_tm, w)
        )
        if acq is None:
            return None
        candidates.append((acq, dated))
    acquisition, acq_dated = min(candidates)
    if start_dated and acq_dated:
        delta = (acquisition - start).total_seconds()
        if delta < 0:
            if w is not None:
                w.append("MII tracerExposureTime: acquisition before injection; left out")
            return None
        return delta
    a = acquisition.hour * 3600 + acquisition.minute * 60 + acquisition.second
    s = start.hour * 3600 + start.minute * 60 + start.second
    return float((a - s) % 86400)
