"""check_instance, slim_instance and the id_function DatasetView."""

from __future__ import annotations

import pytest

from streamer.errors import InvalidInstanceError
from streamer.fhir import (
    InstanceKey,
    MappingOptions,
    build_study_bundle,
    check_instance,
    slim_instance,
)
from streamer.fhir.instance import KEEP_TAGS, DatasetView
from tests.unit.fhir._fhir_helpers import SERIES, STUDY, inst, pydicom_json


def test_check_instance_returns_uids() -> None:
    key = check_instance(inst(3))
    assert key == InstanceKey(STUDY, SERIES, f"{SERIES}.3")
    assert key.study_uid == STUDY


def test_check_instance_accepts_lower_case_keys_and_padding() -> None:
    ds = {k.lower(): v for k, v in inst(1).items()}
    ds["0020000d"] = {"vr": "UI", "Value": [STUDY + "\x00"]}
    assert check_instance(ds).study_uid == STUDY


@pytest.mark.parametrize(
    ("ds", "message"),
    [
        ({}, "StudyInstanceUID"),
        ({"0020000D": {"vr": "UI"}}, "StudyInstanceUID"),
        ({"0020000D": {"vr": "UI", "Value": [12]}}, "StudyInstanceUID"),
        ({"0020000D": {"vr": "UI", "Value": ["1.2 3"]}}, "StudyInstanceUID"),
        ({"0020000D": {"vr": "UI", "Value": ["1.2"]}}, "SeriesInstanceUID"),
        (
            {
                "0020000D": {"vr": "UI", "Value": ["1.2"]},
                "0020000E": {"vr": "UI", "Value": ["1.2.1"]},
            },
            "SOPInstanceUID",
        ),
        ({"0020000D": "1.2"}, "StudyInstanceUID"),
    ],
)
def test_check_instance_rejects(ds: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInstanceError, match=message):
        check_instance(ds)


def test_check_instance_rejects_non_mapping() -> None:
    with pytest.raises(InvalidInstanceError):
        check_instance(["not", "a", "dict"])  # type: ignore[arg-type]


def test_slim_instance_keeps_mapped_tags_only() -> None:
    full = pydicom_json("CT_small.dcm")
    slim = slim_instance(full)
    assert set(slim) <= KEEP_TAGS
    assert "7FE00010" not in slim
    assert slim["0020000D"] == full["0020000D"]
    assert len(slim) < len(full)
    assert all(k.isupper() or k.isdigit() for k in slim)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "test-SR.dcm", "JPEG-lossy.dcm"])
@pytest.mark.parametrize("profile", ["core", "mii"])
def test_slim_and_full_give_the_same_bundle(name: str, profile: str) -> None:
    full = pydicom_json(name)
    opts = MappingOptions(dicom_timezone="Europe/Berlin", add_instances=True, profile=profile)  # type: ignore[arg-type]
    a = build_study_bundle([full], opts)
    b = build_study_bundle([slim_instance(full)], opts)
    assert a.bundle == b.bundle
    assert a.warnings == b.warnings


def test_dataset_view_keyword_access() -> None:
    view = DatasetView(
        inst(1, PatientName="Doe^John", SoftwareVersions=("V1", "V2"), PatientID=None)
    )
    assert view.StudyInstanceUID == STUDY
    assert view.PatientName == "Doe^John"
    assert view.SoftwareVersions == ["V1", "V2"]
    assert view.PatientID == ""
    assert not view.non_empty("PatientID")
    assert view.non_empty("StudyInstanceUID")
    assert "StudyInstanceUID" in view
    assert view.get("AccessionNumber", "x") == "x"
    with pytest.raises(AttributeError, match="AccessionNumber"):
        _ = view.AccessionNumber
