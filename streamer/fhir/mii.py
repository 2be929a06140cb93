"""MII Kerndatensatz Modul Bildgebung profile mode (``options.profile == "mii"``).

Builds, from DICOM JSON datasets (PS3.18 Annex F), the extensions and ``meta.profile`` values of
the MII-KDS Bildgebung profiles (github.com/medizininformatik-initiative/kerndatensatz-bildgebung,
``input/fsh/``; canonical base :data:`BASE`). Every function takes plain mappings and returns plain
``dict`` extensions (FHIR R4/R4B JSON shape) that validate in ``fhir.resources.R4B``.

Rules (and how they differ from the seed library dicom2fhir 0.1.25):

- A coded value that is not in the table is never a crash (seed bug B4): for extensible/preferred
  bindings (view position, radiopharmaceutical, radionuclide, units) the CodeableConcept keeps only
  ``text``; for required bindings (scanning sequence, sequence variant, transducer type) the value
  is left out and a warning is added.
- Every quantity carries the UCUM ``system`` **and** ``code`` the profile fixes (mGy, kV, ms, mA.s,
  mA, T, deg, s, MBq/Bq, mm, kHz, Hz), with the profile's ``unit`` text.
- Series values are read from **all** instances of the series: multi-valued elements in full
  (ScanningSequence ``["SE", "IR"]`` gives two codes; seed bug B9), single numbers once per
  instance. When instances disagree on a number, the series value is the maximum (conservative
  for dose/exposure) and a warning says so; the series slice thickness extension is only emitted
  when all instances agree (otherwise the instance level carries it).
- Missing sequences, empty items, odd values: the element is left out (seed bugs B17, B18).
  Quantities <= 0 (placeholders such as KVP 0) are left out with a warning.
- Radionuclide Total Dose (0018,1074) is in Bq for PET (PS3.3 C.8.9.2, profile ``-pt``: #Bq) and
  in MBq for NM (C.8.4.10, profile ``-nm``: #MBq); the value is copied, never rescaled.

Sub-extension names and units follow the FSH sources (``input/fsh/extensions/Extension-*.fsh``):
CT {CTDIvol, KVP, exposureTime, exposure, xRayTubeCurrent, convolutionalKernel}; MR
{magneticFieldStrength, scanningSequence*, scanningSequenceVariant*, echoTime, repetitionTime,
inversionTime, flipAngle}; MG/CR/DX {KVP, exposureTime, exposure, xRayTubeCurrent, viewPosition};
NM {radiopharmaceutical, radionuclide, tracerexposuretime (sic, lower case in the FSH), units,
radionuclideTotalDose, radionuclideHalfLife, energyWindowMean*}; PT {radiopharmaceutical,
radionuclide, tracerExposureTime, units, radionuclideTotalDose, radionuclideHalfLife, seriesType};
US {transducerType, transducerFrequency, pulseRepetitionFrequency, ultrasoundColor}; kontrastmittel
{contrastBolus, contrastBolusDetails*}; instanz-details {pixelSpacingX, pixelSpacingY,
sliceThickness, imageType, burnedInAnnotation}. ``convolutionalKernel`` and ``burnedInAnnotation``
are taken from the repository HEAD as summarised in ``shared/docs/peers.md`` §4.

``warnings``: every public function takes an optional list to which it appends human-readable
warnings (value left out / ambiguous); nothing is logged here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from streamer.dicom.json_model import items, raw_values, strings
from streamer.dicom.values import parse_da, parse_ds, parse_dt, parse_tm
from streamer.fhir import terminology

__all__ = [
    "BASE",
    "MII_TAGS",
    "URL",
    "instance_extensions",
    "profile_url",
    "series_extensions",
    "study_extensions",
]

Dataset = Mapping[str, Any]
Extension = dict[str, Any]

BASE: Final = (
    "https://www.medizininformatik-initiative.de/fhir/ext/modul-bildgebung/StructureDefinition/"
)
UCUM: Final = "http://unitsofmeasure.org"


class URL:
    """Canonical URLs of the MII Bildgebung profiles and extensions (peers.md §4, FSH ``^url``)."""

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


# --- DICOM tags read here (PS3.6) --------------------------------------------------------------
_ImageType = "00080008"
_AcquisitionDate = "00080022"
_AcquisitionTime = "00080032"
_AcquisitionDateTime = "0008002A"
_SeriesDate = "00080021"
_SeriesTime = "00080031"
_StudyDate = "00080020"
_Modality = "00080060"
_CodeValue = "00080100"
_CodingSchemeDesignator = "00080102"
_CodeMeaning = "00080104"
_LongCodeValue = "00080119"
_URNCodeValue = "00080120"
_ContrastBolusAgent = "00180010"
_ContrastBolusAgentSequence = "00180012"
_ScanningSequence = "00180020"
_SequenceVariant = "00180021"
_Radiopharmaceutical = "00180031"
_SliceThickness = "00180050"
_KVP = "00180060"
_RepetitionTime = "00180080"
_EchoTime = "00180081"
_InversionTime = "00180082"
_MagneticFieldStrength = "00180087"
_ConvolutionKernel = "00181210"
_ExposureTime = "00181150"
_XRayTubeCurrent = "00181151"
_Exposure = "00181152"
_ExposureInuAs = "00181153"
_RadiopharmaceuticalStartTime = "00181072"
_RadionuclideTotalDose = "00181074"
_RadionuclideHalfLife = "00181075"
_RadiopharmaceuticalStartDateTime = "00181078"
_FlipAngle = "00181314"
_ViewPosition = "00185101"
_SequenceOfUltrasoundRegions = "00186011"
_TransducerFrequency = "00186030"
_TransducerType = "00186031"
_PulseRepetitionFrequency = "00186032"
_ExposureTimeInuS = "00188150"
_XRayTubeCurrentInuA = "00188151"
_CTDIvol = "00189345"
_UltrasoundColorDataPresent = "00280014"
_PixelSpacing = "00280030"
_BurnedInAnnotation = "00280301"
_PixelMeasuresSequence = "00289110"
_ReasonForTheRequestedProcedure = "00401002"
_RequestAttributesSequence = "00400275"
_EnergyWindowInformationSequence = "00540012"
_EnergyWindowRangeSequence = "00540013"
_EnergyWindowLowerLimit = "00540014"
_EnergyWindowUpperLimit = "00540015"
_RadiopharmaceuticalInformationSequence = "00540016"
_RadionuclideCodeSequence = "00540300"
_RadiopharmaceuticalCodeSequence = "00540304"
_SeriesType = "00541000"
_Units = "00541001"
_SharedFunctionalGroupsSequence = "52009229"

#: Every tag (at any nesting level) the functions here read: keep them when trimming instances.
MII_TAGS: Final[frozenset[str]] = frozenset(
    v
    for k, v in dict(globals()).items()
    if k.startswith("_") and isinstance(v, str) and re.fullmatch("[0-9A-F]{8}", v)
)

# Modalities whose IODs include the Contrast/Bolus Module (PS3.3 C.7.6.4, "C - required if
# contrast media was used"): for these an absent agent means "no contrast" -> contrastBolus false.
_CONTRAST_MODALITIES: Final = frozenset(
    {"CT", "MR", "XA", "RF", "CR", "DX", "MG", "IO", "PX", "US", "NM", "PT"}
)
# Agent texts that say "none" (seen in practice); they count as no contrast.
_NO_AGENT: Final = frozenset(
    {"NONE", "NO", "N", "NA", "N/A", "-", "0", "NIL", "KEIN", "KEINE", "OHNE"}
)

_CS_SCANNING_SEQUENCE: Final = "mii-cs-bildgebung-scanning-sequence"
_CS_SEQUENCE_VARIANT: Final = "mii-cs-bildgebung-scanning-sequence-variant"
_CS_IMAGE_TYPE: Final = "mii-cs-bildgebung-instance-image-type"
_CS_TRANSDUCER_TYPE: Final = "mii-cs-bildgebung-transducer-type"


# ----------------------------------------------------------------------------------------------
# meta.profile


def profile_url(resource_type: str, kind: str | None = None) -> str | None:
    """The MII profile URL for ``meta.profile`` of a resource, or None when MII defines none.

    ImagingStudy -> ``mii-pr-bildgebung-bildgebungsstudie``; Device -> ``mii-pr-bildgebung-geraet``;
    Observation with ``kind`` ``"body-weight"`` / ``"29463-7"`` or ``"body-height"`` / ``"8302-2"``
    -> the German base vital-sign profiles the MII ``gewicht`` / ``groesse`` extensions reference
    (they need LOINC code, category vital-signs and a UCUM value). Other Observations (findings:
    ``mii-pr-bildgebung-radiologische-beobachtung``) are not produced from DICOM, so None.
    """
    if resource_type == "ImagingStudy":
        return URL.IMAGING_STUDY
    if resource_type == "Device":
        return URL.DEVICE
    if resource_type == "Observation":
        if kind in ("body-weight", "29463-7"):
            return URL.DE_WEIGHT
        if kind in ("body-height", "8302-2"):
            return URL.DE_HEIGHT
    return None


# ----------------------------------------------------------------------------------------------
# small value helpers


def _num(value: float) -> int | float:
    """JSON number for a FHIR decimal: integral floats become ints (``120.0`` -> ``120``)."""
    if value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


def _quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": _num(value), "unit": unit, "system": UCUM, "code": code}


def _sub_quantity(url: str, value: float | None, unit: str, code: str) -> Extension | None:
    if value is None:
        return None
    return {"url": url, "valueQuantity": _quantity(value, unit, code)}


def _texts(ds: Dataset, tag: str) -> list[str]:
    """All values of a string element, also splitting a (non-standard) backslash-joined string."""
    out: list[str] = []
    for s in strings(ds, tag):
        out.extend(p.strip() for p in s.split("\\") if p.strip())
    return out


def _numbers(ds: Dataset, tag: str) -> list[float]:
    out: list[float] = []
    for v in raw_values(ds, tag):
        if isinstance(v, str) and "\\" in v:
            out.extend(f for f in (parse_ds(p) for p in v.split("\\")) if f is not None)
            continue
        f = parse_ds(v)
        if f is not None:
            out.append(f)
    return out


def _number(ds: Dataset, tag: str) -> float | None:
    values = _numbers(ds, tag)
    return values[0] if values else None


def _positive(value: float | None) -> float | None:
    return value if value is not None and value > 0 else None


def _distinct(values: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen)


def _series_number(
    instances: Sequence[Dataset],
    read: Callable[[Dataset], float | None],
    name: str,
    warnings: list[str] | None,
) -> float | None:
    """One value per instance; equal -> it; differing -> the maximum, with a warning.

    Values <= 0 (placeholders such as KVP 0; none of these quantities can be zero) are dropped with a
    warning.
    """
    values = {v for v in (read(ds) for ds in instances) if v is not None}
    if any(v <= 0 for v in values):
        if warnings is not None:
            warnings.append(f"MII {name}: non-positive value dropped")
        values = {v for v in values if v > 0}
    if not values:
        return None
    if len(values) > 1 and warnings is not None:
        warnings.append(
            f"MII {name}: instances differ ({', '.join(map(str, sorted(values)))}); "
            "the series maximum is used"
        )
    return max(values)


def _tag_reader(
    tag: str, scale: float = 1.0, fallback: tuple[str, float] | None = None
) -> Callable[[Dataset], float | None]:
    """Reader of a single DS/IS value, optionally scaled, with a fallback tag (e.g. µAs -> mAs)."""

    def read(ds: Dataset) -> float | None:
        value = _number(ds, tag)
        if value is not None:
            return value * scale
        if fallback is not None:
            other = _number(ds, fallback[0])
            if other is not None:
                return other * fallback[1]
        return None

    return read


def _code_triplet(item: Dataset) -> tuple[str | None, str | None, str | None]:
    """(code value, scheme designator, meaning) of a Code Sequence Macro item (PS3.3 8.8)."""
    code = next(
        iter(
            strings(item, _CodeValue)
            or strings(item, _LongCodeValue)
            or strings(item, _URNCodeValue)
        ),
        None,
    )
    scheme = next(iter(strings(item, _CodingSchemeDesignator)), None)
    meaning = next(iter(strings(item, _CodeMeaning)), None)
    return code, scheme, meaning


def _concept(
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
        code, scheme, meaning = _code_triplet(item)
    coding = lookup(code, meaning) or lookup(None, text)
    if coding is None and code and scheme:
        own = terminology.coding(scheme, code, meaning)
        if "system" in own and "code" in own:
            coding = own
    label = text or meaning or code
    concept: dict[str, Any] = {}
    if coding is not None:
        concept["coding"] = [coding]
    if label:
        concept["text"] = label
    return concept or None


# ----------------------------------------------------------------------------------------------
# series


def series_extensions(
    modality: str,
    instances: Sequence[Mapping[str, Any]],
    *,
    warnings: list[str] | None = None,
) -> list[Extension]:
    """MII extensions for one ``ImagingStudy.series`` from all the series' instances.

    Modality CT -> ``modalitaet-ct``; MR -> ``-mr``; MG/CR/DX -> ``-mg-cr-dx``; NM -> ``-nm``;
    PT -> ``-pt``; US -> ``-us``; plus ``kontrastmittel`` (modalities with the Contrast/Bolus
    module) and ``serie-schichtdicke`` (Slice Thickness (0018,0050) equal in all instances).
    An extension without any sub-extension is not emitted.
    """
    mod = modality.strip().upper() if isinstance(modality, str) else ""
    builders: dict[str, Callable[[Sequence[Dataset], list[str] | None, str], Extension | None]] = {
        "CT": _ct,
        "MR": _mr,
        "MG": _mg_cr_dx,
        "CR": _mg_cr_dx,
        "DX": _mg_cr_dx,
        "NM": _nm,
        "PT": _pt,
        "US": _us,
    }
    out: list[Extension] = []
    builder = builders.get(mod)
    if builder is not None and instances:
        ext = builder(instances, warnings, mod)
        if ext is not None:
            out.append(ext)
    if instances:
        contrast = _contrast(mod, instances)
        if contrast is not None:
            out.append(contrast)
        thickness = _slice_thickness(instances)
        if thickness is not None:
            out.append(thickness)
    return out


def _complex(url: str, subs: Iterable[Extension | None]) -> Extension | None:
    children = [s for s in subs if s is not None]
    return {"url": url, "extension": children} if children else None


def _xray_subs(
    instances: Sequence[Dataset], w: list[str] | None, label: str
) -> list[Extension | None]:
    """KVP, exposureTime, exposure, xRayTubeCurrent (CT and MG/CR/DX share them, PS3.3 C.8.7.2)."""
    return [
        _sub_quantity(
            "KVP", _series_number(instances, _tag_reader(_KVP), f"{label} KVP", w), "kilovolt", "kV"
        ),
        _sub_quantity(
            "exposureTime",
            _series_number(
                instances,
                _tag_reader(_ExposureTime, fallback=(_ExposureTimeInuS, 1e-3)),
                f"{label} ExposureTime",
                w,
            ),
            "milliseconds",
            "ms",
        ),
        _sub_quantity(
            "exposure",
            _series_number(
                instances,
                _tag_reader(_Exposure, fallback=(_ExposureInuAs, 1e-3)),
                f"{label} Exposure",
                w,
            ),
            "milliampere second",
            "mA.s",
        ),
        _sub_quantity(
            "xRayTubeCurrent",
            _series_number(
                instances,
                _tag_reader(_XRayTubeCurrent, fallback=(_XRayTubeCurrentInuA, 1e-3)),
                f"{label} XRayTubeCurrent",
                w,
            ),
            "milliampere",
            "mA",
        ),
    ]


def _ct(instances: Sequence[Dataset], w: list[str] | None, mod: str) -> Extension | None:
    """``mii-ex-bildgebung-modalitaet-ct``: CTDIvol (0018,9345) mGy + X-ray parameters + kernel."""
    kernels = _distinct(k for ds in instances for k in _texts(ds, _ConvolutionKernel))
    return _complex(
        URL.CT,
        [
            _sub_quantity(
                "CTDIvol",
                _series_number(instances, _tag_reader(_CTDIvol), "CT CTDIvol", w),
                "milligray",
                "mGy",
            ),
            *_xray_subs(instances, w, "CT"),
            {"url": "convolutionalKernel", "valueString": "\\".join(kernels)} if kernels else None,
        ],
    )


def _mr(instances: Sequence[Dataset], w: list[str] | None, mod: str) -> Extension | None:
    """``mii-ex-bildgebung-modalitaet-mr`` (PS3.3 C.8.3.1 MR Image Module)."""
    subs: list[Extension | None] = [
        _sub_quantity(
            "magneticFieldStrength",
            _series_number(
                instances, _tag_reader(_MagneticFieldStrength), "MR MagneticFieldStrength", w
            ),
            "tesla",
            "T",
        )
    ]
    for tag, name, system_id in (
        (_ScanningSequence, "scanningSequence", _CS_SCANNING_SEQUENCE),
        (_SequenceVariant, "scanningSequenceVariant", _CS_SEQUENCE_VARIANT),
    ):
        for value in _distinct(v.upper() for ds in instances for v in _texts(ds, tag)):
            coding = terminology.mii_coding(system_id, value)
            if coding is None:  # required binding: leave out, never a text-only concept
                if w is not None:
                    w.append(f"MII MR {name}: {value!r} is not in {system_id}; left out")
                continue
            subs.append({"url": name, "valueCodeableConcept": {"coding": [coding]}})
    for tag, name, unit, code in (
        (_EchoTime, "echoTime", "milliseconds", "ms"),
        (_RepetitionTime, "repetitionTime", "milliseconds", "ms"),
        (_InversionTime, "inversionTime", "milliseconds", "ms"),
        (_FlipAngle, "flipAngle", "plane angle degree", "deg"),
    ):
        subs.append(
            _sub_quantity(
                name, _series_number(instances, _tag_reader(tag), f"MR {name}", w), unit, code
            )
        )
    return _complex(URL.MR, subs)


def _mg_cr_dx(instances: Sequence[Dataset], w: list[str] | None, mod: str) -> Extension | None:
    """``mii-ex-bildgebung-modalitaet-mg-cr-dx``; View Position (0018,5101) via CID 4010/4014."""
    subs = _xray_subs(instances, w, "MG/CR/DX")
    views = _distinct(v for ds in instances for v in _texts(ds, _ViewPosition))
    if len(views) == 1:
        concept: dict[str, Any] = {"text": views[0]}
        coding = terminology.view_position(views[0], mod)
        if coding is not None:
            concept["coding"] = [coding]
        subs.append({"url": "viewPosition", "valueCodeableConcept": concept})
    elif len(views) > 1:
        subs.append({"url": "viewPosition", "valueCodeableConcept": {"text": "\\".join(views)}})
        if w is not None:
            w.append(f"MII viewPosition: instances differ ({', '.join(views)}); kept as text only")
    return _complex(URL.MG_CR_DX, subs)


# --- NM / PT ------------------------------------------------------------------------------------


def _radiopharmaceutical_item(instances: Sequence[Dataset], w: list[str] | None) -> Dataset | None:
    """The first Radiopharmaceutical Information Sequence (0054,0016) item of the series."""
    found: list[Dataset] = []
    for ds in instances:
        seq = items(ds, _RadiopharmaceuticalInformationSequence)
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
    item = _radiopharmaceutical_item(instances, w)
    subs: list[Extension | None] = []
    if item is not None:
        code_items = items(item, _RadiopharmaceuticalCodeSequence)
        text = next(iter(strings(item, _Radiopharmaceutical)), None)
        pharma = _concept(
            code_items[0] if code_items else None, terminology.radiopharmaceutical, text
        )
        if pharma is not None:
            subs.append({"url": "radiopharmaceutical", "valueCodeableConcept": pharma})
        nuclide_items = items(item, _RadionuclideCodeSequence)
        if nuclide_items:
            nuclide = _concept(nuclide_items[0], terminology.radionuclide)
            if nuclide is not None:
                subs.append({"url": "radionuclide", "valueCodeableConcept": nuclide})
        seconds = _tracer_exposure_seconds(item, instances, w)
        subs.append(
            _sub_quantity(
                "tracerExposureTime" if pet else "tracerexposuretime", seconds, "Seconds", "s"
            )
        )
    units = _distinct(u.upper() for ds in instances for u in _texts(ds, _Units))
    if units:
        unit_concept: dict[str, Any] = {"text": "\\".join(units)}
        coding = terminology.pet_units(units[0]) if len(units) == 1 else None
        if coding is not None:
            unit_concept["coding"] = [coding]
        subs.append({"url": "units", "valueCodeableConcept": unit_concept})
    if item is not None:
        dose = _positive(_number(item, _RadionuclideTotalDose))
        # PET Isotope Module (C.8.9.2): Bq; NM/PET Isotope Module (C.8.4.10): MBq.
        subs.append(
            _sub_quantity("radionuclideTotalDose", dose, "Becquerel", "Bq")
            if pet
            else _sub_quantity("radionuclideTotalDose", dose, "Megabecquerel", "MBq")
        )
        subs.append(
            _sub_quantity(
                "radionuclideHalfLife",
                _positive(_number(item, _RadionuclideHalfLife)),
                "Seconds",
                "s",
            )
        )
    return subs, item


def _nm(instances: Sequence[Dataset], w: list[str] | None, mod: str) -> Extension | None:
    """``mii-ex-bildgebung-modalitaet-nm`` (PS3.3 C.8.4.10 NM Isotope Module)."""
    subs, _ = _nuclear_subs(instances, w, pet=False)
    for mean in _energy_window_means(instances):
        subs.append(
            {"url": "energyWindowMean", "valueQuantity": _quantity(mean, "kiloelectronvolt", "keV")}
        )
    return _complex(URL.NM, subs)


def _pt(instances: Sequence[Dataset], w: list[str] | None, mod: str) -> Extension | None:
    """``mii-ex-bildgebung-modalitaet-pt`` (PS3.3 C.8.9.1 PET Series, C.8.9.2 PET Isotope)."""
    subs, _ = _nuclear_subs(instances, w, pet=True)
    series_type = _distinct(v for ds in instances for v in _texts(ds, _SeriesType))
    if series_type:
        subs.append({"url": "seriesType", "valueString": "\\".join(series_type)})
    return _complex(URL.PT, subs)


def _energy_window_means(instances: Sequence[Dataset]) -> list[float]:
    means: dict[float, None] = {}
    for ds in instances:
        for window in items(ds, _EnergyWindowInformationSequence):
            for rng in items(window, _EnergyWindowRangeSequence):
                lo, hi = (
                    _number(rng, _EnergyWindowLowerLimit),
                    _number(rng, _EnergyWindowUpperLimit),
                )
                if lo is not None and hi is not None and 0 < lo <= hi:
                    means.setdefault(round((lo + hi) / 2, 6), None)
    return list(means)


def _datetime_of(date: str | None, time: str | None) -> tuple[datetime | None, bool]:
    """Naive datetime from DA/TM strings; the bool says whether the date part is real."""
    t = parse_tm(time)
    if t is None:
        return None, False
    d = parse_da(date)
    if d is not None and len(d) == 10:
        y, m, day = int(d[0:4]), int(d[5:7]), int(d[8:10])
        return datetime(y, m, day, t.hour, t.minute, t.second), True  # noqa: DTZ001 - naive on purpose
    return datetime(2000, 1, 1, t.hour, t.minute, t.second), False  # noqa: DTZ001


def _first_text(ds: Dataset, tag: str) -> str | None:
    return next(iter(strings(ds, tag)), None)


def _dt_value(value: str | None) -> tuple[datetime | None, bool]:
    parts = parse_dt(value)
    if parts is None or parts.time is None or len(parts.date) != 10:
        return None, False
    y, m, d = int(parts.date[0:4]), int(parts.date[5:7]), int(parts.date[8:10])
    t = parts.time
    return datetime(y, m, d, t.hour, t.minute, t.second), True  # noqa: DTZ001


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
    start, start_dated = _dt_value(_first_text(item, _RadiopharmaceuticalStartDateTime))
    if start is None:
        date = _first_text(ref, _SeriesDate) or _first_text(ref, _StudyDate)
        start, start_dated = _datetime_of(date, _first_text(item, _RadiopharmaceuticalStartTime))
    if start is None:
        return None
    candidates: list[tuple[datetime, bool]] = []
    for ds in instances:
        acq, dated = _dt_value(_first_text(ds, _AcquisitionDateTime))
        if acq is None:
            acq, dated = _datetime_of(
                _first_text(ds, _AcquisitionDate) or _first_text(ds, _SeriesDate),
                _first_text(ds, _AcquisitionTime),
            )
        if acq is not None:
            candidates.append((acq, dated))
    if not candidates:
        acq, dated = _datetime_of(_first_text(ref, _SeriesDate), _first_text(ref, _SeriesTime))
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


# --- US -----------------------------------------------------------------------------------------


def _us(instances: Sequence[Dataset], w: list[str] | None, mod: str) -> Extension | None:
    """``mii-ex-bildgebung-modalitaet-us`` (PS3.3 C.8.5.5 US Region Calibration, C.8.5.6 US Image)."""
    scopes = list(instances) + [
        r for ds in instances for r in items(ds, _SequenceOfUltrasoundRegions)
    ]
    subs: list[Extension | None] = []
    types = _distinct(v.upper() for ds in scopes for v in _texts(ds, _TransducerType))
    for value in types[:1]:
        coding = terminology.mii_coding(_CS_TRANSDUCER_TYPE, value)
        if coding is not None:
            subs.append({"url": "transducerType", "valueCodeableConcept": {"coding": [coding]}})
        elif w is not None:
            w.append(f"MII US transducerType: {value!r} is not in {_CS_TRANSDUCER_TYPE}; left out")
    if len(types) > 1 and w is not None:
        w.append(f"MII US transducerType: instances differ ({', '.join(types)}); the first is used")
    subs.append(
        _sub_quantity(
            "transducerFrequency",
            _series_number(scopes, _tag_reader(_TransducerFrequency), "US TransducerFrequency", w),
            "kilohertz",
            "kHz",
        )
    )
    subs.append(
        _sub_quantity(
            "pulseRepetitionFrequency",
            _series_number(
                scopes, _tag_reader(_PulseRepetitionFrequency), "US PulseRepetitionFrequency", w
            ),
            "hertz",
            "Hz",
        )
    )
    colour = [v for ds in instances for v in _numbers(ds, _UltrasoundColorDataPresent)]
    if colour:
        subs.append({"url": "ultrasoundColor", "valueBoolean": any(v == 1 for v in colour)})
    return _complex(URL.US, subs)


# --- contrast, slice thickness ------------------------------------------------------------------


def _contrast(modality: str, instances: Sequence[Dataset]) -> Extension | None:
    """``mii-ex-bildgebung-kontrastmittel`` from Contrast/Bolus Agent (0018,0010) / (0018,0012)."""
    agents: list[str] = []
    for ds in instances:
        agents.extend(a for a in strings(ds, _ContrastBolusAgent) if a.upper() not in _NO_AGENT)
        for item in items(ds, _ContrastBolusAgentSequence):
            code, _, meaning = _code_triplet(item)
            if meaning or code:
                agents.append(meaning or code or "")
    agents = _distinct(agents)
    if not agents and modality not in _CONTRAST_MODALITIES:
        return None
    subs: list[Extension] = [{"url": "contrastBolus", "valueBoolean": bool(agents)}]
    subs.extend({"url": "contrastBolusDetails", "valueReference": {"display": a}} for a in agents)
    return {"url": URL.CONTRAST, "extension": subs}


def _pixel_measures(ds: Dataset) -> Dataset | None:
    """Shared Functional Groups > Pixel Measures item of an enhanced multi-frame instance."""
    for shared in items(ds, _SharedFunctionalGroupsSequence):
        for pm in items(shared, _PixelMeasuresSequence):
            return pm
    return None


def _slice_thickness_of(ds: Dataset) -> float | None:
    value = _number(ds, _SliceThickness)
    if value is None:
        pm = _pixel_measures(ds)
        value = _number(pm, _SliceThickness) if pm is not None else None
    return value if value is not None and value > 0 else None


def _slice_thickness(instances: Sequence[Dataset]) -> Extension | None:
    """``mii-ex-bildgebung-serie-schichtdicke``, only when all instances agree."""
    values = [_slice_thickness_of(ds) for ds in instances]
    distinct = {v for v in values if v is not None}
    if len(distinct) != 1 or any(v is None for v in values):
        return None
    return {
        "url": URL.SLICE_THICKNESS,
        "valueQuantity": _quantity(distinct.pop(), "millimeter", "mm"),
    }


# ----------------------------------------------------------------------------------------------
# instance


def instance_extensions(
    ds: Mapping[str, Any], *, warnings: list[str] | None = None
) -> list[Extension]:
    """``mii-ex-bildgebung-instanz-details`` for one ``ImagingStudy.series.instance``.

    pixelSpacingX/Y from Pixel Spacing (0028,0030) = [row spacing, column spacing] (PS3.3
    10.7.1.3), so X = 2nd value and Y = 1st; only with exactly two positive numbers (one value is
    malformed: left out with a warning, seed bug B18). Enhanced multi-frame: the shared Pixel
    Measures Sequence (0028,9110). sliceThickness (0018,0050) mm. imageType from Image Type
    (0008,0008): every value stripped; values in the MII image-type CodeSystem become codings, the
    full value is the text. burnedInAnnotation from Burned In Annotation (0028,0301) YES/NO.
    Returns ``[]`` when there is nothing to say.
    """
    subs: list[Extension | None] = []
    spacing = _numbers(ds, _PixelSpacing)
    if not spacing:
        pm = _pixel_measures(ds)
        spacing = _numbers(pm, _PixelSpacing) if pm is not None else []
    if len(spacing) == 2 and all(v > 0 for v in spacing):
        subs.append(_sub_quantity("pixelSpacingX", spacing[1], "millimeter", "mm"))
        subs.append(_sub_quantity("pixelSpacingY", spacing[0], "millimeter", "mm"))
    elif spacing and warnings is not None:
        warnings.append(
            f"MII instance: PixelSpacing {spacing} is not two positive numbers; left out"
        )
    subs.append(_sub_quantity("sliceThickness", _slice_thickness_of(ds), "millimeter", "mm"))
    image_type = _texts(ds, _ImageType)
    if image_type:
        codings = [
            c
            for c in (terminology.mii_coding(_CS_IMAGE_TYPE, v) for v in image_type)
            if c is not None
        ]
        concept: dict[str, Any] = {"text": "\\".join(image_type)}
        if codings:
            concept["coding"] = list({c["code"]: c for c in codings}.values())
        subs.append({"url": "imageType", "valueCodeableConcept": concept})
    burned = next(iter(_texts(ds, _BurnedInAnnotation)), "").upper()
    if burned in ("YES", "NO"):
        subs.append({"url": "burnedInAnnotation", "valueBoolean": burned == "YES"})
    ext = _complex(URL.INSTANCE_DETAILS, subs)
    return [ext] if ext is not None else []


# ----------------------------------------------------------------------------------------------
# study


_SPACES = re.compile(r"\s+")


def study_extensions(
    instances: Sequence[Mapping[str, Any]],
    *,
    weight_ref: str | None = None,
    height_ref: str | None = None,
    warnings: list[str] | None = None,
) -> list[Extension]:
    """ImagingStudy extensions: ``bildgebungsgrund``, ``gewicht``, ``groesse``.

    bildgebungsgrund (valueString) = Reason for the Requested Procedure (0040,1002), top level or
    in Request Attributes Sequence (0040,0275) items, all distinct values of all instances joined
    with ``"; "``. gewicht / groesse = ``valueReference`` to the body weight / height Observation
    (e.g. ``"Observation/<id>"`` or the entry's fullUrl), only when given.
    """
    reasons: list[str] = []
    for ds in instances:
        reasons.extend(strings(ds, _ReasonForTheRequestedProcedure))
        for item in items(ds, _RequestAttributesSequence):
            reasons.extend(strings(item, _ReasonForTheRequestedProcedure))
    reasons = _distinct(_SPACES.sub(" ", r) for r in reasons)
    out: list[Extension] = []
    if reasons:
        out.append({"url": URL.REASON, "valueString": "; ".join(reasons)})
    if weight_ref:
        out.append({"url": URL.WEIGHT, "valueReference": {"reference": weight_ref}})
    if height_ref:
        out.append({"url": URL.HEIGHT, "valueReference": {"reference": height_ref}})
    return out
