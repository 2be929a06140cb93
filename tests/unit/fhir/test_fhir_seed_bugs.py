"""One regression test per mapping bug B1..B21 of the seed library (shared/docs/seed-library.md §5).

B14 (from_directory returns a coroutine) concerns the library API and is tested with it (tests/unit/library).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle

from streamer.errors import ConfigError, InvalidInstanceError
from streamer.fhir import MappingOptions, build_study_bundle, bundle_json
from tests.unit.fhir._fhir_helpers import SERIES, inst, item, one, pydicom_json, resources

SCT = "http://snomed.info/sct"
BASE = "https://www.medizininformatik-initiative.de/fhir/ext/modul-bildgebung/StructureDefinition/"
MII = MappingOptions(dicom_timezone="Europe/Berlin", add_instances=True, profile="mii")
CORE = MappingOptions(dicom_timezone="Europe/Berlin", add_instances=True)


def _extensions(node: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "extension":
                out.extend(v)
            out.extend(_extensions(v))
    elif isinstance(node, list):
        for v in node:
            out.extend(_extensions(v))
    return out


def _series_ext(bundle: dict[str, Any], suffix: str) -> dict[str, Any]:
    series = one(bundle, "ImagingStudy")["series"][0]
    found: list[dict[str, Any]] = [
        e for e in series.get("extension", []) if e["url"] == BASE + suffix
    ]
    assert len(found) == 1, [e["url"] for e in series.get("extension", [])]
    return found[0]


def _sub(ext: dict[str, Any], url: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [e for e in ext["extension"] if e["url"] == url]
    assert len(found) == 1, url
    return found[0]


def test_B1_every_extension_has_a_url_and_validates_with_fhir_resources_8_3() -> None:
    for name in ("CT_small.dcm", "MR_small.dcm"):
        bundle = build_study_bundle([pydicom_json(name)], MII).bundle
        exts = _extensions(bundle)
        assert exts, name
        assert all(isinstance(e.get("url"), str) and e["url"] for e in exts)
        Bundle.model_validate(bundle)


def test_B2_patient_name_from_standard_dicom_json_pn() -> None:
    bundle = build_study_bundle(
        [inst(1, PatientName={"Alphabetic": "Doe^John^A^Dr.^MD"})], CORE
    ).bundle
    name = one(bundle, "Patient")["name"][0]
    assert name["family"] == "Doe"
    assert name["given"] == ["John", "A"]
    assert name["prefix"] == ["Dr."] and name["suffix"] == ["MD"]
    real = one(build_study_bundle([pydicom_json("CT_small.dcm")], CORE).bundle, "Patient")["name"][
        0
    ]
    assert real["family"] == "CompressedSamples" and real["given"] == ["CT1"]


def test_B3_codings_carry_code_and_uri_system_and_display() -> None:
    proc = item(
        CodeValue="RPID16",
        CodingSchemeDesignator="RADLEX",
        CodingSchemeVersion="4.0",
        CodeMeaning="CT CHEST",
    )
    reason = item(CodeValue="29857009", CodingSchemeDesignator="SCT", CodeMeaning="Chest pain")
    bundle = build_study_bundle(
        [inst(1, ProcedureCodeSequence=[proc], ReasonForRequestedProcedureCodeSequence=[reason])],
        CORE,
    ).bundle
    study = one(bundle, "ImagingStudy")
    assert study["procedureCode"][0]["coding"][0] == {
        "system": "http://radlex.org",
        "version": "4.0",
        "code": "RPID16",
        "display": "CT CHEST",
    }
    assert study["reasonCode"][0]["coding"][0] == {
        "system": SCT,
        "code": "29857009",
        "display": "Chest pain",
    }


def test_B4_cr_view_position_and_unmapped_codes_do_not_crash() -> None:
    cr = pydicom_json("dicomdirtests/77654033/CR1/6154")
    bundle = build_study_bundle([cr], MII).bundle
    ext = _series_ext(bundle, "mii-ex-bildgebung-modalitaet-mg-cr-dx")
    view = _sub(ext, "viewPosition")["valueCodeableConcept"]
    assert (
        view["coding"][0]["system"] == SCT and view["coding"][0]["code"] == "399173006"
    )  # LL: left lateral
    odd = build_study_bundle([inst(1, Modality="MG", ViewPosition="XX")], MII).bundle
    ext = _series_ext(odd, "mii-ex-bildgebung-modalitaet-mg-cr-dx")
    assert _sub(ext, "viewPosition")["valueCodeableConcept"] == {"text": "XX"}


def test_B5_elements_without_value_never_leak_json_text() -> None:
    ds = inst(1, PatientID=None, IssuerOfPatientID=None, AccessionNumber=None)
    ds["00100010"] = {"vr": "PN", "Value": []}
    ds["00081030"] = {"vr": "LO", "Value": [None]}
    result = build_study_bundle([ds], CORE)
    text = bundle_json(result).decode()
    assert '"vr"' not in text and "None" not in text
    patient = one(result.bundle, "Patient")
    assert "name" not in patient and "identifier" not in patient
    study = one(result.bundle, "ImagingStudy")
    assert "description" not in study and len(study["identifier"]) == 1


def test_B6_reason_is_read_from_the_request_item() -> None:
    coded = item(CodeValue="R07.4", CodingSchemeDesignator="I10", CodeMeaning="Chest pain")
    request = item(
        ReasonForTheRequestedProcedure="rule out PE",
        ReasonForRequestedProcedureCodeSequence=[coded],
    )
    study = one(
        build_study_bundle([inst(1, ReferencedRequestSequence=[request])], CORE).bundle,
        "ImagingStudy",
    )
    assert study["reasonCode"] == [
        {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/sid/icd-10",
                    "code": "R07.4",
                    "display": "Chest pain",
                }
            ],
            "text": "Chest pain",
        },
        {"text": "rule out PE"},  # the request's free text, kept apart from the coded reason
    ]


def test_B7_observation_not_lost_without_study_time_or_timezone() -> None:
    no_time = build_study_bundle([inst(1, PatientWeight="80", StudyDate="20240315")], CORE)
    assert one(no_time.bundle, "Observation")["effectiveDateTime"] == "2024-03-15"
    no_zone = build_study_bundle(
        [inst(1, PatientWeight="80", StudyDate="20240315", StudyTime="1015")], MappingOptions()
    )
    obs = one(no_zone.bundle, "Observation")
    assert obs["valueQuantity"]["value"] == 80.0 and obs["effectiveDateTime"] == "2024-03-15"
    numeric_tm = inst(1, PatientWeight="80", StudyDate="20240315")
    numeric_tm["00080030"] = {"vr": "TM", "Value": [101500]}
    assert (
        one(build_study_bundle([numeric_tm], CORE).bundle, "Observation")["effectiveDateTime"]
        == "2024-03-15T10:15:00+01:00"
    )


def test_B8_missing_modality_is_not_fatal() -> None:
    result = build_study_bundle([inst(1, Modality=...)], CORE)
    series = one(result.bundle, "ImagingStudy")["series"][0]
    assert series["modality"]["code"] == "OT"
    assert "Modality (0008,0060) missing in a series: coded as OT (Other)" in result.warnings


def test_B9_multi_valued_elements_keep_all_values() -> None:
    ds = inst(
        1,
        Manufacturer="ACME",
        SoftwareVersions=("V1", "V2", "V3"),
        PatientTelephoneNumbers=("111", "222"),
        PatientName=("Doe^John", "Doe^Johnny"),
        Modality="MR",
        ScanningSequence=("SE", "IR"),
    )
    bundle = build_study_bundle([ds], MII).bundle
    assert [v["value"] for v in one(bundle, "Device")["version"]] == ["V1", "V2", "V3"]
    patient = one(bundle, "Patient")
    assert [t["value"] for t in patient["telecom"]] == ["111", "222"]
    assert [n["given"] for n in patient["name"]] == [["John"], ["Johnny"]]
    ext = _series_ext(bundle, "mii-ex-bildgebung-modalitaet-mr")
    codes = [
        c["code"]
        for e in ext["extension"]
        if e["url"] == "scanningSequence"
        for c in e["valueCodeableConcept"]["coding"]
    ]
    assert codes == ["SE", "IR"]


def _pt(**extra: Any) -> dict[str, Any]:
    nuclide = item(CodeValue="C-111A1", CodingSchemeDesignator="SRT", CodeMeaning="^18^Fluorine")
    rp = item(
        Radiopharmaceutical="Fluorodeoxyglucose",
        RadionuclideCodeSequence=[nuclide],
        RadionuclideTotalDose="370000000",
        RadionuclideHalfLife="6586.2",
        RadiopharmaceuticalStartTime="090000",
    )
    return inst(
        1,
        Modality="PT",
        SOPClassUID="1.2.840.10008.5.1.4.1.1.128",
        RadiopharmaceuticalInformationSequence=[rp],
        AcquisitionTime="100000",
        **extra,
    )


def test_B10_pt_radiopharmaceutical_uses_the_radiopharmaceutical_table() -> None:
    bundle = build_study_bundle([_pt(Units="BQML")], MII).bundle
    ext = _series_ext(bundle, "mii-ex-bildgebung-modalitaet-pt")
    rp = _sub(ext, "radiopharmaceutical")["valueCodeableConcept"]
    assert rp["coding"][0]["system"] == SCT
    assert rp["coding"][0]["code"] == "35321007"  # Fluorodeoxyglucose F^18^ (CID 4021)


def test_B11_unknown_units_do_not_crash() -> None:
    result = build_study_bundle([_pt(Units="XYZ")], MII)
    ext = _series_ext(result.bundle, "mii-ex-bildgebung-modalitaet-pt")
    urls = [e["url"] for e in ext["extension"]]
    assert "radiopharmaceutical" in urls
    units = [e for e in ext["extension"] if e["url"] == "units"]
    assert units == [] or "coding" not in units[0].get("valueCodeableConcept", {})


def test_B12_series_number_out_of_range_is_dropped_with_a_warning() -> None:
    for bad in (3_000_000_000, -5, "abc"):
        result = build_study_bundle([inst(1, SeriesNumber=bad)], CORE)
        assert "number" not in one(result.bundle, "ImagingStudy")["series"][0]
        assert any(w.startswith("SeriesNumber (0020,0011)") for w in result.warnings)


def test_B13_duplicate_sop_instance_uid_last_one_wins() -> None:
    result = build_study_bundle([inst(1, InstanceNumber=5), inst(1, InstanceNumber=6)], CORE)
    listed = one(result.bundle, "ImagingStudy")["series"][0]["instance"]
    assert [(i["uid"], i["number"]) for i in listed] == [(f"{SERIES}.1", 6)]
    assert f"duplicate SOPInstanceUID {SERIES}.1: the last one is used" in result.warnings


@pytest.mark.parametrize(
    ("tm", "started"),
    [
        ("10:15:00", "2024-03-15T10:15:00+01:00"),
        ("1015", "2024-03-15T10:15:00+01:00"),
        ("10", "2024-03-15T10:00:00+01:00"),
        ("235960", "2024-03-15T23:59:59+01:00"),
        ("256000", "2024-03-15"),
    ],
)
def test_B15_time_parsing_never_crashes_and_keeps_precision(tm: str, started: str) -> None:
    study = one(
        build_study_bundle([inst(1, StudyDate="20240315", StudyTime=tm)], CORE).bundle,
        "ImagingStudy",
    )
    assert study["started"] == started


def test_B16_timezone_missing_or_invalid() -> None:
    ds = inst(
        1, StudyDate="20240315", StudyTime="101500", SeriesDate="20240315", SeriesTime="101500"
    )
    study = one(build_study_bundle([ds], MappingOptions()).bundle, "ImagingStudy")
    assert study["started"] == "2024-03-15" and study["series"][0]["started"] == "2024-03-15"
    with pytest.raises(ConfigError, match="dicom_timezone"):
        build_study_bundle([ds], MappingOptions(dicom_timezone="Mars/Base"))
    utc = one(build_study_bundle([ds], MappingOptions(dicom_timezone="UTC")).bundle, "ImagingStudy")
    assert utc["started"] == "2024-03-15T10:15:00+00:00"


def test_B17_nm_half_life_emitted_and_missing_sequences_tolerated() -> None:
    nuclide = item(CodeValue="C-163A8", CodingSchemeDesignator="SRT", CodeMeaning="^99m^Technetium")
    rp = item(
        RadionuclideCodeSequence=[nuclide],
        RadionuclideHalfLife="21624",
        RadionuclideTotalDose="740",
    )
    bundle = build_study_bundle(
        [inst(1, Modality="NM", RadiopharmaceuticalInformationSequence=[rp])], MII
    ).bundle
    ext = _series_ext(bundle, "mii-ex-bildgebung-modalitaet-nm")
    assert _sub(ext, "radionuclideHalfLife")["valueQuantity"]["value"] == 21624
    bare = build_study_bundle(
        [
            inst(
                1,
                Modality="NM",
                RadiopharmaceuticalInformationSequence=[item(Radiopharmaceutical="X")],
            )
        ],
        MII,
    )
    assert one(bare.bundle, "ImagingStudy")["series"][0]["modality"]["code"] == "NM"
    pt = build_study_bundle(
        [inst(1, Modality="PT", RadiopharmaceuticalInformationSequence=[{}])], MII
    )
    assert one(pt.bundle, "ImagingStudy")["series"][0]["modality"]["code"] == "PT"


@pytest.mark.parametrize("opts", [MII, dataclasses.replace(MII, add_instances=False)])
def test_B18_single_pixel_spacing_and_padded_image_type(opts: MappingOptions) -> None:
    ds = inst(
        1, PixelSpacing=("0.5",), ImageType=("DERIVED ", "PRIMARY "), BodyPartExamined="TSPINE "
    )
    result = build_study_bundle([ds], opts)
    series = one(result.bundle, "ImagingStudy")["series"][0]
    assert series["bodySite"]["system"] == SCT
    if opts.add_instances:
        instance = series["instance"][0]
        assert instance["title"] == "DERIVED\\PRIMARY"
        details = [
            e
            for e in instance.get("extension", [])
            if e["url"] == BASE + "mii-ex-bildgebung-instanz-details"
        ]
        image_type = _sub(details[0], "imageType")["valueCodeableConcept"]
        assert [c["code"] for c in image_type["coding"]] == ["DERIVED", "PRIMARY"]
        assert not any(s["url"].startswith("pixelSpacing") for s in details[0]["extension"])


def test_B19_inputs_and_options_are_not_mutated() -> None:
    instances = [inst(1, PatientWeight="80"), inst(2)]
    before = orjson.dumps(instances)
    opts = MappingOptions(dicom_timezone="UTC")
    build_study_bundle(instances, opts)
    assert orjson.dumps(instances) == before
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.add_instances = True  # type: ignore[misc]


def test_B20_issuer_assigner_serializes_without_warnings() -> None:
    ds = inst(1, PatientID="1", IssuerOfPatientID="HOSP")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = build_study_bundle([ds], CORE)
        data = bundle_json(result)
        Bundle.model_validate_json(data).model_dump_json()
    assert one(result.bundle, "Patient")["identifier"][0]["assigner"] == {"display": "HOSP"}


def test_B21_full_url_and_image_type_title_and_no_uid_is_a_typed_error() -> None:
    result = build_study_bundle([inst(1, ImageType=("DERIVED", "PRIMARY"))], CORE)
    assert all(e["fullUrl"].startswith("urn:uuid:") for e in result.bundle["entry"])
    assert (
        one(result.bundle, "ImagingStudy")["series"][0]["instance"][0]["title"]
        == "DERIVED\\PRIMARY"
    )
    readme_instance = inst(1, SeriesInstanceUID=...)
    with pytest.raises(InvalidInstanceError, match="SeriesInstanceUID"):
        build_study_bundle([readme_instance], CORE)
    assert resources(result.bundle, "Patient")
