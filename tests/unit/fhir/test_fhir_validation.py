"""Bundle validation: typed errors without patient data, and the validated-resource cache."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from streamer.errors import MappingError
from streamer.fhir.fast_validation import cache_sizes, stats
from streamer.fhir.validation import clear_cache, validate_bundle


def _bundle(patient: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "id": "b1",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0b8f9a1e-0000-5000-8000-000000000002",
                "resource": patient,
                "request": {"method": "PUT", "url": f"{patient['resourceType']}/{patient['id']}"},
            }
        ],
    }


def _counts() -> tuple[int, int]:
    """(Bundles checked by fhir.resources, Bundles proven valid from the cache) since clear_cache()."""
    return stats.full, stats.fast


def test_valid_bundle_passes_twice_through_the_cache() -> None:
    clear_cache()
    bundle = _bundle({"resourceType": "Patient", "id": "p1", "name": [{"family": "Doe"}]})
    validate_bundle(bundle, "study 1.2.3")
    assert _counts() == (1, 0)  # first sight: fhir.resources validates, the shapes are learned
    assert cache_sizes().shapes > 0
    validate_bundle(copy.deepcopy(bundle), "study 1.2.3")
    assert _counts() == (1, 1)  # an equal Bundle: proven valid from the cache
    other = _bundle({"resourceType": "Patient", "id": "p2", "name": [{"family": "Roe"}]})
    validate_bundle(other, "study 1.2.4")
    assert _counts() == (1, 2)  # same shapes, new values: still the cache
    clear_cache()
    validate_bundle(bundle, "study 1.2.3")
    assert _counts() == (1, 0)  # forgotten: fhir.resources again


@pytest.mark.parametrize("cached", [False, True])
def test_invalid_resource_is_mapping_error_without_values(cached: bool) -> None:
    clear_cache()
    bad = {
        "resourceType": "Patient",
        "id": "p1",
        "name": [{"family": "Secretname"}],
        "birthDate": "19700101x",
    }
    if cached:
        with pytest.raises(MappingError):
            validate_bundle(_bundle(bad), "study 1.2.3")
    with pytest.raises(
        MappingError, match=r"study 1\.2\.3: Bundle failed FHIR R4B validation"
    ) as exc:
        validate_bundle(_bundle(bad), "study 1.2.3")
    assert _counts() == (2 if cached else 1, 0)  # a rejected Bundle is never taken from the cache
    assert "entry.0.resource.birthDate" in str(exc.value)
    assert "Secretname" not in str(exc.value) and "19700101x" not in str(exc.value)


def test_invalid_bundle_structure_is_mapping_error() -> None:
    bundle = _bundle({"resourceType": "Patient", "id": "p1"})
    bundle["type"] = ""
    with pytest.raises(MappingError, match="Bundle failed FHIR R4B validation"):
        validate_bundle(bundle, "x")


def test_unknown_resource_type_is_mapping_error() -> None:
    with pytest.raises(MappingError, match="resourceType"):
        validate_bundle(_bundle({"resourceType": "NoSuchThing", "id": "p1"}), "x")


def _study(modality: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "ImagingStudy",
        "id": "s1",
        "status": "available",
        "subject": {"display": "x"},
        "series": [{"uid": "1.2", "modality": modality}],
    }


def test_fragments_are_validated_and_their_errors_located() -> None:
    clear_cache()
    good = {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}
    validate_bundle(_bundle(_study(good)), "a")
    validate_bundle(_bundle(_study(dict(good))), "b")
    assert _counts() == (1, 1)  # the second, equal fragment came from the cache
    bad = {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": " CT  x "}
    for attempt in range(2):
        with pytest.raises(
            MappingError, match=r"entry\.0\.resource\.series\.0\.modality\.code"
        ) as exc:
            validate_bundle(_bundle(_study(bad)), "c")
        assert "CT  x" not in str(exc.value)
        # a known shape with a bad value: fhir.resources decides, every time
        assert _counts() == (2 + attempt, 1)
