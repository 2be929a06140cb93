"""MII profile mode, NM/PET and ultrasound series: radiopharmaceutical, isotope and transducer values."""

from __future__ import annotations

from typing import Any

import pytest

from streamer.fhir import mii
from tests.unit.fhir._mii_helpers import (
    BASE,
    SCT,
    UCUM,
    code_item,
    ds,
    ext,
    key,
    qty,
    sub,
    validate,
)

# --- PT / NM --------------------------------------------------------------------------------------

FDG_ITEM = ds(
    Radiopharmaceutical="Fluorodeoxyglucose",
    RadiopharmaceuticalStartTime="101500",
    RadionuclideTotalDose=350000000,
    RadionuclideHalfLife=6586.2,
    RadionuclideCodeSequence=[code_item("C-111A1", "SRT", "^18^Fluorine")],
    RadiopharmaceuticalCodeSequence=[code_item("C-B1031", "SRT", "Fluorodeoxyglucose F^18^")],
)
PT = ds(
    Modality="PT",
    SeriesDate="20240719",
    SeriesTime="110000",
    AcquisitionDate="20240719",
    AcquisitionTime="111500",
    Units="BQML",
    SeriesType=["WHOLE BODY", "IMAGE"],
    RadiopharmaceuticalInformationSequence=[FDG_ITEM],
)


def test_pt_radiopharmaceutical_uses_the_radiopharmaceutical_table() -> None:
    out = mii.series_extensions("PT", [PT])
    pt = ext(out, "mii-ex-bildgebung-modalitaet-pt")
    pharma = sub(pt, "radiopharmaceutical")["valueCodeableConcept"]
    assert pharma["coding"] == [
        {"system": SCT, "code": "35321007", "display": "Fluorodeoxyglucose F^18^"}
    ]
    assert pharma["text"] == "Fluorodeoxyglucose"
    nuclide = sub(pt, "radionuclide")["valueCodeableConcept"]
    assert nuclide["coding"] == [{"system": SCT, "code": "77004003", "display": "^18^Fluorine"}]
    assert qty(pt, "radionuclideTotalDose") == (350000000, "Becquerel", UCUM, "Bq")
    assert qty(pt, "radionuclideHalfLife") == (6586.2, "Seconds", UCUM, "s")
    assert qty(pt, "tracerExposureTime") == (3600, "Seconds", UCUM, "s")
    units = sub(pt, "units")["valueCodeableConcept"]
    assert units["coding"] == [
        {"system": UCUM, "code": "Bq/ml", "display": "Becquerels/milliliter"}
    ]
    assert sub(pt, "seriesType")["valueString"] == "WHOLE BODY\\IMAGE"
    validate(out, modality="PT")


def test_pt_free_text_only_radiopharmaceutical() -> None:
    item = ds(Radiopharmaceutical="FDG")
    out = mii.series_extensions(
        "PT", [ds(Modality="PT", RadiopharmaceuticalInformationSequence=[item])]
    )
    pharma = sub(ext(out, "mii-ex-bildgebung-modalitaet-pt"), "radiopharmaceutical")[
        "valueCodeableConcept"
    ]
    assert pharma["coding"][0]["code"] == "35321007"
    assert pharma["text"] == "FDG"


def test_unknown_radiopharmaceutical_is_text_only() -> None:
    item = ds(Radiopharmaceutical="Unobtainium-42")
    out = mii.series_extensions(
        "PT", [ds(Modality="PT", RadiopharmaceuticalInformationSequence=[item])]
    )
    pharma = sub(ext(out, "mii-ex-bildgebung-modalitaet-pt"), "radiopharmaceutical")[
        "valueCodeableConcept"
    ]
    assert pharma == {"text": "Unobtainium-42"}
    validate(out, modality="PT")


@pytest.mark.parametrize("modality", ["PT", "NM"])
def test_unknown_units_do_not_crash(modality: str) -> None:
    out = mii.series_extensions(modality, [ds(Modality=modality, Units="XYZ")])
    extension = ext(out, f"mii-ex-bildgebung-modalitaet-{modality.lower()}")
    assert sub(extension, "units")["valueCodeableConcept"] == {"text": "XYZ"}
    validate(out, modality=modality)


def test_nm_half_life_is_emitted() -> None:
    item = ds(
        RadionuclideHalfLife=21636,
        RadionuclideTotalDose=740,
        RadiopharmaceuticalStartTime="090000",
        RadionuclideCodeSequence=[code_item("21576001", "SCT", "^13^Nitrogen")],
        Radiopharmaceutical="Tc-99m MDP",
    )
    inst = ds(
        Modality="NM",
        SeriesDate="20240101",
        AcquisitionTime="093000",
        RadiopharmaceuticalInformationSequence=[item],
        EnergyWindowInformationSequence=[
            ds(
                EnergyWindowRangeSequence=[
                    ds(EnergyWindowLowerLimit=126, EnergyWindowUpperLimit=154)
                ]
            )
        ],
    )
    out = mii.series_extensions("NM", [inst])
    nm = ext(out, "mii-ex-bildgebung-modalitaet-nm")
    assert qty(nm, "radionuclideHalfLife") == (21636, "Seconds", UCUM, "s")
    assert qty(nm, "radionuclideTotalDose") == (740, "Megabecquerel", UCUM, "MBq")
    assert qty(nm, "tracerexposuretime") == (1800, "Seconds", UCUM, "s")
    assert qty(nm, "energyWindowMean") == (140, "kiloelectronvolt", UCUM, "keV")
    validate(out, modality="NM")


@pytest.mark.parametrize(
    "instance",
    [
        ds(Modality="NM"),
        ds(Modality="NM", RadiopharmaceuticalInformationSequence=None),
        ds(Modality="NM", RadiopharmaceuticalInformationSequence=[]),
        ds(Modality="NM", RadiopharmaceuticalInformationSequence=[{}]),
        ds(Modality="NM", RadiopharmaceuticalInformationSequence=[ds(Radiopharmaceutical="x")]),
        ds(
            Modality="NM",
            RadiopharmaceuticalInformationSequence=[ds(RadionuclideCodeSequence=[{}])],
        ),
        ds(
            Modality="NM",
            RadiopharmaceuticalInformationSequence=[
                ds(RadionuclideCodeSequence=[code_item("NOPE", "99X", "Mystery nuclide")])
            ],
        ),
        ds(Modality="PT", RadiopharmaceuticalInformationSequence=[ds(RadionuclideTotalDose="abc")]),
    ],
)
def test_missing_or_odd_sequences_do_not_crash(instance: dict[str, Any]) -> None:
    modality = instance[key("Modality")]["Value"][0]
    out = mii.series_extensions(modality, [instance])
    validate(out, modality=modality)


def test_own_code_of_a_known_scheme_is_kept_and_valid() -> None:
    item = ds(RadionuclideCodeSequence=[code_item("LP  1234", "LN", "Some  nuclide")])
    out = mii.series_extensions(
        "NM", [ds(Modality="NM", RadiopharmaceuticalInformationSequence=[item])]
    )
    nuclide = sub(ext(out, "mii-ex-bildgebung-modalitaet-nm"), "radionuclide")[
        "valueCodeableConcept"
    ]
    assert nuclide["coding"][0] == {
        "system": "http://loinc.org",
        "code": "LP 1234",
        "display": "Some  nuclide",
    }
    validate(out, modality="NM")


def test_nm_unknown_radionuclide_code_is_text_only() -> None:
    item = ds(RadionuclideCodeSequence=[code_item("NOPE", "99X", "Mystery nuclide")])
    out = mii.series_extensions(
        "NM", [ds(Modality="NM", RadiopharmaceuticalInformationSequence=[item])]
    )
    nuclide = sub(ext(out, "mii-ex-bildgebung-modalitaet-nm"), "radionuclide")[
        "valueCodeableConcept"
    ]
    assert nuclide == {"text": "Mystery nuclide"}


def test_tracer_exposure_time_over_midnight_with_clock_times_only() -> None:
    item = ds(RadiopharmaceuticalStartTime="235000")
    inst = ds(
        Modality="PT", AcquisitionTime="001000", RadiopharmaceuticalInformationSequence=[item]
    )
    pt = ext(mii.series_extensions("PT", [inst]), "mii-ex-bildgebung-modalitaet-pt")
    assert qty(pt, "tracerExposureTime")[0] == 1200


def test_tracer_exposure_time_prefers_datetimes_and_earliest_acquisition() -> None:
    item = ds(RadiopharmaceuticalStartDateTime="20240719101500")
    insts = [
        ds(Modality="PT", AcquisitionDateTime="20240719113000"),
        ds(Modality="PT", AcquisitionDateTime="20240719111500"),
    ]
    insts[0].update(ds(RadiopharmaceuticalInformationSequence=[item]))
    pt = ext(mii.series_extensions("PT", insts), "mii-ex-bildgebung-modalitaet-pt")
    assert qty(pt, "tracerExposureTime")[0] == 3600


# --- US -------------------------------------------------------------------------------------------


def test_us_series_extension() -> None:
    region = ds(TransducerFrequency=5000, PulseRepetitionFrequency=4000)
    inst = ds(
        Modality="US",
        TransducerType="CURVED_LINEAR",
        UltrasoundColorDataPresent=1,
        SequenceOfUltrasoundRegions=[region],
    )
    out = mii.series_extensions("US", [inst])
    us = ext(out, "mii-ex-bildgebung-modalitaet-us")
    assert qty(us, "transducerFrequency") == (5000, "kilohertz", UCUM, "kHz")
    assert qty(us, "pulseRepetitionFrequency") == (4000, "hertz", UCUM, "Hz")
    assert sub(us, "ultrasoundColor")["valueBoolean"] is True
    assert sub(us, "transducerType")["valueCodeableConcept"]["coding"][0]["code"] == "CURVED_LINEAR"
    validate(out, modality="US")


def test_us_unknown_transducer_type_left_out() -> None:
    warnings: list[str] = []
    out = mii.series_extensions(
        "US", [ds(Modality="US", TransducerType="WEIRD")], warnings=warnings
    )
    assert all(e["url"] != BASE + "mii-ex-bildgebung-modalitaet-us" for e in out)
    assert warnings
