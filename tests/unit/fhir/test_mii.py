"""MII-KDS Bildgebung profile mode (streamer.fhir.mii): extensions, UCUM codes, seed bugs B4 B9 B10 B11 B17 B18."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from fhir.resources.R4B.imagingstudy import ImagingStudy
from pydicom.datadict import dictionary_VR, tag_for_keyword

from streamer.fhir import mii

SCT = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
BASE = "https://www.medizininformatik-initiative.de/fhir/ext/modul-bildgebung/StructureDefinition/"


# --- helpers --------------------------------------------------------------------------------------


def key(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return f"{tag:08X}"


def ds(**elements: Any) -> dict[str, Any]:
    """DICOM JSON dataset by keyword; a list value gives several values, a dict list a sequence."""
    out: dict[str, Any] = {}
    for keyword, value in elements.items():
        vr = dictionary_VR(tag_for_keyword(keyword))
        values = value if isinstance(value, list) else [value]
        out[key(keyword)] = {"vr": vr, "Value": values} if value is not None else {"vr": vr}
    return out


def code_item(value: str, scheme: str, meaning: str) -> dict[str, Any]:
    return ds(CodeValue=value, CodingSchemeDesignator=scheme, CodeMeaning=meaning)


def ext(extensions: Sequence[Mapping[str, Any]], suffix: str) -> Mapping[str, Any]:
    hits = [e for e in extensions if e["url"] == BASE + suffix]
    assert len(hits) == 1, [e["url"] for e in extensions]
    return hits[0]


def subs(extension: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    return [s for s in extension.get("extension", []) if s["url"] == name]


def sub(extension: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    found = subs(extension, name)
    assert len(found) == 1, (name, extension)
    return found[0]


def qty(extension: Mapping[str, Any], name: str) -> tuple[Any, str, str, str]:
    q = sub(extension, name)["valueQuantity"]
    return q["value"], q["unit"], q["system"], q["code"]


def validate(
    series_ext: list[dict[str, Any]],
    instance_ext: list[dict[str, Any]] | None = None,
    study_ext: list[dict[str, Any]] | None = None,
    modality: str = "CT",
) -> ImagingStudy:
    """A minimal ImagingStudy carrying the extensions, validated with fhir.resources R4B."""
    resource = {
        "resourceType": "ImagingStudy",
        "meta": {"profile": [mii.profile_url("ImagingStudy")]},
        "status": "available",
        "subject": {"reference": "Patient/p"},
        "series": [
            {
                "uid": "1.2.3",
                "modality": {
                    "system": "http://dicom.nema.org/resources/ontology/DCM",
                    "code": modality,
                },
                "instance": [
                    {
                        "uid": "1.2.3.4",
                        "sopClass": {
                            "system": "urn:ietf:rfc:3986",
                            "code": "urn:oid:1.2.840.10008.5.1.4.1.1.2",
                        },
                    }
                ],
            }
        ],
    }
    if series_ext:
        resource["series"][0]["extension"] = series_ext  # type: ignore[index]
    if instance_ext:
        resource["series"][0]["instance"][0]["extension"] = instance_ext  # type: ignore[index]
    if study_ext:
        resource["extension"] = study_ext
    return ImagingStudy.model_validate(resource)


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


# --- CT -------------------------------------------------------------------------------------------

CT = ds(
    Modality="CT",
    KVP=120,
    CTDIvol=12.5,
    ExposureTime="500",
    XRayTubeCurrent=200,
    Exposure=100,
    ConvolutionKernel=["B30f", "SHARP"],
    SliceThickness="5.0",
    PixelSpacing=[0.7, 0.6],
)


def test_ct_series_extension_carries_ucum_codes() -> None:
    out = mii.series_extensions("CT", [CT])
    ct = ext(out, "mii-ex-bildgebung-modalitaet-ct")
    assert qty(ct, "CTDIvol") == (12.5, "milligray", UCUM, "mGy")
    assert qty(ct, "KVP") == (120, "kilovolt", UCUM, "kV")
    assert qty(ct, "exposureTime") == (500, "milliseconds", UCUM, "ms")
    assert qty(ct, "exposure") == (100, "milliampere second", UCUM, "mA.s")
    assert qty(ct, "xRayTubeCurrent") == (200, "milliampere", UCUM, "mA")
    assert sub(ct, "convolutionalKernel")["valueString"] == "B30f\\SHARP"
    assert ext(out, "mii-ex-bildgebung-serie-schichtdicke")["valueQuantity"] == {
        "value": 5,
        "unit": "millimeter",
        "system": UCUM,
        "code": "mm",
    }
    validate(out)


def test_ct_differing_values_give_the_series_maximum_and_a_warning() -> None:
    warnings: list[str] = []
    second = {**CT, **ds(XRayTubeCurrent=250)}
    ct = ext(
        mii.series_extensions("CT", [CT, second], warnings=warnings),
        "mii-ex-bildgebung-modalitaet-ct",
    )
    assert qty(ct, "xRayTubeCurrent")[0] == 250
    assert any("XRayTubeCurrent" in w for w in warnings)


def test_ct_micro_unit_fallbacks() -> None:
    inst = ds(Modality="CT", ExposureInuAs=1500, XRayTubeCurrentInuA=250000, ExposureTimeInuS=4000)
    ct = ext(mii.series_extensions("CT", [inst]), "mii-ex-bildgebung-modalitaet-ct")
    assert qty(ct, "exposure")[0] == 1.5
    assert qty(ct, "xRayTubeCurrent")[0] == 250
    assert qty(ct, "exposureTime")[0] == 4


def test_ct_slice_thickness_series_extension_only_when_all_agree() -> None:
    other = {**CT, **ds(SliceThickness=3)}
    out = mii.series_extensions("CT", [CT, other])
    assert all(e["url"] != BASE + "mii-ex-bildgebung-serie-schichtdicke" for e in out)


def test_numbers_as_json_numbers_or_strings() -> None:
    a = ext(mii.series_extensions("CT", [ds(KVP="120.0")]), "mii-ex-bildgebung-modalitaet-ct")
    b = ext(mii.series_extensions("CT", [ds(KVP=120)]), "mii-ex-bildgebung-modalitaet-ct")
    assert qty(a, "KVP") == qty(b, "KVP")


def test_zero_placeholders_are_dropped_with_a_warning() -> None:
    warnings: list[str] = []
    out = mii.series_extensions(
        "CR", [ds(Modality="CR", KVP=0, Exposure="0", ViewPosition="AP")], warnings=warnings
    )
    cr = ext(out, "mii-ex-bildgebung-modalitaet-mg-cr-dx")
    assert subs(cr, "KVP") == []
    assert subs(cr, "exposure") == []
    assert any("KVP" in w for w in warnings)


def test_non_numeric_ds_is_left_out_not_nested() -> None:
    out = mii.series_extensions("CT", [ds(KVP="120kV", CTDIvol=3)])
    ct = ext(out, "mii-ex-bildgebung-modalitaet-ct")
    assert subs(ct, "KVP") == []
    validate(out)


# --- MR -------------------------------------------------------------------------------------------


def test_mr_series_extension() -> None:
    inst = ds(
        Modality="MR",
        MagneticFieldStrength=3,
        EchoTime=4.5,
        RepetitionTime=2000,
        InversionTime=900,
        FlipAngle=9,
        ScanningSequence=["GR", "IR"],
        SequenceVariant=["SK", "SP", "MP"],
    )
    out = mii.series_extensions("MR", [inst])
    mr = ext(out, "mii-ex-bildgebung-modalitaet-mr")
    assert qty(mr, "magneticFieldStrength") == (3, "tesla", UCUM, "T")
    assert qty(mr, "echoTime") == (4.5, "milliseconds", UCUM, "ms")
    assert qty(mr, "repetitionTime") == (2000, "milliseconds", UCUM, "ms")
    assert qty(mr, "inversionTime") == (900, "milliseconds", UCUM, "ms")
    assert qty(mr, "flipAngle") == (9, "plane angle degree", UCUM, "deg")
    variants = [
        s["valueCodeableConcept"]["coding"][0]["code"] for s in subs(mr, "scanningSequenceVariant")
    ]
    assert variants == ["SK", "SP", "MP"]
    validate(out, modality="MR")


def test_B9_scanning_sequence_multi_valued_read_fully() -> None:
    first = ds(Modality="MR", ScanningSequence=["SE", "IR"])
    # a non-standard backslash-joined string and a third instance adding EP
    second = ds(Modality="MR", ScanningSequence="SE\\IR")
    third = ds(Modality="MR", ScanningSequence=["EP"])
    mr = ext(mii.series_extensions("MR", [first, second, third]), "mii-ex-bildgebung-modalitaet-mr")
    codings = [s["valueCodeableConcept"]["coding"][0] for s in subs(mr, "scanningSequence")]
    assert [c["code"] for c in codings] == ["SE", "IR", "EP"]
    assert all(
        c["system"].endswith("/CodeSystem/mii-cs-bildgebung-scanning-sequence") for c in codings
    )


def test_mr_unknown_scanning_sequence_left_out_with_warning() -> None:
    warnings: list[str] = []
    inst = ds(Modality="MR", ScanningSequence=["SE", "XX"], MagneticFieldStrength=1.5)
    out = mii.series_extensions("MR", [inst], warnings=warnings)
    mr = ext(out, "mii-ex-bildgebung-modalitaet-mr")
    assert [
        s["valueCodeableConcept"]["coding"][0]["code"] for s in subs(mr, "scanningSequence")
    ] == ["SE"]
    assert any("XX" in w for w in warnings)
    validate(out, modality="MR")


# --- MG / CR / DX ---------------------------------------------------------------------------------


def test_B4_cr_view_position_is_mapped() -> None:
    out = mii.series_extensions("CR", [ds(Modality="CR", ViewPosition="PA", KVP=125)])
    cr = ext(out, "mii-ex-bildgebung-modalitaet-mg-cr-dx")
    concept = sub(cr, "viewPosition")["valueCodeableConcept"]
    assert concept["coding"] == [
        {"system": SCT, "code": "272479007", "display": "postero-anterior"}
    ]
    assert concept["text"] == "PA"
    assert qty(cr, "KVP") == (125, "kilovolt", UCUM, "kV")
    validate(out, modality="CR")


@pytest.mark.parametrize(
    ("modality", "view"), [("CR", "LL"), ("DX", "RLD"), ("MG", "XX"), ("CR", "ll")]
)
def test_B4_any_view_position_never_crashes(modality: str, view: str) -> None:
    out = mii.series_extensions(modality, [ds(Modality=modality, ViewPosition=view)])
    concept = sub(ext(out, "mii-ex-bildgebung-modalitaet-mg-cr-dx"), "viewPosition")[
        "valueCodeableConcept"
    ]
    assert concept["text"] == view
    assert None not in concept.get("coding", [])
    validate(out, modality=modality)


def test_B4_unmapped_view_position_is_text_only() -> None:
    out = mii.series_extensions("DX", [ds(Modality="DX", ViewPosition="RLD")])
    concept = sub(ext(out, "mii-ex-bildgebung-modalitaet-mg-cr-dx"), "viewPosition")[
        "valueCodeableConcept"
    ]
    assert concept == {"text": "RLD"}


def test_mg_view_position_uses_cid_4014() -> None:
    out = mii.series_extensions("MG", [ds(Modality="MG", ViewPosition="MLO")])
    concept = sub(ext(out, "mii-ex-bildgebung-modalitaet-mg-cr-dx"), "viewPosition")[
        "valueCodeableConcept"
    ]
    assert concept["coding"][0]["code"] == "399368009"


def test_view_positions_differing_between_instances_kept_as_text() -> None:
    warnings: list[str] = []
    insts = [ds(Modality="CR", ViewPosition="PA"), ds(Modality="CR", ViewPosition="LL")]
    out = mii.series_extensions("CR", insts, warnings=warnings)
    concept = sub(ext(out, "mii-ex-bildgebung-modalitaet-mg-cr-dx"), "viewPosition")[
        "valueCodeableConcept"
    ]
    assert concept == {"text": "PA\\LL"}
    assert warnings


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


def test_B10_pt_radiopharmaceutical_uses_the_radiopharmaceutical_table() -> None:
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


def test_B10_pt_free_text_only_radiopharmaceutical() -> None:
    item = ds(Radiopharmaceutical="FDG")
    out = mii.series_extensions(
        "PT", [ds(Modality="PT", RadiopharmaceuticalInformationSequence=[item])]
    )
    pharma = sub(ext(out, "mii-ex-bildgebung-modalitaet-pt"), "radiopharmaceutical")[
        "valueCodeableConcept"
    ]
    assert pharma["coding"][0]["code"] == "35321007"
    assert pharma["text"] == "FDG"


def test_B10_unknown_radiopharmaceutical_is_text_only() -> None:
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
def test_B11_unknown_units_do_not_crash(modality: str) -> None:
    out = mii.series_extensions(modality, [ds(Modality=modality, Units="XYZ")])
    extension = ext(out, f"mii-ex-bildgebung-modalitaet-{modality.lower()}")
    assert sub(extension, "units")["valueCodeableConcept"] == {"text": "XYZ"}
    validate(out, modality=modality)


def test_B17_nm_half_life_is_emitted() -> None:
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
def test_B17_missing_or_odd_sequences_do_not_crash(instance: dict[str, Any]) -> None:
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


def test_B18_single_valued_pixel_spacing_does_not_crash() -> None:
    warnings: list[str] = []
    out = mii.instance_extensions(ds(PixelSpacing=[0.5], SliceThickness=2), warnings=warnings)
    details = ext(out, "mii-ex-bildgebung-instanz-details")
    assert subs(details, "pixelSpacingX") == []
    assert subs(details, "pixelSpacingY") == []
    assert qty(details, "sliceThickness")[0] == 2
    assert any("PixelSpacing" in w for w in warnings)
    validate([], out)


def test_B18_padded_image_type_is_stripped() -> None:
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


def test_mii_tags_lists_the_tags_read() -> None:
    for keyword in (
        "KVP",
        "RadiopharmaceuticalInformationSequence",
        "RadionuclideHalfLife",
        "CodeValue",
        "Units",
    ):
        assert key(keyword) in mii.MII_TAGS
