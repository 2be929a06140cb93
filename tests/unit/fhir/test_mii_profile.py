"""MII profile mode: profile URLs, contrast, instance details, study extensions, and odd input never crashing."""

from __future__ import annotations

from typing import Any

import pytest

from streamer.fhir import mii
from tests.unit.fhir._mii_helpers import (
    BASE,
    UCUM,
    code_item,
    ds,
    ext,
    key,
    qty,
    sub,
    subs,
    validate,
)

# --- profiles -------------------------------------------------------------------------------------


def test_profile_urls() -> None:
    assert mii.profile_url("ImagingStudy") == BASE + "mii-pr-bildgebung-bildgebungsstudie"
    assert mii.profile_url("Device") == BASE + "mii-pr-bildgebung-geraet"
    assert mii.profile_url("Observation", "body-weight") == (
        "http://fhir.de/StructureDefinition/observation-de-vitalsign-koerpergewicht"
    )
    assert mii.profile_url("Observation", "8302-2") == (
        "http://fhir.de/StructureDefinition/observation-de-vitalsign-koerpergroesse"
    )
    assert mii.profile_url("Observation") is None
    assert mii.profile_url("Patient") is None


# --- contrast -------------------------------------------------------------------------------------


def test_contrast_agent_gives_true_and_details() -> None:
    out = mii.series_extensions(
        "CT", [ds(ContrastBolusAgent="Ultravist 370"), ds(ContrastBolusAgent="Ultravist 370")]
    )
    km = ext(out, "mii-ex-bildgebung-kontrastmittel")
    assert sub(km, "contrastBolus")["valueBoolean"] is True
    assert [s["valueReference"] for s in subs(km, "contrastBolusDetails")] == [
        {"display": "Ultravist 370"}
    ]
    validate(out)


@pytest.mark.parametrize("agent", [None, "NONE", "none", "-"])
def test_no_contrast_for_image_modalities(agent: str | None) -> None:
    inst = ds(Modality="CT") if agent is None else ds(Modality="CT", ContrastBolusAgent=agent)
    km = ext(mii.series_extensions("CT", [inst]), "mii-ex-bildgebung-kontrastmittel")
    assert km["extension"] == [{"url": "contrastBolus", "valueBoolean": False}]


def test_no_contrast_extension_for_non_image_series() -> None:
    assert mii.series_extensions("SR", [ds(Modality="SR")]) == []


def test_contrast_agent_sequence() -> None:
    inst = ds(ContrastBolusAgentSequence=[code_item("C-B0317", "SRT", "Iohexol")])
    km = ext(mii.series_extensions("CT", [inst]), "mii-ex-bildgebung-kontrastmittel")
    assert sub(km, "contrastBolus")["valueBoolean"] is True


# --- instance details -----------------------------------------------------------------------------


def test_instance_details() -> None:
    inst = ds(
        PixelSpacing=[0.7, 0.6],
        SliceThickness=1.25,
        ImageType=["ORIGINAL", "PRIMARY", "AXIAL", "CSA RESAMPLED"],
        BurnedInAnnotation="NO",
    )
    out = mii.instance_extensions(inst)
    details = ext(out, "mii-ex-bildgebung-instanz-details")
    # Pixel Spacing = row spacing (Y) \ column spacing (X), PS3.3 10.7.1.3
    assert qty(details, "pixelSpacingX") == (0.6, "millimeter", UCUM, "mm")
    assert qty(details, "pixelSpacingY") == (0.7, "millimeter", UCUM, "mm")
    assert qty(details, "sliceThickness") == (1.25, "millimeter", UCUM, "mm")
    image_type = sub(details, "imageType")["valueCodeableConcept"]
    assert image_type["text"] == "ORIGINAL\\PRIMARY\\AXIAL\\CSA RESAMPLED"
    assert [c["code"] for c in image_type["coding"]] == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert sub(details, "burnedInAnnotation")["valueBoolean"] is False
    validate([], out)


def test_single_valued_pixel_spacing_does_not_crash() -> None:
    warnings: list[str] = []
    out = mii.instance_extensions(ds(PixelSpacing=[0.5], SliceThickness=2), warnings=warnings)
    details = ext(out, "mii-ex-bildgebung-instanz-details")
    assert subs(details, "pixelSpacingX") == []
    assert subs(details, "pixelSpacingY") == []
    assert qty(details, "sliceThickness")[0] == 2
    assert any("PixelSpacing" in w for w in warnings)
    validate([], out)


def test_padded_image_type_is_stripped() -> None:
    out = mii.instance_extensions(ds(ImageType=["DERIVED ", " SECONDARY", ""]))
    image_type = sub(ext(out, "mii-ex-bildgebung-instanz-details"), "imageType")[
        "valueCodeableConcept"
    ]
    assert [c["code"] for c in image_type["coding"]] == ["DERIVED", "SECONDARY"]
    assert image_type["text"] == "DERIVED\\SECONDARY"
    validate([], out)


def test_enhanced_multiframe_pixel_measures() -> None:
    measures = ds(PixelSpacing=[0.5, 0.4], SliceThickness=1)
    inst = ds(SharedFunctionalGroupsSequence=[ds(PixelMeasuresSequence=[measures])])
    details = ext(mii.instance_extensions(inst), "mii-ex-bildgebung-instanz-details")
    assert qty(details, "pixelSpacingX")[0] == 0.4
    assert qty(details, "sliceThickness")[0] == 1


def test_instance_without_details_gives_nothing() -> None:
    assert mii.instance_extensions(ds(Modality="SR")) == []


def test_burned_in_annotation_yes() -> None:
    details = ext(
        mii.instance_extensions(ds(BurnedInAnnotation="YES ")), "mii-ex-bildgebung-instanz-details"
    )
    assert sub(details, "burnedInAnnotation")["valueBoolean"] is True


# --- study ----------------------------------------------------------------------------------------


def test_study_extensions() -> None:
    insts = [
        ds(ReasonForTheRequestedProcedure="V.a. Pneumonie"),
        ds(RequestAttributesSequence=[ds(ReasonForTheRequestedProcedure="Fieber")]),
        ds(ReasonForTheRequestedProcedure="V.a.  Pneumonie"),
    ]
    out = mii.study_extensions(insts, weight_ref="Observation/w1", height_ref="Observation/h1")
    assert ext(out, "mii-ex-bildgebung-bildgebungsgrund")["valueString"] == "V.a. Pneumonie; Fieber"
    assert ext(out, "mii-ex-bildgebung-gewicht")["valueReference"] == {
        "reference": "Observation/w1"
    }
    assert ext(out, "mii-ex-bildgebung-groesse")["valueReference"] == {
        "reference": "Observation/h1"
    }
    validate([], None, out)


def test_study_extensions_empty() -> None:
    assert mii.study_extensions([ds(Modality="CT")]) == []


# --- robustness -----------------------------------------------------------------------------------

ODD_VALUES: list[Any] = [
    None,
    [],
    [None],
    [""],
    ["  "],
    ["abc"],
    [{"x": 1}],
    [True],
    [float("nan")],
    [1e400],
    [-1],
]
ODD_KEYWORDS = [
    "KVP",
    "CTDIvol",
    "ExposureTime",
    "XRayTubeCurrent",
    "Exposure",
    "ScanningSequence",
    "SequenceVariant",
    "MagneticFieldStrength",
    "ViewPosition",
    "Units",
    "SeriesType",
    "PixelSpacing",
    "SliceThickness",
    "ImageType",
    "BurnedInAnnotation",
    "ContrastBolusAgent",
    "TransducerType",
    "TransducerFrequency",
    "RadiopharmaceuticalInformationSequence",
    "ReasonForTheRequestedProcedure",
]


@pytest.mark.parametrize("keyword", ODD_KEYWORDS)
@pytest.mark.parametrize("modality", ["CT", "MR", "CR", "DX", "MG", "NM", "PT", "US", "OT"])
def test_odd_values_never_crash_and_always_validate(keyword: str, modality: str) -> None:
    for value in ODD_VALUES:
        inst = {key(keyword): {"vr": "XX", "Value": value} if value is not None else {"vr": "XX"}}
        series = mii.series_extensions(modality, [inst], warnings=[])
        instance = mii.instance_extensions(inst, warnings=[])
        study = mii.study_extensions([inst], warnings=[])
        validate(series, instance, study, modality=modality)


def test_garbage_elements_are_tolerated() -> None:
    inst: dict[str, Any] = {"00180060": "not an element", "00180050": {"Value": "5"}, "junk": 1}
    assert (
        mii.series_extensions("CT", [inst])[0]["url"] == BASE + "mii-ex-bildgebung-kontrastmittel"
    )


def test_empty_instances() -> None:
    assert mii.series_extensions("CT", []) == []
    assert mii.study_extensions([]) == []
