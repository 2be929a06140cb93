"""Identity of an instance (``check_instance``) and its slim form (``slim_instance``, ``is_slim``)."""

from __future__ import annotations

import pytest

from streamer.dicom.instance import (
    KEEP_TAGS,
    InstanceKey,
    check_instance,
    is_slim,
    slim_instance,
)
from streamer.errors import InvalidInstanceError
from tests.unit.dicom._dicom_helpers import SERIES, STUDY, inst, item, pydicom_json


def test_check_instance_returns_uids() -> None:
    key = check_instance(inst(3))
    assert key == InstanceKey(STUDY, SERIES, f"{SERIES}.3")
    assert key.study_uid == STUDY


def test_check_instance_accepts_lower_case_keys_and_padding() -> None:
    ds = {k.lower(): v for k, v in inst(1).items()}
    ds["0020000d"] = {"vr": "UI", "Value": [STUDY + "\x00"]}
    assert check_instance(ds).study_uid == STUDY


def test_check_instance_rejects_letters_and_dashes() -> None:
    # PS3.5 9.1: digits and dots only (a FHIR id would allow these, a DICOM UID does not)
    with pytest.raises(InvalidInstanceError, match="SOPInstanceUID"):
        check_instance(inst(1, SOPInstanceUID="1.2.3-abc.4"))


@pytest.mark.parametrize(
    ("ds", "message"),
    [
        ({}, "StudyInstanceUID"),
        ({"0020000D": {"vr": "UI"}}, "StudyInstanceUID"),
        ({"0020000D": {"vr": "UI", "Value": [12]}}, "StudyInstanceUID"),
        ({"0020000D": {"vr": "UI", "Value": ["1.2 3"]}}, "StudyInstanceUID"),
        ({"0020000D": {"vr": "UI", "Value": ["1" * 65]}}, "StudyInstanceUID"),
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


def test_slim_instance_filters_sequence_items_too() -> None:
    ds = inst(
        1,
        ProcedureCodeSequence=[item(CodeValue="X1", CodingSchemeDesignator="L", Rows=512)],
    )
    ds["00091010"] = {"vr": "LO", "Value": ["private"]}
    slim = slim_instance(ds)
    assert "00091010" not in slim
    (code_item,) = slim["00081032"]["Value"]
    assert set(code_item) == {"00080100", "00080102"}


def test_slim_instance_upper_cases_keys() -> None:
    ds = {k.lower(): v for k, v in inst(1, StudyDescription="Head").items()}
    slim = slim_instance(ds)
    assert slim["00081030"] == {"vr": "LO", "Value": ["Head"]}
    assert check_instance(slim) == check_instance(ds)


def test_is_slim() -> None:
    full = pydicom_json("MR_small.dcm")
    assert not is_slim(full)
    assert is_slim(slim_instance(full))
    assert not is_slim({k.lower(): v for k, v in slim_instance(full).items()})
    assert not is_slim({"0020000D": "not an element"})
    assert not is_slim([])
