"""Unforeseen errors (bugs, not bad input) never stop the stream for good, nor leak data to the log.

A record whose handling raises: the process exits, and after STREAMER_MAX_RECORD_ATTEMPTS starts the
record is dead-lettered instead. A Bundle build that raises: the study is dead-lettered at once.
The failures come from a real store (RocksDB) that raises when one instance is staged, as a bug
would half-way through the state step, or hands a held instance back damaged. No broker: the loop
runs against the in-memory port fakes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from streamer.aggregate import StudyRecord
from streamer.errors import RecordHandlingError
from streamer.log import JsonFormatter
from streamer.state.keys import instance_key
from streamer.state.kv import KVStore
from streamer.state.partition_store import FailedRecord, PartitionStore
from streamer.state.study_store import StudyRecordCodec
from tests.dicom_factory import sop_uid, study_uid
from tests.fakes import FakeClock, FakeSink, FakeSource
from tests.unit.pipeline.test_app import Disk, bundles, instance_uids, make, put_study, started

SECRET = "Zyxwort^Quintessa"  # stands for a patient name an exception message might quote
DLQ = "dicom.instances.dlq"


class _TrappedStore(PartitionStore[StudyRecord]):
    """A real partition store that raises, like a bug, when one given key is staged."""

    def __init__(self, kv: KVStore, trap: bytes) -> None:
        super().__init__(kv, StudyRecordCodec())
        self._trap = trap

    def put(self, key: bytes, value: bytes | None) -> None:
        if key == self._trap:
            raise RuntimeError(f"unforeseen failure near {SECRET}")
        super().put(key, value)


class _CorruptStore(PartitionStore[StudyRecord]):
    """A real partition store that hands one held instance back as bytes that are not JSON."""

    def __init__(self, kv: KVStore, sop: str, garbage: bytes) -> None:
        super().__init__(kv, StudyRecordCodec())
        self._sop, self._garbage = sop, garbage

    def iter_instances(self, study_uid: str) -> Iterator[tuple[str, bytes]]:
        for sop, value in super().iter_instances(study_uid):
            yield sop, self._garbage if sop == self._sop else value


def _trapped(root: Path, trap: bytes) -> Disk:
    """A disk whose stores raise when `trap` is staged."""
    return Disk(root, make_store=lambda kv: _TrappedStore(kv, trap))


def _workload(clock: FakeClock) -> FakeSource:
    """Study 1 (offsets 0–2), study 2 (3–6; its second instance, offset 4, meets the trap), study 3."""
    source = FakeSource()
    put_study(source, clock, 1, 2)
    put_study(source, clock, 2, 3)
    put_study(source, clock, 3, 1)
    return source


def _restarted(source: FakeSource) -> FakeSource:
    """The input as a new process sees it: the same log, the offsets committed so far."""
    return FakeSource(log=source.log, committed=dict(source.committed))


async def _fails(
    source: FakeSource, clock: FakeClock, sink: FakeSink, disk: Disk, attempts: int = 2
) -> str:
    proc, _ = make(source, clock, sink, disk=disk, max_record_attempts=attempts)
    await started(proc)
    with pytest.raises(RecordHandlingError) as raised:
        await proc.step()
    await proc.close()
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    return str(raised.value)


async def test_a_failing_record_stops_the_process_then_goes_to_the_dlq(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    source = _workload(clock)
    disk = _trapped(tmp_path, instance_key(study_uid(2), sop_uid(2, 1)))
    sink = FakeSink()

    first = await _fails(source, clock, sink, disk)
    assert "record 4 of partition 0 raised RuntimeError (start 1 of" in first
    source = _restarted(source)
    second = await _fails(source, clock, sink, disk)
    assert "(start 2 of STREAMER_MAX_RECORD_ATTEMPTS=2" in second
    assert not bundles(sink) and not sink.on(DLQ)  # nothing was published nor committed
    assert source.committed == {}

    source = _restarted(source)
    proc, _ = make(source, clock, sink, disk=disk)
    await started(proc)
    await proc.step()
    await proc.wait_checkpoint()
    got = bundles(sink)
    assert sorted(got) == sorted(study_uid(n) for n in (1, 2, 3))
    assert instance_uids(got[study_uid(2)][0]) == {sop_uid(2, 0), sop_uid(2, 2)}
    [(key, value, headers)] = sink.on(DLQ)
    assert key == study_uid(2).encode()
    assert value == source.log[0][4].value  # the record as it came
    assert headers["error-type"] == b"RecordFailedError"
    assert headers["source-offset"] == b"4"
    reason = headers["error-message"].decode()
    assert "RuntimeError on 2 start(s)" in reason
    assert source.committed == {0: 9}
    assert proc.metrics.snapshot()["dead_letters"] == 1
    await proc.close()

    # The store keeps the note until the commit is past it (a crash before that commit would
    # dead-letter the record again); the next start drops it.
    store = disk.opener()(0)
    assert store.failed_record() == FailedRecord(4, 2, "RuntimeError")
    store.close()
    proc, _ = make(_restarted(source), clock, sink, disk=disk)
    await started(proc)
    await proc.close()
    store = disk.opener()(0)
    assert store.failed_record() is None
    store.close()

    # Each start logged the failure with its stack, never the exception's message.
    lines = [r for r in caplog.records if r.getMessage() == "handling a record failed unexpectedly"]
    assert [r.__dict__["attempts"] for r in lines] == [1, 2]
    assert all(", in put\n" in r.__dict__["stack"] for r in lines)  # where it was raised
    text = "\n".join(JsonFormatter().format(r) for r in caplog.records) + reason + first + second
    assert SECRET not in text


async def test_one_attempt_sets_the_record_aside_on_the_next_start(tmp_path: Path) -> None:
    clock = FakeClock()
    source = _workload(clock)
    disk = _trapped(tmp_path, instance_key(study_uid(2), sop_uid(2, 1)))
    sink = FakeSink()
    assert "(start 1 of STREAMER_MAX_RECORD_ATTEMPTS=1" in await _fails(
        source, clock, sink, disk, attempts=1
    )
    source = _restarted(source)
    proc, _ = make(source, clock, sink, disk=disk, max_record_attempts=1)
    await started(proc)
    await proc.step()
    assert sorted(bundles(sink)) == sorted(study_uid(n) for n in (1, 2, 3))
    [(_, _, headers)] = sink.on(DLQ)
    assert b"on 1 start(s)" in headers["error-message"]
    await proc.close()


async def test_a_note_behind_the_committed_offset_is_dropped(tmp_path: Path) -> None:
    """Another process got past that record meanwhile (a rebalance): the note no longer applies."""
    clock = FakeClock()
    source = _workload(clock)
    disk = Disk(tmp_path)
    store = disk.opener()(0)
    store.note_failed_record(4, "RuntimeError")
    store.note_failed_record(4, "RuntimeError")
    store.close()
    source.committed[0] = 5
    proc, sink = make(source, clock, FakeSink(), disk=disk)
    await started(proc)
    await proc.step()
    assert not sink.on(DLQ)
    assert sorted(bundles(sink)) == [study_uid(2), study_uid(3)]  # from offset 5 on
    await proc.close()
    store = disk.opener()(0)
    assert store.failed_record() is None
    store.close()


def test_the_note_counts_starts_on_the_same_record(tmp_path: Path) -> None:
    store = Disk(tmp_path).opener()(0)
    assert store.failed_record() is None
    assert store.note_failed_record(7, "KeyError") == FailedRecord(7, 1, "KeyError")
    assert store.note_failed_record(7, "TypeError") == FailedRecord(7, 2, "TypeError")
    assert store.note_failed_record(9, "KeyError") == FailedRecord(9, 1, "KeyError")
    assert store.failed_record() == FailedRecord(9, 1, "KeyError")
    assert store.dirty_count == 0  # local metadata: never staged for the changelog
    store.wipe()  # a rebuild (before a first checkpoint: at every start) keeps the note
    assert store.failed_record() == FailedRecord(9, 1, "KeyError")
    store.clear_failed_record()
    assert store.failed_record() is None
    store.kv.write_batch({b"m|failed_record": b"garbage"})  # never stops a restore
    assert store.failed_record() is None
    assert store.note_failed_record(9, "KeyError") == FailedRecord(9, 1, "KeyError")
    store.close()


async def test_a_bundle_build_that_raises_dead_letters_the_study_without_the_error_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    garbage = b"{" + SECRET.encode()
    with pytest.raises(orjson.JSONDecodeError) as raised:
        orjson.loads(garbage)
    error_text = str(raised.value)  # what the exception would say, were it logged
    clock = FakeClock()
    source = _workload(clock)
    disk = Disk(tmp_path, make_store=lambda kv: _CorruptStore(kv, sop_uid(2, 1), garbage))
    proc, sink = make(source, clock, FakeSink(), disk=disk)
    await started(proc)
    await proc.step()  # the stream goes on: studies 1 and 3 are published
    assert sorted(bundles(sink)) == [study_uid(1), study_uid(3)]
    [(key, value, headers)] = sink.on(DLQ)
    assert key == study_uid(2).encode()
    assert headers["error-type"] == b"BundleBuildError"
    reason = headers["error-message"].decode()
    assert "raised JSONDecodeError" in reason
    assert value is not None and orjson.loads(value)["instances"] == 3
    await proc.close()
    [line] = [r for r in caplog.records if r.getMessage() == "bundle build failed"]
    assert line.__dict__["error_type"] == "JSONDecodeError"
    assert line.__dict__["stack"].endswith("JSONDecodeError")
    text = "\n".join(JsonFormatter().format(r) for r in caplog.records) + reason + value.decode()
    assert error_text not in text and SECRET not in text
