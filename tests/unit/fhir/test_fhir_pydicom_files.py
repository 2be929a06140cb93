"""Real files from pydicom's test data: golden-style checks of the values, and the whole collection."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import pytest
from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from streamer.dicom.instance import check_instance
from streamer.errors import InvalidInstanceError
from streamer.fhir import (
    MappingOptions,
    build_bundle,
    build_study_bundle,
    iter_study_bundles,
)
from tests.dicom_files import corpus_files
from tests.unit.fhir._fhir_helpers import (
    by_url,
    one,
    pydicom_dir,
    pydicom_json,
    references,
    resources,
)

DCM = "http://dicom.nema.org/resources/ontology/DCM"
SCT = "http://snomed.info/sct"
OPTS = MappingOptions(dicom_timezone="Europe/Berlin", add_instances=True)


def test_ct_small() -> None:
    result = build_study_bundle([pydicom_json("CT_small.dcm")], OPTS)
    bundle = result.bundle
    study = one(bundle, "ImagingStudy")
    assert study["identifier"][0]["value"] == "urn:oid:1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
    assert (
        study["started"] == "2004-01-19T07:27:30-05:00"
    )  # TimezoneOffsetFromUTC -0500 wins over Berlin
    assert study["modality"] == [{"system": DCM, "code": "CT", "display": "Computed Tomography"}]
    series = study["series"][0]
    assert series["uid"] == "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322"
    assert series["number"] == 1
    assert series["started"] == "1997-04-30T11:27:49-05:00"
    instance = series["instance"][0]
    assert instance["sopClass"]["code"] == "urn:oid:1.2.840.10008.5.1.4.1.1.2"
    assert instance["title"] == "ORIGINAL\\PRIMARY\\AXIAL"
    patient = one(bundle, "Patient")
    assert patient["name"] == [{"family": "CompressedSamples", "given": ["CT1"]}]
    assert patient["gender"] == "other"
    assert patient["identifier"][0]["value"] == "1CT1"
    device = one(bundle, "Device")
    assert device["manufacturer"] == "GE MEDICAL SYSTEMS"
    assert device["deviceName"][0] == {"name": "RHAPSODE", "type": "model-name"}
    # PatientWeight 0 is implausible: no Observation, a warning
    assert resources(bundle, "Observation") == []
    assert (
        "PatientWeight (0010,1030): implausible value (≤ 0 or > 700 kg); no Observation emitted"
        in result.warnings
    )


def test_mr_small() -> None:
    bundle = build_study_bundle([pydicom_json("MR_small.dcm")], OPTS).bundle
    study = one(bundle, "ImagingStudy")
    assert study["series"][0]["modality"]["code"] == "MR"
    assert one(bundle, "Patient")["gender"] == "female"
    weight = one(bundle, "Observation")
    assert weight["valueQuantity"]["value"] == 80.0
    assert weight["effectiveDateTime"] == study["started"]


def test_cr_with_view_position() -> None:
    bundle = build_study_bundle([pydicom_json("dicomdirtests/77654033/CR1/6154")], OPTS).bundle
    study = one(bundle, "ImagingStudy")
    series = study["series"][0]
    assert series["modality"]["code"] == "CR"
    assert series["bodySite"] == {"system": SCT, "code": "122494005", "display": "Cervical spine"}
    assert study["started"] == "2001-01-01T00:00:00+00:00"
    assert study["identifier"][1]["value"] == "2"
    assert one(bundle, "Patient")["name"][0]["family"] == "Doe"


def test_structured_report_title() -> None:
    bundle = build_study_bundle([pydicom_json("test-SR.dcm")], OPTS).bundle
    instance = one(bundle, "ImagingStudy")["series"][0]["instance"][0]
    assert instance["title"] == "Diagnosis"
    assert instance["sopClass"]["display"] == "Comprehensive SR Storage"


def test_multiframe_us() -> None:
    bundle = build_study_bundle([pydicom_json("examples_ybr_color.dcm")], OPTS).bundle
    study = one(bundle, "ImagingStudy")
    assert study["series"][0]["modality"]["code"] == "US"
    assert study["numberOfInstances"] == 1
    assert (
        study["series"][0]["instance"][0]["sopClass"]["code"]
        == "urn:oid:1.2.840.10008.5.1.4.1.1.3.1"
    )


def _dicom_files(root: Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name == "DICOMDIR":
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out.append(dcmread(p, stop_before_pixels=True).to_json_dict())
        except (InvalidDicomError, OSError):
            continue
    return out


def test_dicomdirtests_studies_patients_series_not_merged() -> None:
    instances = _dicom_files(pydicom_dir("dicomdirtests"))
    valid = [d for d in instances if _has_uids(d)]
    results = list(iter_study_bundles(valid, OPTS))
    combined = build_bundle(valid, OPTS)
    studies = resources(combined.bundle, "ImagingStudy")
    assert len(studies) == len(results) == len({check_instance(d).study_uid for d in valid})
    assert combined.instance_count == len({check_instance(d).sop_uid for d in valid})
    assert combined.series_count == sum(r.series_count for r in results)
    # folders 77654033 (2 studies), 98892001 (1), 98892003 (3), TINY_ALPHA (1); patients 77654033, 98890234
    # (the studies of 98892001 and 98892003) and 12345678; nothing merged
    assert len(studies) == 7
    assert combined.series_count == 14
    assert combined.instance_count == 81
    by_patient: dict[str, int] = {}
    for s in studies:
        by_patient[s["subject"]["reference"]] = by_patient.get(s["subject"]["reference"], 0) + 1
    patients = resources(combined.bundle, "Patient")
    assert len(patients) == len(by_patient) == 3
    pid_of = {f"urn:uuid:{p['id']}": p["identifier"][0]["value"] for p in patients}
    assert sorted((pid_of[ref], n) for ref, n in by_patient.items()) == [
        ("12345678", 1),
        ("77654033", 2),
        ("98890234", 4),
    ]
    assert set(references(combined.bundle)) <= set(by_url(combined.bundle))


def _has_uids(ds: dict[str, Any]) -> bool:
    try:
        check_instance(ds)
    except InvalidInstanceError:
        return False
    return True


@pytest.mark.parametrize("profile", ["core", "mii"])
def test_every_pydicom_file_converts_or_is_rejected_for_a_reason(
    profile: Literal["core", "mii"],
) -> None:
    """The corpus (pydicom's test files and pydicom-data's, tests/dicom_files.py): no file crashes."""
    outcomes: Counter[tuple[str, str]] = Counter()  # (source, converted / rejected)
    reasons: set[str] = set()
    options = MappingOptions(dicom_timezone="Europe/Berlin", add_instances=True, profile=profile)
    for file in corpus_files():
        source = "pydicom-data" if file.from_pydicom_data else "pydicom"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = dcmread(file.path, stop_before_pixels=True, force=True).to_json_dict(
                    suppress_invalid_tags=True
                )
        except Exception:  # noqa: BLE001 - unreadable files are not our concern here
            outcomes[source, "unreadable"] += 1
            continue
        try:
            check_instance(ds)
        except InvalidInstanceError as exc:
            reasons.add(str(exc).split(" (")[0])
            outcomes[source, "rejected"] += 1
            continue
        result = build_study_bundle([ds], options)
        assert result.instance_count == 1, file.name
        outcomes[source, "converted"] += 1
    print(f"\n{profile}: {dict(sorted(outcomes.items()))}")
    assert outcomes["pydicom", "converted"] >= 140  # the seed converted 133 and crashed on 30
    assert outcomes["pydicom", "rejected"] < 40
    assert outcomes["pydicom-data", "converted"] >= 60
    assert outcomes["pydicom-data", "rejected"] <= 2
    assert reasons <= {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"}
