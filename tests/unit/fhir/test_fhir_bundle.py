"""Bundle structure: transaction, fullUrls, references, determinism, several studies, id_function."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle

from streamer.errors import InvalidInstanceError, MappingError
from streamer.fhir import (
    BundleResult,
    MappingOptions,
    build_bundle,
    build_study_bundle,
    bundle_json,
    iter_study_bundles,
)
from streamer.fhir.instance import DatasetView
from tests.unit.fhir._fhir_helpers import SERIES, STUDY, by_url, inst, one, references, resources

OPTS = MappingOptions(
    dicom_timezone="Europe/Berlin", add_instances=True, wado_base_url="https://pacs/dicomweb/"
)


def _study(study: str = STUDY, pid: str = "P1", n: int = 3, **extra: Any) -> list[dict[str, Any]]:
    return [
        inst(
            i,
            series=f"{study}.1",
            study=study,
            PatientID=pid,
            PatientName="Doe^John",
            StudyDate="20240315",
            StudyTime="101500",
            PatientWeight="80",
            PatientSize="1.80",
            Manufacturer="ACME",
            DeviceSerialNumber="SN-1",
            **extra,
        )
        for i in range(1, n + 1)
    ]


def test_transaction_with_put_and_unique_full_urls() -> None:
    result = build_study_bundle(_study(), OPTS)
    bundle = result.bundle
    assert isinstance(result, BundleResult)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls))
    for e in bundle["entry"]:
        r = e["resource"]
        assert e["request"] == {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}
        assert e["fullUrl"] == f"urn:uuid:{r['id']}"
    types = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert types == ["ImagingStudy", "Patient", "Device", "Endpoint", "Observation", "Observation"]
    Bundle.model_validate(bundle)


def test_all_references_resolve_inside_the_bundle() -> None:
    bundle = build_study_bundle(_study(), OPTS).bundle
    urls = set(by_url(bundle))
    refs = references(bundle)
    assert refs, "expected references"
    assert set(refs) <= urls
    study = one(bundle, "ImagingStudy")
    patient = one(bundle, "Patient")
    device = one(bundle, "Device")
    assert study["subject"]["reference"] == f"urn:uuid:{patient['id']}"
    assert study["series"][0]["performer"][0]["actor"]["reference"] == f"urn:uuid:{device['id']}"
    assert study["endpoint"][0]["reference"] == f"urn:uuid:{one(bundle, 'Endpoint')['id']}"


def test_counts_and_result_fields() -> None:
    result = build_study_bundle(_study(n=4), OPTS)
    assert result.study_uid == STUDY
    assert result.series_count == 1
    assert result.instance_count == 4


def test_deterministic_and_independent_of_arrival_order() -> None:
    instances = _study(n=6)
    a = bundle_json(build_study_bundle(instances, OPTS))
    shuffled = instances[:]
    random.Random(7).shuffle(shuffled)
    b = bundle_json(build_study_bundle(shuffled, OPTS))
    assert a == b
    assert orjson.loads(a)["id"] == build_study_bundle(instances, OPTS).bundle["id"]


def test_input_is_not_mutated() -> None:
    instances = _study()
    before = orjson.dumps(instances)
    build_study_bundle(instances, OPTS)
    assert orjson.dumps(instances) == before


def test_duplicate_sop_last_wins_with_warning() -> None:
    first = inst(1, SeriesDescription="old")
    second = inst(1, SeriesDescription="new")
    result = build_study_bundle([first, second], OPTS)
    study = one(result.bundle, "ImagingStudy")
    assert study["numberOfInstances"] == 1
    assert study["series"][0]["description"] == "new"
    assert any(f"duplicate SOPInstanceUID {SERIES}.1" in w for w in result.warnings)


def test_several_studies_rejected_by_build_study_bundle() -> None:
    with pytest.raises(ValueError, match="several studies"):
        build_study_bundle([inst(1), inst(1, study="1.2.3", series="1.2.3.1")], OPTS)


def test_empty_input_is_value_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        build_study_bundle([], OPTS)
    with pytest.raises(ValueError, match="at least one"):
        build_bundle([], OPTS)


def test_invalid_instance_is_typed_error() -> None:
    with pytest.raises(InvalidInstanceError):
        build_study_bundle([{"00100020": {"vr": "LO", "Value": ["x"]}}], OPTS)


def test_build_bundle_many_studies_shared_patient_once() -> None:
    a = _study("1.2.3.100", pid="P1")
    b = _study("1.2.3.200", pid="P1")
    c = _study("1.2.3.300", pid="P2")
    result = build_bundle([*a, *b, *c], OPTS)
    bundle = result.bundle
    studies = resources(bundle, "ImagingStudy")
    assert [s["identifier"][0]["value"] for s in studies] == [
        "urn:oid:1.2.3.100",
        "urn:oid:1.2.3.200",
        "urn:oid:1.2.3.300",
    ]
    patients = resources(bundle, "Patient")
    assert len(patients) == 2
    assert studies[0]["subject"] == studies[1]["subject"] != studies[2]["subject"]
    # the same serial number -> the same Device, once
    assert len(resources(bundle, "Device")) == 1
    assert len(resources(bundle, "Endpoint")) == 1
    # observations are per study
    assert len(resources(bundle, "Observation")) == 6
    assert result.study_uids == ("1.2.3.100", "1.2.3.200", "1.2.3.300")
    assert result.instance_count == 9 and result.series_count == 3
    assert set(references(bundle)) <= set(by_url(bundle))
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls))


def test_build_bundle_shared_patient_conflict_warns() -> None:
    a = _study("1.2.3.100", pid="P1")
    b = [inst(1, series="1.2.3.200.1", study="1.2.3.200", PatientID="P1", PatientName="Other^Name")]
    result = build_bundle([*a, *b], OPTS)
    assert len(resources(result.bundle, "Patient")) == 1
    assert one(result.bundle, "Patient")["name"][0]["family"] == "Doe"
    assert any(
        "Patient shared by studies 1.2.3.100 and 1.2.3.200 differs" in w for w in result.warnings
    )


def test_iter_study_bundles_first_seen_order() -> None:
    a = _study("1.2.3.200")
    b = _study("1.2.3.100")
    mixed = [a[0], b[0], a[1], b[1], a[2], b[2]]
    results = list(iter_study_bundles(mixed, OPTS))
    assert [r.study_uid for r in results] == ["1.2.3.200", "1.2.3.100"]
    assert [r.instance_count for r in results] == [3, 3]


def test_id_function_overrides_ids() -> None:
    calls: list[tuple[str, str]] = []

    def id_function(resource_type: str, ds: DatasetView, extra: str = "") -> str:
        calls.append((resource_type, extra))
        return f"{resource_type.lower()}-{ds.StudyInstanceUID}{('-' + extra) if extra else ''}"

    opts = MappingOptions(dicom_timezone="UTC", id_function=id_function)
    bundle = build_study_bundle(_study(), opts).bundle
    study = one(bundle, "ImagingStudy")
    assert study["id"] == f"imagingstudy-{STUDY}"
    assert one(bundle, "Patient")["id"] == f"patient-{STUDY}"
    obs_ids = sorted(o["id"] for o in resources(bundle, "Observation"))
    assert obs_ids == [f"observation-{STUDY}-29463-7", f"observation-{STUDY}-8302-2"]
    assert ("Observation", "29463-7") in calls
    # non-UUID ids still get urn:uuid fullUrls and references resolve
    assert set(references(bundle)) <= set(by_url(bundle))
    for e in bundle["entry"]:
        assert e["fullUrl"].startswith("urn:uuid:")
        assert e["request"]["url"].endswith("/" + e["resource"]["id"])


@pytest.mark.parametrize("bad", ["has space", "x" * 65, "", "ümlaut", 42])
def test_id_function_invalid_result_is_mapping_error(bad: object) -> None:
    def bad_id(rtype: str, ds: DatasetView, extra: str = "") -> str:
        # Deliberately breaks the declared contract (42 is not a str): the mapper must catch it.
        return bad  # type: ignore[return-value]

    opts = MappingOptions(id_function=bad_id)
    with pytest.raises(MappingError, match="invalid FHIR id for Patient"):
        build_study_bundle(_study(), opts)


def test_id_function_raising_is_mapping_error() -> None:
    def broken(rtype: str, ds: DatasetView, extra: str = "") -> str:
        raise KeyError("secret-patient-id")

    with pytest.raises(MappingError, match="id_function raised KeyError") as exc:
        build_study_bundle(_study(), MappingOptions(id_function=broken))
    assert "secret-patient-id" not in str(exc.value)


def test_bundle_json_round_trips() -> None:
    result = build_study_bundle(_study(), OPTS)
    data = bundle_json(result)
    assert isinstance(data, bytes)
    assert orjson.loads(data) == result.bundle
    assert bundle_json(result.bundle) == data
    Bundle.model_validate_json(data)


def test_result_is_frozen() -> None:
    result = build_study_bundle(_study(), OPTS)
    with pytest.raises(AttributeError):
        result.study_uid = "x"  # type: ignore[misc]


def _containers(node: Any, out: list[int]) -> list[int]:
    if isinstance(node, dict | list):
        out.append(id(node))
        for v in node.values() if isinstance(node, dict) else node:
            _containers(v, out)
    return out


def test_no_object_is_shared_inside_or_between_bundles() -> None:
    """Callers may change the Bundles they get: nothing in one is aliased elsewhere (or to the input)."""
    opts = MappingOptions(
        dicom_timezone="UTC", add_instances=True, wado_base_url="https://pacs", profile="mii"
    )
    first = build_study_bundle(
        _study(AccessionNumber="A1", PerformingPhysicianName="X^Y"), opts
    ).bundle
    second = build_study_bundle(
        _study(AccessionNumber="A1", PerformingPhysicianName="X^Y"), opts
    ).bundle
    ids_first = _containers(first, [])
    ids_second = _containers(second, [])
    assert len(ids_first) == len(set(ids_first))
    assert not set(ids_first) & set(ids_second)
    resources(first, "Observation")[0]["category"][0]["coding"][0]["code"] = "changed"
    assert resources(second, "Observation")[0]["category"][0]["coding"][0]["code"] == "vital-signs"


def test_bundle_id_is_per_study() -> None:
    same = build_study_bundle(_study(n=2), OPTS).bundle["id"]
    assert (
        build_study_bundle(_study(n=3), OPTS).bundle["id"] == same
    )  # a re-publication keeps its id
    other = build_study_bundle(_study("1.2.3.999", n=2), OPTS).bundle["id"]
    assert other != same


def test_instances_slimmed_before_map_the_same_without_a_second_cleaning() -> None:
    """The stream processor maps its held slim instances with ``cleaned=True``: same Bundle, same warnings."""
    import orjson
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    from streamer.dicom.instance import slim_instance
    from streamer.fhir import MappingOptions, build_study_bundle

    for name in ("CT_small.dcm", "MR_small.dcm"):
        path = get_testdata_file(name)
        assert path is not None
        slim = slim_instance(dcmread(path, stop_before_pixels=True).to_json_dict())
        held = [orjson.loads(orjson.dumps(slim))]
        for options in (MappingOptions(), MappingOptions(profile="mii", add_instances=True)):
            plain = build_study_bundle(held, options)
            fast = build_study_bundle(held, options, cleaned=True)
            assert fast.bundle == plain.bundle
            assert fast.warnings == plain.warnings
