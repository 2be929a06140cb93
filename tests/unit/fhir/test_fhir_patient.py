"""Patient mapping."""

from __future__ import annotations

from typing import Any

import pytest

from streamer.fhir import MappingOptions, build_study_bundle
from tests.unit.fhir._fhir_helpers import inst, item, one

OPTS = MappingOptions(dicom_timezone="UTC")
IDE = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation"


def patient_of(*instances: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    result = build_study_bundle(list(instances), OPTS)
    return one(result.bundle, "Patient"), result.warnings


def test_name_from_standard_dicom_json_pn() -> None:
    patient, _ = patient_of(inst(1, PatientName={"Alphabetic": "Doe^John^A^Dr.^MD"}))
    assert patient["name"] == [
        {
            "family": "Doe",
            "given": ["John", "A"],
            "prefix": ["Dr."],
            "suffix": ["MD"],
        }
    ]


def test_ideographic_and_phonetic_groups_and_multiple_values() -> None:
    pn = {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}
    patient, _ = patient_of(inst(1, PatientName=(pn, {"Alphabetic": "Yamada^Taro"})))
    names = patient["name"]
    assert names[0] == {"family": "Yamada", "given": ["Tarou"]}  # no use: DICOM does not give one
    assert names[1] == {
        "extension": [{"url": IDE, "valueCode": "IDE"}],
        "family": "山田",
        "given": ["太郎"],
    }
    assert names[2]["extension"][0]["valueCode"] == "SYL" and names[2]["family"] == "やまだ"
    assert names[3] == {"family": "Yamada", "given": ["Taro"]}


def test_identifier_with_issuer_qualifiers() -> None:
    q = item(UniversalEntityID="1.2.276.0.1", UniversalEntityIDType="ISO")
    patient, _ = patient_of(
        inst(
            1, PatientID="12345", IssuerOfPatientID="HOSP", IssuerOfPatientIDQualifiersSequence=[q]
        )
    )
    ident = patient["identifier"][0]
    assert ident["value"] == "12345"
    assert ident["system"] == "urn:oid:1.2.276.0.1"
    assert ident["assigner"] == {"display": "HOSP"}
    assert "type" not in ident  # the qualifiers give no Identifier Type Code: no type is assumed


def test_identifier_issuer_oid_and_local_name() -> None:
    patient, _ = patient_of(inst(1, PatientID="1", IssuerOfPatientID="1.2.3.4"))
    assert patient["identifier"][0]["system"] == "urn:oid:1.2.3.4"
    patient, _ = patient_of(inst(1, PatientID="1", IssuerOfPatientID="HOSP A"))
    assert "system" not in patient["identifier"][0]
    assert patient["identifier"][0]["assigner"] == {"display": "HOSP A"}


def test_patient_id_depends_on_issuer() -> None:
    a, _ = patient_of(inst(1, PatientID="1", IssuerOfPatientID="A"))
    b, _ = patient_of(inst(1, PatientID="1", IssuerOfPatientID="B"))
    c, _ = patient_of(inst(1, PatientID="1", IssuerOfPatientID="A", PatientName="Other^Name"))
    assert a["id"] != b["id"]
    assert a["id"] == c["id"]


def test_no_patient_id_scoped_to_study() -> None:
    a, warnings = patient_of(inst(1))
    b, _ = patient_of(inst(1, study="1.2.3.9", series="1.2.3.9.1"))
    assert a["id"] != b["id"]
    assert "identifier" not in a
    assert "PatientID (0010,0020) absent: the Patient is scoped to this study" in warnings


def test_other_patient_ids() -> None:
    other = [
        item(PatientID="X-1", IssuerOfPatientID="OTHER", TypeOfPatientID="TEXT"),
        item(PatientID="12345"),
    ]
    patient, _ = patient_of(
        inst(1, PatientID="12345", OtherPatientIDsSequence=other, OtherPatientIDs=("OLD-7",))
    )
    idents = patient["identifier"]
    assert [i["value"] for i in idents] == ["12345", "X-1", "OLD-7"]
    assert idents[1] == {
        "use": "secondary",
        "type": {"text": "TEXT"},
        "value": "X-1",
        "assigner": {"display": "OTHER"},
    }


@pytest.mark.parametrize(
    ("sex", "gender"),
    [
        ("M", "male"),
        ("F", "female"),
        ("O", "other"),
        ("o", "other"),
        ("X", "unknown"),
        (None, "unknown"),
    ],
)
def test_gender(sex: str | None, gender: str) -> None:
    patient, _ = patient_of(inst(1, PatientSex=sex))
    assert patient["gender"] == gender


def test_gender_absent_when_tag_absent() -> None:
    patient, _ = patient_of(inst(1))
    assert "gender" not in patient


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("19700102", "1970-01-02"),
        ("1970", "1970"),
        ("197001", "1970-01"),
        ("18991231", "1899-12-31"),
    ],
)
def test_birth_date_full_and_partial(raw: str, expected: str) -> None:
    patient, _ = patient_of(inst(1, PatientBirthDate=raw))
    assert patient["birthDate"] == expected


def test_birth_date_invalid_dropped_with_warning() -> None:
    patient, warnings = patient_of(inst(1, PatientBirthDate="19701350"))
    assert "birthDate" not in patient
    assert "PatientBirthDate (0010,0030): invalid value dropped" in warnings
    assert not any("19701350" in w for w in warnings)


def test_address_structured_and_free_text() -> None:
    patient, _ = patient_of(inst(1, PatientAddress="Main St 1^Apt 2^Springfield^IL^62701^USA"))
    assert patient["address"] == [
        {
            "line": ["Main St 1", "Apt 2"],
            "city": "Springfield",
            "state": "IL",
            "postalCode": "62701",
            "country": "USA",
        }
    ]
    patient, _ = patient_of(
        inst(1, PatientAddress="Hauptstr. 1, 10115 Berlin", CountryOfResidence="DE")
    )
    assert patient["address"] == [{"text": "Hauptstr. 1, 10115 Berlin", "country": "DE"}]


def test_all_telephone_numbers() -> None:
    patient, _ = patient_of(inst(1, PatientTelephoneNumbers=("+49 30 1", "+49 30 2")))
    assert patient["telecom"] == [
        {"system": "phone", "value": "+49 30 1"},
        {"system": "phone", "value": "+49 30 2"},
    ]


def test_mothers_maiden_name() -> None:
    patient, _ = patient_of(inst(1, PatientMotherBirthName="Miller^Ann"))
    assert patient["extension"] == [
        {
            "url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
            "valueString": "Miller",
        }
    ]


def test_conflicting_patient_data_majority_wins_with_warning_without_values() -> None:
    patient, warnings = patient_of(
        inst(
            1, PatientID="P1", PatientSex="M", PatientBirthDate="19700101", PatientName="Doe^John"
        ),
        inst(
            2, PatientID="P1", PatientSex="F", PatientBirthDate="19700101", PatientName="Doe^John"
        ),
        inst(
            3, PatientID="P1", PatientSex="F", PatientBirthDate="19800101", PatientName="Roe^Jane"
        ),
    )
    assert patient["gender"] == "female"  # 2 of 3
    assert patient["birthDate"] == "1970-01-01"  # 2 of 3
    assert patient["name"][0]["family"] == "Doe"
    assert (
        "PatientSex (0010,0040): 2 different values across instances; the most frequent (earliest on a tie) is used"
        in warnings
    )
    assert any(w.startswith("PatientBirthDate (0010,0030): 2 different values") for w in warnings)
    text = " ".join(warnings)
    for secret in ("Doe", "Roe", "1970", "1980", "P1"):
        assert secret not in text


def test_conflicting_patient_id_tie_goes_to_earliest_instance() -> None:
    patient, warnings = patient_of(
        inst(2, PatientID="B", PatientSex="F"), inst(1, PatientID="A", PatientSex="M")
    )
    assert patient["identifier"][0]["value"] == "A"
    assert patient["gender"] == "male"  # attributes follow the winning PatientID
    assert any(
        w.startswith("PatientID (0010,0020)/IssuerOfPatientID (0010,0021): 2 different values")
        for w in warnings
    )


def test_placeholder_name_parts_dropped() -> None:
    patient, _ = patient_of(inst(1, PatientName="----^John^.", ReferringPhysicianName="----"))
    assert patient["name"] == [{"given": ["John"]}]
    result = build_study_bundle([inst(1, ReferringPhysicianName="----")], OPTS)
    assert "referrer" not in one(result.bundle, "ImagingStudy")
