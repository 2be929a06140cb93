"""The library applies the stream processor's input rules and tells callers without a report."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from streamer import convert_instances, from_generator
from tests.dicom_factory import element, make_instance, series_uid, sop_uid, study_uid


def _uids(result_bundle: dict[str, Any]) -> set[str]:
    [study] = [
        e["resource"]
        for e in result_bundle["entry"]
        if e["resource"]["resourceType"] == "ImagingStudy"
    ]
    return {i["uid"] for s in study["series"] for i in s.get("instance", [])}


CONFIG = {"generator": {"imaging_study": {"add_instances": True}}}


async def test_instances_of_another_patient_are_left_out_and_counted() -> None:
    uid = study_uid(1)
    docs = [
        make_instance(uid, series_uid(1), sop_uid(1, i), number=i + 1, patient_id=p)
        for i, p in enumerate(("Zyxwort-1", "Zyxwort-2", "Zyxwort-1"))
    ]
    report = await convert_instances(docs, CONFIG)
    [result] = report.results
    assert _uids(result.bundle) == {sop_uid(1, 0), sop_uid(1, 2)}
    assert report.patient_conflicts == 1
    assert report.skipped_instances["patient conflict"] == 1


async def test_repeats_of_an_instance_are_ignored_or_replace_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    uid = study_uid(2)
    first = make_instance(uid, series_uid(2), sop_uid(2, 0))
    changed = make_instance(uid, series_uid(2), sop_uid(2, 0)) | {
        "0008103E": element("LO", "Zyxwort series")
    }
    caplog.set_level(logging.WARNING, logger="streamer")
    report = await convert_instances([first, dict(first), changed], CONFIG)
    [result] = report.results
    assert result.instance_count == 1
    assert report.duplicates == 1
    assert report.updated_instances == 1
    series = next(
        e["resource"]["series"]
        for e in result.bundle["entry"]
        if e["resource"]["resourceType"] == "ImagingStudy"
    )
    assert series[0]["description"] == "Zyxwort series"  # the later one is kept
    [warning] = [w for w in report.warnings if "other content" in w]
    assert "0008103E" in warning and "Zyxwort" not in warning
    assert any("other content" in r.getMessage() for r in caplog.records)


async def test_warnings_reach_the_streamer_logger_without_a_report(
    caplog: pytest.LogCaptureFixture,
) -> None:
    uid = study_uid(3)
    odd = make_instance(uid, series_uid(3), sop_uid(3, 0)) | {
        "00101030": element("DS", "Zyxwort-kg")  # PatientWeight that is not a number
    }
    caplog.set_level(logging.WARNING, logger="streamer")
    bundle = await from_generator([odd])
    assert bundle.entry
    texts = [r.getMessage() for r in caplog.records if r.name.startswith("streamer")]
    assert any("00101030" in t or "PatientWeight" in t for t in texts), texts
    assert not any("Zyxwort" in t for t in texts)
