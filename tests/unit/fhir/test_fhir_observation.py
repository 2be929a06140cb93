"""Body weight / height Observations."""

from __future__ import annotations

from typing import Any

import pytest

from streamer.fhir import MappingOptions, build_study_bundle
from tests.unit.fhir._fhir_helpers import inst, one, resources

OPTS = MappingOptions(dicom_timezone="Europe/Berlin")


def obs_of(
    *instances: dict[str, Any], opts: MappingOptions = OPTS
) -> tuple[dict[str, Any], list[dict[str, Any]], tuple[str, ...]]:
    result = build_study_bundle(list(instances), opts)
    return result.bundle, resources(result.bundle, "Observation"), result.warnings


def test_weight_and_height() -> None:
    bundle, obs, _ = obs_of(
        inst(1, PatientWeight="80.5", PatientSize="1.82", StudyDate="20240315", StudyTime="101500")
    )
    weight, height = obs
    study, patient = one(bundle, "ImagingStudy"), one(bundle, "Patient")
    assert weight["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "29463-7",
        "display": "Body weight",
    }
    assert weight["valueQuantity"] == {
        "value": 80.5,
        "unit": "kg",
        "system": "http://unitsofmeasure.org",
        "code": "kg",
    }
    assert height["code"]["coding"][0]["code"] == "8302-2"
    assert height["valueQuantity"] == {  # DICOM's 1.82 m in cm, as the vital-signs profiles bind it
        "value": 182,
        "unit": "cm",
        "system": "http://unitsofmeasure.org",
        "code": "cm",
    }
    for o in obs:
        assert o["status"] == "final"
        assert o["category"][0]["coding"][0]["code"] == "vital-signs"
        assert o["subject"] == {"reference": f"urn:uuid:{patient['id']}"}
        assert o["partOf"] == [{"reference": f"urn:uuid:{study['id']}"}]
        assert o["derivedFrom"] == o["partOf"]
        assert o["effectiveDateTime"] == "2024-03-15T10:15:00+01:00"


def test_weight_only_on_a_later_instance() -> None:
    _, obs, _ = obs_of(inst(1), inst(2, PatientWeight="70"))
    assert [o["valueQuantity"]["value"] for o in obs] == [70.0]


@pytest.mark.parametrize(
    ("tag", "value"),
    [
        ("PatientWeight", "0"),
        ("PatientWeight", "-5"),
        ("PatientWeight", "701"),
        ("PatientSize", "170"),
        ("PatientSize", "0"),
    ],
)
def test_implausible_values_not_emitted(tag: str, value: str) -> None:
    _, obs, warnings = obs_of(inst(1, **{tag: value}))
    assert obs == []
    limit = "700 kg" if tag == "PatientWeight" else "3 m"
    code = "(0010,1030)" if tag == "PatientWeight" else "(0010,1020)"
    assert f"{tag} {code}: implausible value (≤ 0 or > {limit}); no Observation emitted" in warnings


def test_unparseable_weight_dropped_with_warning() -> None:
    _, obs, warnings = obs_of(inst(1, PatientWeight="1,75"))
    assert obs == []
    assert "PatientWeight (0010,1030): invalid value dropped" in warnings


def test_vital_signs_off() -> None:
    _, obs, _ = obs_of(inst(1, PatientWeight="80"), opts=MappingOptions(add_vital_signs=False))
    assert obs == []


def test_no_study_date_observation_without_effective() -> None:
    _, obs, warnings = obs_of(inst(1, PatientWeight="80"))
    assert "effectiveDateTime" not in obs[0]
    assert "PatientWeight: no study or series date; Observation without effective time" in warnings


def test_observation_ids_stable_and_per_study() -> None:
    _, a, _ = obs_of(inst(1, PatientWeight="80"))
    _, b, _ = obs_of(inst(1, PatientWeight="81"))
    _, c, _ = obs_of(inst(1, study="1.2.3.5", series="1.2.3.5.1", PatientWeight="80"))
    assert a[0]["id"] == b[0]["id"] != c[0]["id"]


def test_effective_falls_back_to_series_start() -> None:
    _, obs, _ = obs_of(inst(1, PatientWeight="80", SeriesDate="20240316", SeriesTime="0800"))
    assert obs[0]["effectiveDateTime"] == "2024-03-16T08:00:00+01:00"
