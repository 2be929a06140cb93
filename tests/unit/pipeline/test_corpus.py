"""Every case of the bad-input corpus through the processor (in-memory ports), and the README table."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamer.app import Processor
from streamer.config import load_settings
from streamer.messages import encode_marker
from tests import corpus
from tests.dicom_factory import make_instance, series_uid, sop_uid, study_uid
from tests.fakes import FakeChangelog, FakeClock, FakeSink, FakeSource
from tests.unit.pipeline.test_app import Disk

README = Path(__file__).parents[3] / "README.md"
BAD, GOOD = 1, 2


def _warnings_for(records: list[logging.LogRecord], uid: str) -> list[str]:
    out = []
    for r in records:
        if r.__dict__.get("study_uid") != uid:
            continue
        out.append(
            " ".join(
                [
                    r.getMessage(),
                    str(r.__dict__.get("warning", "")),
                    str(r.__dict__.get("changed_tags", "")),
                ]
            )
        )
    return out


def _instances(bundle: dict[str, Any]) -> int:
    [study] = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ImagingStudy"
    ]
    count: int = study["numberOfInstances"]
    return count


@pytest.mark.parametrize("case", corpus.CASES, ids=[c.kind for c in corpus.CASES])
async def test_each_kind_of_input_has_its_fate(
    case: corpus.Case, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamer")
    clock = FakeClock()
    source = FakeSource()
    ts = int(clock.now * 1000)
    sent = case.build(BAD)
    for key, value in sent:
        source.append(0, key, value, ts)
    if case.marker and case.bundle_instances is not None:
        source.append(0, study_uid(BAD).encode(), encode_marker(study_uid(BAD), None), ts)
    # The next good study still comes out.
    good_doc = make_instance(study_uid(GOOD), series_uid(GOOD), sop_uid(GOOD, 0))
    source.append(0, study_uid(GOOD).encode(), orjson.dumps(good_doc), ts)
    source.append(0, study_uid(GOOD).encode(), encode_marker(study_uid(GOOD), 1), ts)
    settings = load_settings(
        study_timeout_seconds=30,
        max_record_bytes=corpus.MAX_RECORD_BYTES,
        max_instances_per_study=corpus.MAX_INSTANCES_PER_STUDY,
    )
    sink = FakeSink()
    disk = Disk(tmp_path)
    proc = Processor(
        settings, source, sink, FakeChangelog(sink, settings.changelog), disk.opener(), clock=clock
    )
    await proc.start()
    await proc.wait_ready()
    await proc.step()
    clock.advance(31)
    await proc.step()

    dlq = sink.on(settings.dlq_topic)
    assert [h["error-type"].decode() for _, _, h in dlq] == list(case.dlq)
    for key, value, headers in dlq:
        assert headers["error-message"]
        if headers["error-type"] != b"EmptyStudyError":  # record-level: the record unchanged
            assert (key, value) in sent
    bundles = {k.decode(): orjson.loads(v) for k, v, _ in sink.on(settings.output_topic) if k and v}
    assert _instances(bundles[study_uid(GOOD)]) == 1
    if case.bundle_instances is None:
        assert study_uid(BAD) not in bundles
    else:
        assert _instances(bundles[study_uid(BAD)]) == case.bundle_instances
    if case.warning is not None:
        texts = _warnings_for(caplog.records, study_uid(BAD))
        assert any(case.warning in t for t in texts), texts


def test_readme_lists_every_kind_and_its_fate() -> None:
    assert corpus.readme_table() in README.read_text(), (
        "README's bad-input table is stale: run `python -m tests.corpus` and paste its output"
    )
