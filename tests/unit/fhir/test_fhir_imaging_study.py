"""ImagingStudy mapping: study level, series, instances."""

from __future__ import annotations

from typing import Any

import pytest

from streamer.fhir import MappingOptions, build_study_bundle
from tests.unit.fhir._fhir_helpers import SERIES, STUDY, inst, item, one

DCM = "http://dicom.nema.org/resources/ontology/DCM"
SCT = "http://snomed.info/sct"
OPTS = MappingOptions(dicom_timezone="Europe/Berlin", add_instances=True)


def study_of(
    instances: list[dict[str, Any]], opts: MappingOptions = OPTS
) -> tuple[dict[str, Any], tuple[str, ...]]:
    result = build_study_bundle(instances, opts)
    return one(result.bundle, "ImagingStudy"), result.warnings


def test_study_identifiers_with_accession_issuer() -> None:
    issuer = item(
        LocalNamespaceEntityID="RIS", UniversalEntityID="1.2.3.4.5", UniversalEntityIDType="ISO"
    )
    study, _ = study_of(
        [inst(1, AccessionNumber="ACC-1", IssuerOfAccessionNumberSequence=[issuer], StudyID="S7")]
    )
    assert study["identifier"][0] == {
        "use": "official",
        "system": "urn:dicom:uid",
        "value": f"urn:oid:{STUDY}",
    }
    acsn = study["identifier"][1]
    assert acsn["type"]["coding"][0]["code"] == "ACSN"
    assert acsn["type"]["coding"][0]["system"] == "http://terminology.hl7.org/CodeSystem/v2-0203"
    assert acsn["system"] == "urn:oid:1.2.3.4.5"
    assert acsn["assigner"] == {"display": "RIS"}
    assert acsn["value"] == "ACC-1"
    # StudyID is scoped to its study: "S7" of another study never matches
    assert study["identifier"][2] == {
        "use": "secondary",
        "system": f"urn:oid:{STUDY}",
        "value": "S7",
    }
    assert study["basedOn"] == [{"type": "ServiceRequest", "identifier": acsn}]
    assert study["status"] == "available"


def test_accession_issuer_uri_and_uuid() -> None:
    uri = item(UniversalEntityID="https://ris.example/acc", UniversalEntityIDType="URI")
    study, _ = study_of([inst(1, AccessionNumber="A", IssuerOfAccessionNumberSequence=[uri])])
    assert study["identifier"][1]["system"] == "https://ris.example/acc"
    uid = item(
        UniversalEntityID="0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0", UniversalEntityIDType="UUID"
    )
    study, _ = study_of([inst(1, AccessionNumber="A", IssuerOfAccessionNumberSequence=[uid])])
    assert study["identifier"][1]["system"] == "urn:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def test_started_uses_timezone_offset_first() -> None:
    study, _ = study_of(
        [inst(1, StudyDate="20240315", StudyTime="101500.25", TimezoneOffsetFromUTC="+0900")]
    )
    assert study["started"] == "2024-03-15T10:15:00.25+09:00"


def test_started_uses_dicom_timezone_dst() -> None:
    study, _ = study_of([inst(1, StudyDate="20240715", StudyTime="0930")])
    assert study["started"] == "2024-07-15T09:30:00+02:00"


def test_cached_dates_warn_as_often_as_they_are_read() -> None:
    # dates are parsed once per raw strings (context._zoned): each study still gets its own warnings
    for _ in range(2):
        study, warnings = study_of(
            [inst(1, StudyDate="20240316", StudyTime="101500")], MappingOptions()
        )
        assert study["started"] == "2024-03-16"
        assert sum("no time zone known" in w for w in warnings) == 1
    study, warnings = study_of([inst(1, StudyDate="20240316", StudyTime="25")])
    assert study["started"] == "2024-03-16"
    assert any("StudyTime (0008,0030): invalid value dropped" in w for w in warnings)


def test_started_without_zone_is_date_only_with_warning() -> None:
    study, warnings = study_of(
        [inst(1, StudyDate="20240315", StudyTime="101500")], MappingOptions()
    )
    assert study["started"] == "2024-03-15"
    assert any("no time zone known" in w for w in warnings)


def test_started_date_without_time() -> None:
    study, _ = study_of([inst(1, StudyDate="20240315")])
    assert study["started"] == "2024-03-15"


def test_started_bad_values_dropped_with_warning() -> None:
    study, warnings = study_of([inst(1, StudyDate="20241350", StudyTime="101500")])
    assert "started" not in study
    assert "StudyDate (0008,0020): invalid value dropped" in warnings
    study, warnings = study_of([inst(1, StudyDate="20240315", StudyTime="256000")])
    assert study["started"] == "2024-03-15"
    assert "StudyTime (0008,0030): invalid value dropped" in warnings
    study, warnings = study_of(
        [inst(1, StudyDate="20240315", StudyTime="1015", TimezoneOffsetFromUTC="+9999")]
    )
    assert study["started"] == "2024-03-15T10:15:00+01:00"
    assert "TimezoneOffsetFromUTC (0008,0201): invalid value dropped" in warnings


def test_modality_list_and_series_modality_with_display() -> None:
    instances = [
        inst(1, series="1.2.3.1", Modality="CT", SeriesNumber=1),
        inst(2, series="1.2.3.2", Modality="MR", SeriesNumber=2),
        inst(3, series="1.2.3.3", Modality="CT", SeriesNumber=3),
    ]
    instances[0]["00080061"] = {"vr": "CS", "Value": ["CT", "MR", "SR", "US"]}
    study, _ = study_of(instances)
    # only acquisition modalities (CID 29): SR is left out
    assert [m["code"] for m in study["modality"]] == ["CT", "MR", "US"]
    assert all(m["system"] == DCM for m in study["modality"])
    assert study["series"][0]["modality"] == {
        "system": DCM,
        "code": "CT",
        "display": "Computed Tomography",
    }
    assert study["numberOfSeries"] == 3 and study["numberOfInstances"] == 3


def test_description_procedure_codes_with_system_uris() -> None:
    codes = [
        item(CodeValue="RPID16", CodingSchemeDesignator="RADLEX", CodeMeaning="CT CHEST"),
        item(CodeValue="24627-2", CodingSchemeDesignator="LN", CodeMeaning="Chest CT"),
        item(CodeValue="77477000", CodingSchemeDesignator="SCT", CodeMeaning="CT"),
        item(
            CodeValue="113691",
            CodingSchemeDesignator="DCM",
            CodeMeaning="IEC Body Dosimetry Phantom",
        ),
        item(CodeValue="X1", CodingSchemeDesignator="99LOCAL", CodeMeaning="Local thing"),
        item(CodeMeaning="meaning only"),
    ]
    study, warnings = study_of([inst(1, StudyDescription="CT Thorax", ProcedureCodeSequence=codes)])
    assert study["description"] == "CT Thorax"
    pc = study["procedureCode"]
    assert pc[0] == {
        "coding": [{"system": "http://radlex.org", "code": "RPID16", "display": "CT CHEST"}],
        "text": "CT CHEST",
    }
    assert (
        pc[1]["coding"][0]["system"] == "http://loinc.org"
        and pc[1]["coding"][0]["code"] == "24627-2"
    )
    assert pc[2]["coding"][0]["system"] == SCT and pc[2]["coding"][0]["code"] == "77477000"
    assert pc[3]["coding"][0]["system"] == DCM
    assert pc[4] == {
        "coding": [
            {"system": "urn:dicom:coding-scheme:99LOCAL", "code": "X1", "display": "Local thing"}
        ],
        "text": "Local thing",
    }
    assert pc[5] == {"text": "meaning only"}
    assert any("'99LOCAL' has no known URI" in w for w in warnings)


def test_local_coding_scheme_from_identification_sequence() -> None:
    scheme = item(CodingSchemeDesignator="99LOCAL", CodingSchemeUID="1.2.3.99")
    codes = [
        item(
            CodeValue="X1",
            CodingSchemeDesignator="99LOCAL",
            CodingSchemeVersion="2",
            CodeMeaning="Local",
        )
    ]
    study, warnings = study_of(
        [inst(1, CodingSchemeIdentificationSequence=[scheme], ProcedureCodeSequence=codes)]
    )
    assert study["procedureCode"][0]["coding"][0] == {
        "system": "urn:oid:1.2.3.99",
        "version": "2",
        "code": "X1",
        "display": "Local",
    }
    assert not any("99LOCAL" in w for w in warnings)


def test_reason_codes_from_top_level_and_request_items() -> None:
    coded = item(CodeValue="R07.4", CodingSchemeDesignator="I10", CodeMeaning="Chest pain")
    request = item(
        ReasonForTheRequestedProcedure="suspected PE",
        ReasonForRequestedProcedureCodeSequence=[coded],
    )
    other = item(ReasonForTheRequestedProcedure="follow-up")
    study, _ = study_of(
        [inst(1, RequestAttributesSequence=[request], ReferencedRequestSequence=[other])]
    )
    reasons = study["reasonCode"]
    assert reasons[0]["coding"][0]["code"] == "R07.4"
    assert reasons[0]["coding"][0]["system"] == "http://hl7.org/fhir/sid/icd-10"
    assert (
        reasons[0]["text"] == "Chest pain"
    )  # the code's meaning; the request's text is its own entry
    assert reasons[1:] == [{"text": "suspected PE"}, {"text": "follow-up"}]


def test_referrer_and_interpreter_displays() -> None:
    study, _ = study_of(
        [
            inst(
                1,
                ReferringPhysicianName="Smith^Anna^^Dr.",
                NameOfPhysiciansReadingStudy=("House^Greg", "Wilson^James"),
            )
        ]
    )
    assert study["referrer"] == {"display": "Dr. Anna Smith"}
    assert study["interpreter"] == [{"display": "Greg House"}, {"display": "James Wilson"}]


def test_series_fields() -> None:
    study, _ = study_of(
        [
            inst(
                1,
                SeriesNumber=4,
                SeriesDescription="Axial",
                BodyPartExamined="chest ",
                Laterality="R",
                SeriesDate="20240315",
                SeriesTime="102000",
                PerformingPhysicianName="Tech^Tom",
                OperatorsName="Op^Olga",
            ),
        ]
    )
    s = study["series"][0]
    assert s["uid"] == SERIES and s["number"] == 4 and s["description"] == "Axial"
    assert s["numberOfInstances"] == 1
    assert s["started"] == "2024-03-15T10:20:00+01:00"
    assert s["bodySite"]["system"] == SCT and s["bodySite"]["code"] == "43799004"
    assert s["laterality"] == {"system": SCT, "code": "24028007", "display": "Right"}
    functions = [
        (p["function"]["coding"][0]["code"], p["actor"].get("display")) for p in s["performer"]
    ]
    assert ("PRF", "Tom Tech") in functions and ("SPRF", "Olga Op") in functions


def test_unmapped_body_part_kept_as_text() -> None:
    study, _ = study_of([inst(1, BodyPartExamined="XYZ")])
    assert study["series"][0]["bodySite"] == {"display": "XYZ"}


@pytest.mark.parametrize(
    ("tag", "value", "code"), [("Laterality", "L", "7771000"), ("ImageLaterality", "B", "51440002")]
)
def test_laterality_sources(tag: str, value: str, code: str) -> None:
    study, _ = study_of([inst(1, **{tag: value})])
    assert study["series"][0]["laterality"]["code"] == code


def test_image_laterality_unpaired_gives_none() -> None:
    study, warnings = study_of([inst(1, ImageLaterality="U")])
    assert "laterality" not in study["series"][0]
    assert not any("Laterality" in w for w in warnings)


def test_series_attributes_consistent_across_instances() -> None:
    instances = [
        inst(i, SeriesDescription="B" if i == 2 else "A", BodyPartExamined="CHEST")
        for i in (1, 2, 3)
    ]
    study, warnings = study_of(instances)
    assert study["series"][0]["description"] == "A"
    assert any(w.startswith("SeriesDescription (0008,103E): 2 different values") for w in warnings)


def test_series_attribute_taken_from_any_instance() -> None:
    instances = [inst(1), inst(2, BodyPartExamined="HEAD")]
    study, _ = study_of(instances)
    assert study["series"][0]["bodySite"]["code"] == "69536005"


def test_series_number_out_of_range_dropped() -> None:
    for number in (3_000_000_000, "3000000000", -5):
        study, warnings = study_of([inst(1, SeriesNumber=number)])
        assert "number" not in study["series"][0]
        assert any(w.startswith("SeriesNumber (0020,0011): ") for w in warnings), warnings


def test_series_order_by_number() -> None:
    instances = [
        inst(1, series="1.2.9", SeriesNumber=2),
        inst(1, series="1.2.8", SeriesNumber=10),
        inst(1, series="1.2.7", SeriesNumber=1),
    ]
    study, _ = study_of(instances)
    assert [s["uid"] for s in study["series"]] == ["1.2.7", "1.2.9", "1.2.8"]


def test_instances_sorted_by_number_with_sop_class_and_title() -> None:
    instances = [inst(n, ImageType=("ORIGINAL", "PRIMARY", "AXIAL ")) for n in (3, 1, 2)]
    study, _ = study_of(instances)
    listed = study["series"][0]["instance"]
    assert [i["number"] for i in listed] == [1, 2, 3]
    assert listed[0]["sopClass"] == {
        "system": "urn:ietf:rfc:3986",
        "code": "urn:oid:1.2.840.10008.5.1.4.1.1.2",
        "display": "CT Image Storage",
    }
    assert listed[0]["title"] == "ORIGINAL\\PRIMARY\\AXIAL"
    assert listed[0]["uid"] == f"{SERIES}.1"


def test_instance_title_precedence() -> None:
    concept = item(
        CodeValue="18748-4", CodingSchemeDesignator="LN", CodeMeaning="Diagnostic imaging report"
    )
    sr = inst(
        1, Modality="SR", ConceptNameCodeSequence=[concept], DocumentTitle="doc", ImageType=("X",)
    )
    labelled = inst(2, ContentLabel="LABEL", ConceptNameCodeSequence=[concept])
    doc = inst(3, DocumentTitle="My PDF")
    study, _ = study_of([sr, labelled, doc])
    assert [i["title"] for i in study["series"][0]["instance"]] == [
        "Diagnostic imaging report",
        "LABEL",
        "My PDF",
    ]


def test_instances_not_listed_by_default() -> None:
    study, _ = study_of([inst(1)], MappingOptions())
    assert "instance" not in study["series"][0]
    assert study["series"][0]["numberOfInstances"] == 1


def test_instance_number_invalid_dropped() -> None:
    study, warnings = study_of([inst(1, InstanceNumber="abc"), inst(2, InstanceNumber=-1)])
    listed = study["series"][0]["instance"]
    assert all("number" not in i for i in listed)
    assert "InstanceNumber (0020,0013): invalid value dropped" in warnings
    assert any("InstanceNumber (0020,0013): out of range" in w for w in warnings)


def test_missing_sop_class_instance_not_listed_but_counted() -> None:
    study, warnings = study_of([inst(1, SOPClassUID=...), inst(2)])
    assert [i["number"] for i in study["series"][0]["instance"]] == [2]
    assert study["series"][0]["numberOfInstances"] == 2
    assert any("SOPClassUID (0008,0016) missing" in w for w in warnings)


def test_location_from_department() -> None:
    study, _ = study_of([inst(1, InstitutionalDepartmentName="Radiology")])
    assert study["location"] == {"display": "Radiology"}


def test_study_modality_lists_acquisition_modalities_only() -> None:
    study, _ = study_of(
        [inst(1, Modality="SR"), inst(1, series="1.2.3.9", Modality="MR", SeriesNumber=2)]
    )
    assert [m["code"] for m in study["modality"]] == ["MR"]
    assert [s["modality"]["code"] for s in study["series"]] == ["SR", "MR"]
    sr_only, _ = study_of([inst(1, Modality="SR")])
    assert "modality" not in sr_only


def test_body_site_from_anatomic_region_sequence() -> None:
    region = item(CodeValue="51185008", CodingSchemeDesignator="SCT", CodeMeaning="Thorax")
    study, _ = study_of([inst(1, AnatomicRegionSequence=[region])])
    assert study["series"][0]["bodySite"] == {
        "system": SCT,
        "code": "51185008",
        "display": "Thorax",
    }


def test_series_started_falls_back_to_earliest_acquisition() -> None:
    instances = [
        inst(1, AcquisitionDate="20240315", AcquisitionTime="101000"),
        inst(2, AcquisitionDateTime="20240315100500+0100"),
    ]
    study, _ = study_of(instances)
    assert study["series"][0]["started"] == "2024-03-15T10:05:00+01:00"


def test_reasons_gathered_from_every_series_deduplicated() -> None:
    a = item(ReasonForTheRequestedProcedure="headache")
    b = item(ReasonForTheRequestedProcedure="trauma")
    instances = [
        inst(1, series="1.2.3.1", RequestAttributesSequence=[a]),
        inst(2, series="1.2.3.1", RequestAttributesSequence=[a]),
        inst(1, series="1.2.3.2", SeriesNumber=2, RequestAttributesSequence=[b]),
    ]
    study, _ = study_of(instances)
    assert study["reasonCode"] == [{"text": "headache"}, {"text": "trauma"}]


def test_acquisition_datetime_utc_offset_is_kept() -> None:
    study, _ = study_of(
        [inst(1, AcquisitionDateTime="20240315100500+0000", TimezoneOffsetFromUTC="+0200")]
    )
    assert study["series"][0]["started"] == "2024-03-15T10:05:00+00:00"
