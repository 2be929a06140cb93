"""What every part of the MII profile mode shares: canonical URLs, quantities, value readers, code lookups.

Every reader takes a DICOM JSON dataset (a plain mapping) and tolerates anything: a missing or malformed
element gives no value, never an exception. The number readers take an optional warnings list: a value that
is present but not a number is dropped with ``Keyword (GGGG,EEEE): invalid value dropped`` (the text the core
mapping uses, so a value both read is reported once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from streamer.dicom import tags as t
from streamer.dicom.cleaning import tag_label
from streamer.dicom.json_model import items, raw_values, strings
from streamer.dicom.values import parse_ds, parse_is
from streamer.fhir import terminology

Dataset = Mapping[str, Any]
Extension = dict[str, Any]
#: Builds one modality extension from all instances of a series: (instances, warnings, modality).
Builder = Callable[[Sequence[Dataset], list[str] | None, str], Extension | None]

BASE: Final = (
    "https://www.medizininformatik-initiative.de/fhir/ext/modul-bildgebung/StructureDefinition/"
)
UCUM: Final = "http://unitsofmeasure.org"


class URL:
    """Canonical URLs of the MII Bildgebung profiles and extensions."""

    IMAGING_STUDY: Final = BASE + "mii-pr-bildgebung-bildgebungsstudie"
    DEVICE: Final = BASE + "mii-pr-bildgebung-geraet"
    CT: Final = BASE + "mii-ex-bildgebung-modalitaet-ct"
    MR: Final = BASE + "mii-ex-bildgebung-modalitaet-mr"
    MG_CR_DX: Final = BASE + "mii-ex-bildgebung-modalitaet-mg-cr-dx"
    NM: Final = BASE + "mii-ex-bildgebung-modalitaet-nm"
    PT: Final = BASE + "mii-ex-bildgebung-modalitaet-pt"
    US: Final = BASE + "mii-ex-bildgebung-modalitaet-us"
    CONTRAST: Final = BASE + "mii-ex-bildgebung-kontrastmittel"
    SLICE_THICKNESS: Final = BASE + "mii-ex-bildgebung-serie-schichtdicke"
    INSTANCE_DETAILS: Final = BASE + "mii-ex-bildgebung-instanz-details"
    REASON: Final = BASE + "mii-ex-bildgebung-bildgebungsgrund"
    WEIGHT: Final = BASE + "mii-ex-bildgebung-gewicht"
    HEIGHT: Final = BASE + "mii-ex-bildgebung-groesse"
    # German base profiles the weight/height extensions point to (valueReference only Reference(...)).
    DE_WEIGHT: Final = "http://fhir.de/StructureDefinition/observation-de-vitalsign-koerpergewicht"
    DE_HEIGHT: Final = "http://fhir.de/StructureDefinition/observation-de-vitalsign-koerpergroesse"


# ----------------------------------------------------------------------------------------------
# quantities and extensions


def num(value: float) -> int | float:
    """JSON number for a FHIR decimal: integral floats become ints (``120.0`` -> ``120``)."""
    if value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


def quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    """A UCUM Quantity: the profiles fix both ``system`` and ``code``, ``unit`` is the display text."""
    return {"value": num(value), "unit": unit, "system": UCUM, "code": code}


def sub_quantity(url: str, value: float | None, unit: str, code: str) -> Extension | None:
    """A ``valueQuantity`` sub-extension, or None without a value."""
    if value is None:
        return None
    return {"url": url, "valueQuantity": quantity(value, unit, code)}


def complex_extension(url: str, subs: Iterable[Extension | None]) -> Extension | None:
    """An extension made of the given sub-extensions (Nones skipped); None when none is left."""
    children = [s for s in subs if s is not None]
    return {"url": url, "extension": children} if children else None


# ----------------------------------------------------------------------------------------------
# value readers


def texts(ds: Dataset, tag: str) -> list[str]:
    """All values of a string element, also splitting a (non-standard) backslash-joined string."""
    out: list[str] = []
    for s in strings(ds, tag):
        out.extend(p.strip() for p in s.split("\\") if p.strip())
    return out


def first_text(ds: Dataset, tag: str) -> str | None:
    """The first non-empty value of a string element."""
    return next(iter(strings(ds, tag)), None)


def invalid(tag: str, warnings: list[str] | None) -> None:
    """Say that a value of ``tag`` was present but unreadable, and dropped (once per text)."""
    if warnings is not None:
        line = f"{tag_label(tag)}: invalid value dropped"
        if line not in warnings:
            warnings.append(line)


# the IS elements read here: their values are integers in the IS range (``values.parse_is``)
_IS_TAGS = frozenset({t.ExposureTime, t.XRayTubeCurrent, t.Exposure, t.ExposureInuAs})


def numbers(ds: Dataset, tag: str, warnings: list[str] | None = None) -> list[float]:
    """All values of a DS/IS element (JSON numbers or strings, a backslash-joined string split); a value
    that is not a number ``values.parse_ds`` (DS) or ``values.parse_is`` (IS) reads (``70kg``, ``NaN``,
    ``1e999``, an IS of ``1.5`` or beyond +-(2^31-1)) is dropped with a warning."""
    parse = _parse_is if tag in _IS_TAGS else parse_ds
    out: list[float] = []
    for v in raw_values(ds, tag):
        parts = v.split("\\") if isinstance(v, str) else [v]
        for p in parts:
            f = parse(p)
            if f is not None:
                out.append(f)
            elif p is not None and not (isinstance(p, str) and not p.strip(" \x00")):
                invalid(tag, warnings)
    return out


def number(ds: Dataset, tag: str, warnings: list[str] | None = None) -> float | None:
    """The first number of a DS/IS element."""
    values = numbers(ds, tag, warnings)
    return values[0] if values else None


def _parse_is(value: object) -> float | None:
    n = parse_is(value)
    return None if n is None else float(n)


def positive(value: float | None, tag: str, warnings: list[str] | None) -> float | None:
    """``value`` when it is above zero, else None (a value <= 0 with a warning naming ``tag``)."""
    if value is None or value > 0:
        return value
    if warnings is not None:
        line = f"MII {tag_label(tag)}: non-positive value dropped"
        if line not in warnings:
            warnings.append(line)
    return None


def distinct(values: Iterable[str]) -> list[str]:
    """``values`` without repeats, in first-seen order."""
    seen: dict[str, None] = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen)


def series_number(
    instances: Sequence[Dataset],
    read: Callable[[Dataset, list[str] | None], float | None],
    name: str,
    warnings: list[str] | None,
) -> float | None:
    """One value per instance; equal -> it; differing -> the maximum, with a warning.

    Values <= 0 (placeholders such as KVP 0; none of these quantities can be zero) are dropped with a
    warning. The maximum is the cautious choice for dose and exposure values.
    """
    values = {v for v in (read(ds, warnings) for ds in instances) if v is not None}
    if any(v <= 0 for v in values):
        if warnings is not None:
            warnings.append(f"MII {name}: non-positive value dropped")
        values = {v for v in values if v > 0}
    if not values:
        return None
    if len(values) > 1 and warnings is not None:
        warnings.append(f"MII {name}: instances differ; the series maximum is used")
    return max(values)


def tag_reader(
    tag: str, scale: float = 1.0, fallback: tuple[str, float] | None = None
) -> Callable[[Dataset, list[str] | None], float | None]:
    """Reader of a single DS/IS value, optionally scaled, with a fallback tag (e.g. µAs -> mAs)."""

    def read(ds: Dataset, warnings: list[str] | None = None) -> float | None:
        value = number(ds, tag, warnings)
        if value is not None:
            return value * scale
        if fallback is not None:
            other = number(ds, fallback[0], warnings)
            if other is not None:
                return other * fallback[1]
        return None

    return read


def pixel_measures(ds: Dataset) -> Dataset | None:
    """Shared Functional Groups > Pixel Measures item of an enhanced multi-frame instance."""
    for shared in items(ds, t.SharedFunctionalGroupsSequence):
        for pm in items(shared, t.PixelMeasuresSequence):
            return pm
    return None


def slice_thickness_of(ds: Dataset, warnings: list[str] | None = None) -> float | None:
    """Slice Thickness in mm, top level or in the pixel measures of a multi-frame instance."""
    value = number(ds, t.SliceThickness, warnings)
    if value is None:
        pm = pixel_measures(ds)
        value = number(pm, t.SliceThickness, warnings) if pm is not None else None
    return positive(value, t.SliceThickness, warnings)


# ----------------------------------------------------------------------------------------------
# coded values


def code_triplet(item: Dataset) -> tuple[str | None, str | None, str | None]:
    """(code value, scheme designator, meaning) of a code sequence item (PS3.3 8.8)."""
    code = next(
        iter(
            strings(item, t.CodeValue)
            or strings(item, t.LongCodeValue)
            or strings(item, t.URNCodeValue)
        ),
        None,
    )
    scheme = next(iter(strings(item, t.CodingSchemeDesignator)), None)
    meaning = next(iter(strings(item, t.CodeMeaning)), None)
    return code, scheme, meaning


def concept(
    item: Dataset | None,
    lookup: Callable[[str | None, str | None], dict[str, str] | None],
    text: str | None = None,
) -> dict[str, Any] | None:
    """CodeableConcept from a code item and/or a free text, via a table lookup.

    Table hit -> its coding; else the item's own code when its scheme has a known URI; text is the
    free text, else the code meaning, else the code value. Nothing known -> None.
    """
    code = scheme = meaning = None
    if item is not None:
        code, scheme, meaning = code_triplet(item)
    coding = lookup(code, meaning) or lookup(None, text)
    if coding is None and code and scheme:
        own = terminology.coding(scheme, code, meaning)
        if "system" in own and "code" in own:
            coding = own
    label = text or meaning or code
    out: dict[str, Any] = {}
    if coding is not None:
        out["coding"] = [coding]
    if label:
        out["text"] = label
    return out or None
