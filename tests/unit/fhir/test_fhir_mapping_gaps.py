"""The mapping gaps of issue 11 ("Conformance you can prove"), one test group per item: requested procedure
codes and ids, unknown coding schemes, no invented values, performer function, body height in cm, reasons kept
apart, modality value sets, the MII Patient profile claim, Bundle consistency in the product."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest

from streamer.errors import MappingError
from streamer.fhir import MappingOptions, build_study_bundle
from streamer.fhir.consistency import check_bundle, problems
from streamer.fhir.mii.person import PATIENT as MII_PATIENT
from streamer.fhir.mii.person import claims_patient_profile
from tests.unit.fhir._fhir_helpers import SERIES, STUDY, inst, item, one

OPTS = MappingOptions(dicom_timezone="Europe/Berlin", add_instances=True)
MII = MappingOptions(dicom_timezone="Europe/Berlin", add_instances=True, profile="mii")
RADLEX = "http://radlex.org"
LOINC = "http://loinc.org"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def code(value: str, scheme: str, meaning: str) -> dict[str, Any]:
    return item(CodeValue=value, CodingSchemeDesignator=scheme, CodeMeaning=meaning)


def mapped(*instances: dict[str, Any], opts: MappingOptions = OPTS) -> dict[str, Any]:
    return build_study_bundle(list(instances), opts).bundle


# --- 1. RequestedProcedureCodeSequence, Requested Procedure ID, Scheduled Procedure Step ID -------------------


def test_requested_procedure_codes_join_the_procedure_codes_without_duplicates() -> None:
    ct_chest = code("RPID16", "RADLEX", "CT Chest")
    request = item(
        RequestedProcedureCodeSequence=[code("24627-2", "LN", "CT Chest"), ct_chest],
        RequestedProcedureID="RP-7",
        ScheduledProcedureStepID="SPS-9",
    )
    ds = inst(
        1,
        ProcedureCodeSequence=[ct_chest],
        RequestedProcedureCodeSequence=[code("RPID16", "RADLEX", "CT Chest (other text)")],
        RequestAttributesSequence=[request],
    )
    study = one(
        mapped(ds, inst(2, ProcedureCodeSequence=[ct_chest], RequestAttributesSequence=[request])),
        "ImagingStudy",
    )
    codings = [(c["system"], c["code"]) for cc in study["procedureCode"] for c in cc["coding"]]
    # performed first, then the requested ones not listed yet; RPID16 once although given three times
    assert codings == [(RADLEX, "RPID16"), (LOINC, "24627-2")]
    assert study["procedureCode"][0]["text"] == "CT Chest"


def test_requested_procedure_code_alone_and_in_the_referenced_request_sequence() -> None:
    ds = inst(
        1,
        ReferencedRequestSequence=[
            item(RequestedProcedureCodeSequence=[code("X1", "99LOCAL", "Local")])
        ],
    )
    study = one(mapped(ds), "ImagingStudy")
    assert study["procedureCode"] == [
        {
            "coding": [
                {"system": "urn:dicom:coding-scheme:99LOCAL", "code": "X1", "display": "Local"}
            ],
            "text": "Local",
        }
    ]


def test_requested_procedure_and_step_ids_are_based_on_references() -> None:
    ds = inst(
        1,
        AccessionNumber="ACC-1",
        RequestedProcedureID="RP-TOP",
        RequestAttributesSequence=[
            item(RequestedProcedureID="RP-1", ScheduledProcedureStepID="SPS-1"),
            item(RequestedProcedureID="RP-1", ScheduledProcedureStepID="SPS-2"),
        ],
    )
    based_on = one(mapped(ds), "ImagingStudy")["basedOn"]
    assert based_on[0]["type"] == "ServiceRequest"
    assert based_on[0]["identifier"]["type"]["coding"][0]["code"] == "ACSN"
    assert based_on[1:] == [
        {"type": "ServiceRequest", "identifier": {"type": {"text": label}, "value": value}}
        for label, value in (
            ("Requested Procedure ID", "RP-TOP"),
            ("Requested Procedure ID", "RP-1"),
            ("Scheduled Procedure Step ID", "SPS-1"),
            ("Scheduled Procedure Step ID", "SPS-2"),
        )
    ]


def test_no_request_data_no_based_on() -> None:
    assert "basedOn" not in one(mapped(inst(1)), "ImagingStudy")


# --- 2. coding schemes without a known URI -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("designator", "system"),
    [
        ("99LOCAL", "urn:dicom:coding-scheme:99LOCAL"),
        ("99 my/scheme", "urn:dicom:coding-scheme:99%20my%2Fscheme"),
        ("LOCAL", "urn:dicom:coding-scheme:LOCAL"),
    ],
)
def test_unknown_designator_gets_a_derived_recoverable_system(designator: str, system: str) -> None:
    ds = inst(1, ProcedureCodeSequence=[code("P1", designator, "Local procedure")])
    result = build_study_bundle([ds], OPTS)
    coding = one(result.bundle, "ImagingStudy")["procedureCode"][0]["coding"][0]
    assert coding == {"system": system, "code": "P1", "display": "Local procedure"}
    assert unquote(coding["system"].removeprefix("urn:dicom:coding-scheme:")) == designator
    assert any("has no known URI" in w and system[:60] in w for w in result.warnings)


def test_the_dataset_own_scheme_uri_wins_over_the_derived_system() -> None:
    ds = inst(
        1,
        CodingSchemeIdentificationSequence=[
            item(CodingSchemeDesignator="99LOCAL", CodingSchemeUID="1.2.3.99")
        ],
        ProcedureCodeSequence=[code("P1", "99LOCAL", "Local procedure")],
    )
    coding = one(mapped(ds), "ImagingStudy")["procedureCode"][0]["coding"][0]
    assert coding["system"] == "urn:oid:1.2.3.99"


def test_known_designators_keep_their_uri() -> None:
    ds = inst(1, ProcedureCodeSequence=[code("24627-2", "LN", "CT Chest")])
    assert one(mapped(ds), "ImagingStudy")["procedureCode"][0]["coding"][0]["system"] == LOINC


# --- 3. no invented values ---------------------------------------------------------------------------------------


def test_patient_identifier_has_no_type_unless_dicom_gives_one() -> None:
    patient = one(mapped(inst(1, PatientID="P-1", PatientName="Doe^Jane")), "Patient")
    assert patient["identifier"] == [{"use": "usual", "value": "P-1"}]
    assert patient["name"] == [{"family": "Doe", "given": ["Jane"]}]  # no invented use


@pytest.mark.parametrize(
    ("type_code", "expected"),
    [
        ("MR", {"coding": [{"system": V2_0203, "code": "MR", "display": "Medical record number"}]}),
        ("PPN", {"coding": [{"system": V2_0203, "code": "PPN", "display": "Passport number"}]}),
        (
            "PI",
            {"text": "PI"},
        ),  # a v2 table 0203 code outside the IdentifierType value set: as text
    ],
)
def test_patient_identifier_type_from_the_issuer_qualifiers(
    type_code: str, expected: dict[str, Any]
) -> None:
    qualifiers = item(
        UniversalEntityID="1.2.3.4", UniversalEntityIDType="ISO", IdentifierTypeCode=type_code
    )
    ds = inst(1, PatientID="P-1", IssuerOfPatientIDQualifiersSequence=[qualifiers])
    ident = one(mapped(ds), "Patient")["identifier"][0]
    assert ident["type"] == expected
    assert ident["system"] == "urn:oid:1.2.3.4"


def test_ideographic_and_phonetic_names_keep_their_representation_only() -> None:
    ds = inst(1, PatientName={"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎"})
    names = one(mapped(ds), "Patient")["name"]
    assert [n.get("use") for n in names] == [None, None]
    assert names[1]["extension"][0]["valueCode"] == "IDE"


# --- 4. series.performer.function ----------------------------------------------------------------------------------


def test_device_performer_has_no_function_and_people_keep_theirs() -> None:
    ds = inst(
        1, Manufacturer="ACME", ManufacturerModelName="Scanner", PerformingPhysicianName="Doe^John"
    )
    performers = one(mapped(ds), "ImagingStudy")["series"][0]["performer"]
    assert "function" not in performers[0]
    assert performers[0]["actor"]["reference"].startswith("urn:uuid:")
    assert performers[1]["function"]["coding"][0]["code"] == "PRF"
    allowed = {"CON", "VRF", "PRF", "SPRF", "REF"}  # series-performer-function
    assert all(
        c["code"] in allowed for p in performers for c in p.get("function", {}).get("coding", [])
    )


# --- 5. body height in cm ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("opts", [OPTS, MII], ids=["default", "mii"])
@pytest.mark.parametrize(
    ("metres", "cm"), [("1.75", 175), ("1.753", 175.3), ("0.5", 50), ("3", 300)]
)
def test_body_height_in_cm(opts: MappingOptions, metres: str, cm: float) -> None:
    bundle = mapped(inst(1, PatientSize=metres, StudyDate="20240101"), opts=opts)
    (height,) = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and e["resource"]["code"]["coding"][0]["code"] == "8302-2"
    ]
    assert height["valueQuantity"] == {
        "value": cm,
        "unit": "cm",
        "system": "http://unitsofmeasure.org",
        "code": "cm",
    }


@pytest.mark.parametrize("metres", ["3.01", "0", "-1.7"])
def test_implausible_heights_are_still_dropped(metres: str) -> None:
    result = build_study_bundle([inst(1, PatientSize=metres)], OPTS)
    assert not [e for e in result.bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert any("PatientSize" in w and "implausible" in w for w in result.warnings)


# --- 6. reasons kept apart -----------------------------------------------------------------------------------------


def test_request_reason_text_is_not_the_text_of_the_coded_performed_reason() -> None:
    ds = inst(
        1,
        ReasonForPerformedProcedureCodeSequence=[code("233604007", "SCT", "Pneumonia")],
        ReasonForTheRequestedProcedure="suspected pneumonia, fever",
    )
    reasons = one(mapped(ds), "ImagingStudy")["reasonCode"]
    assert reasons == [
        {
            "coding": [
                {"system": "http://snomed.info/sct", "code": "233604007", "display": "Pneumonia"}
            ],
            "text": "Pneumonia",
        },
        {"text": "suspected pneumonia, fever"},
    ]


# --- 7. modality: CID 29 by R4B, CID 33 in MII mode --------------------------------------------------------------


def test_modality_lists_acquisition_modalities_only_by_default() -> None:
    sr = inst(1, Modality="SR", SOPClassUID="1.2.840.10008.5.1.4.1.1.88.22")
    assert "modality" not in one(mapped(sr), "ImagingStudy")
    seg = inst(2, series=SERIES + ".2", Modality="SEG", SeriesNumber=2)
    study = one(mapped(inst(1), seg), "ImagingStudy")
    assert [m["code"] for m in study["modality"]] == ["CT"]


def test_mii_modality_follows_cid_33() -> None:
    sr = inst(1, Modality="SR", SOPClassUID="1.2.840.10008.5.1.4.1.1.88.22")
    seg = inst(2, series=SERIES + ".2", Modality="SEG", SeriesNumber=2)
    study = one(
        mapped(inst(3, series=SERIES + ".3", SeriesNumber=0), sr, seg, opts=MII), "ImagingStudy"
    )
    assert [m["code"] for m in study["modality"]] == ["CT", "SR", "SEG"]


# --- 8. MII Person Patient profile -------------------------------------------------------------------------------

FULL = {
    "PatientID": "P-1",
    "PatientName": "Doe^Jane",
    "PatientSex": "F",
    "PatientBirthDate": "19700101",
}


def _mii_patient(**attrs: Any) -> dict[str, Any]:
    given = {k: v for k, v in {**FULL, **attrs}.items() if v is not None}
    return one(mapped(inst(1, **given), opts=MII), "Patient")


def test_mii_patient_claims_the_person_profile_when_complete() -> None:
    patient = _mii_patient()
    assert patient["meta"] == {"profile": [MII_PATIENT]}
    assert list(patient)[:3] == ["resourceType", "id", "meta"]


@pytest.mark.parametrize(
    "missing",
    [
        {"PatientID": None},
        {"PatientName": "Doe"},  # family only
        {"PatientName": None},
        {"PatientSex": None},
        {"PatientSex": "O"},  # other needs gender-amtlich-de (mii-pat-1), which DICOM cannot give
        {"PatientBirthDate": None},
    ],
)
def test_mii_patient_claims_nothing_when_the_data_is_short(missing: dict[str, Any]) -> None:
    assert "meta" not in _mii_patient(**missing)


def test_an_mr_identifier_without_system_claims_nothing() -> None:
    # IdentifierPid (the profile's pid slice, type MR) needs a system
    ident: dict[str, Any] = {"type": {"coding": [{"system": V2_0203, "code": "MR"}]}, "value": "1"}
    patient: dict[str, Any] = {
        "identifier": [ident],
        "name": [{"family": "Doe", "given": ["Jane"]}],
        "gender": "female",
        "birthDate": "1970",
    }
    assert not claims_patient_profile(patient)
    ident["system"] = "urn:oid:1.2.3"
    assert claims_patient_profile(patient)


def test_default_mode_patient_claims_no_profile() -> None:
    assert "meta" not in one(mapped(inst(1, **FULL)), "Patient")


# --- 10. Bundle consistency in the product --------------------------------------------------------------------------


def test_every_built_bundle_is_consistent() -> None:
    bundle = mapped(inst(1, **FULL, PatientSize="1.8", PatientWeight="80", Manufacturer="ACME"))
    assert problems(bundle) == []


def test_an_id_function_giving_two_resources_one_id_is_a_mapping_error() -> None:
    # Ignoring ``extra`` gives the weight and the height Observation one id: one of them would be lost.
    def same_id_for_both(rtype: str, ds: object, extra: str = "") -> str:
        return f"{rtype}-secret"

    opts = MappingOptions(add_vital_signs=True, id_function=same_id_for_both)
    measured = inst(1, **FULL, PatientSize="1.8", PatientWeight="80")
    with pytest.raises(MappingError, match="two different Observation resources have the same id"):
        build_study_bundle([measured], opts)
    only_weight = inst(1, **FULL, PatientWeight="80")
    assert (
        one(build_study_bundle([only_weight], opts).bundle, "Observation")["id"]
        == "Observation-secret"
    )


def test_an_inconsistent_bundle_is_a_mapping_error_without_values() -> None:
    # build_study_bundle ends in this check (bundle._finish); the mapping never breaks it, so the
    # breach is made by hand here.
    bundle = mapped(inst(1, **FULL))
    patient = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    patient["request"]["url"] = "Patient/P-1-secret"
    with pytest.raises(MappingError, match="not consistent") as err:
        check_bundle(bundle, STUDY)
    assert "(Patient): request is not PUT <Type>/<id>" in str(err.value)
    assert "secret" not in str(err.value)


def test_dangling_and_outside_references_are_found() -> None:
    bundle = mapped(inst(1, **FULL))
    study = bundle["entry"][0]["resource"]
    study["subject"]["reference"] = "urn:uuid:11111111-2222-4333-8444-555555555555"
    study["series"][0].setdefault("performer", []).append({"actor": {"reference": "Device/x"}})
    found = {(p.where, p.kind) for p in problems(bundle)}
    assert (
        "entry[0] ImagingStudy.subject.reference",
        "urn:uuid reference is no entry's fullUrl",
    ) in found
    assert any(k == "not a urn:uuid reference" and "performer" in w for w, k in found)
    with pytest.raises(MappingError):
        check_bundle(bundle, "test")
