"""The processing loop against in-memory fakes of the Source/Sink ports (no broker)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle

from streamer.aggregate import StudyRecord
from streamer.app import Processor
from streamer.config import load_settings
from streamer.errors import OutputError
from streamer.messages import encode_marker
from streamer.partitions import OpenStore
from streamer.state.directory import StateDirectory
from streamer.state.kv import KVStore
from streamer.state.partition_store import PartitionStore
from streamer.state.study_store import StudyRecordCodec
from tests.dicom_factory import make_instance, series_uid, sop_uid, study_uid
from tests.fakes import FakeChangelog, FakeClock, FakeSink, FakeSource

TIMEOUT_S = 30.0


class Disk:
    """A machine's local state directory; a new Disk is a lost (or another machine's) disk."""

    def __init__(
        self,
        root: Path,
        name: str = "disk",
        make_store: Callable[[KVStore], PartitionStore[StudyRecord]] | None = None,
    ) -> None:
        self.root = root / name
        self.directory: StateDirectory | None = None
        # How a store is made over its engine (tests put faults in it); default: the real one.
        self.make_store = make_store or (lambda kv: PartitionStore(kv, StudyRecordCodec()))

    def opener(self) -> OpenStore:
        if self.directory is not None:
            self.directory.close()  # the previous process on this disk is gone
        directory = StateDirectory(self.root, "streamer")
        self.directory = directory

        def open_store(partition: int) -> PartitionStore[StudyRecord]:
            return self.make_store(directory.open_store("dicom.instances", partition, "rocksdb"))

        return open_store


def make(
    source: FakeSource,
    clock: FakeClock,
    sink: FakeSink | None = None,
    executor: ThreadPoolExecutor | None = None,
    *,
    disk: Disk,
    **overrides: object,
) -> tuple[Processor, FakeSink]:
    settings = load_settings(
        **{
            "study_timeout_seconds": TIMEOUT_S,
            "dicom_timezone": "Europe/Berlin",
            "add_instances": True,
            "commit_interval_seconds": 1,
            **overrides,
        }
    )
    sink = sink or FakeSink()
    changelog = FakeChangelog(sink, settings.changelog)
    proc = Processor(
        settings, source, sink, changelog, disk.opener(), clock=clock, executor=executor
    )
    return proc, sink


async def started(proc: Processor) -> Processor:
    await proc.start()
    await proc.wait_ready()
    return proc


@pytest.fixture
def disk(tmp_path: Path) -> Disk:
    return Disk(tmp_path)


def ts(clock: FakeClock) -> int:
    return int(clock.now * 1000)


def put_study(
    source: FakeSource,
    clock: FakeClock,
    n: int,
    count: int,
    *,
    partition: int = 0,
    marker: bool = True,
    marker_count: int | None = None,
) -> None:
    uid = study_uid(n)
    for i in range(count):
        doc = make_instance(uid, series_uid(n), sop_uid(n, i), number=i + 1)
        source.append(partition, uid.encode(), orjson.dumps(doc), ts(clock))
    if marker:
        source.append(partition, uid.encode(), encode_marker(uid, marker_count), ts(clock))


def bundles(sink: FakeSink) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for key, value, headers in sink.on("fhir.bundles"):
        assert headers["content-type"] == b"application/fhir+json"
        assert key is not None and value is not None
        doc = orjson.loads(value)
        Bundle.model_validate(doc)
        out.setdefault(key.decode(), []).append(doc)
    return out


def imaging_study(bundle: dict[str, Any]) -> dict[str, Any]:
    studies: list[dict[str, Any]] = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ImagingStudy"
    ]
    [study] = studies
    return study


def instance_uids(bundle: dict[str, Any]) -> set[str]:
    study = imaging_study(bundle)
    return {i["uid"] for s in study["series"] for i in s.get("instance", [])}


async def test_interleaved_studies_one_bundle_each(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource(partitions=(0, 1))
    # Interleave instances of three studies over two partitions.
    for i in range(3):
        for n, p in ((1, 0), (2, 1), (3, 0)):
            uid = study_uid(n)
            doc = make_instance(uid, series_uid(n), sop_uid(n, i), number=i + 1)
            source.append(p, uid.encode(), orjson.dumps(doc), ts(clock))
    for n, p in ((1, 0), (2, 1), (3, 0)):
        source.append(p, study_uid(n).encode(), encode_marker(study_uid(n), 3), ts(clock))
    proc, sink = make(source, clock, disk=disk)
    await started(proc)
    await proc.step()
    got = bundles(sink)
    assert set(got) == {study_uid(1), study_uid(2), study_uid(3)}
    for n in (1, 2, 3):
        [bundle] = got[study_uid(n)]
        assert instance_uids(bundle) == {sop_uid(n, i) for i in range(3)}
        assert imaging_study(bundle)["numberOfInstances"] == 3
    # The commit moves past the markers at once: closed studies live on in the store.
    await proc.wait_checkpoint()
    assert source.committed == {0: 8, 1: 4}


async def test_study_without_marker_closes_after_timeout(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2, marker=False)
    proc, sink = make(source, clock, disk=disk)
    await started(proc)
    await proc.step()
    assert bundles(sink) == {}
    clock.advance(TIMEOUT_S - 1)
    await proc.step()
    assert bundles(sink) == {}
    assert source.committed[0] == 2  # an open study does not hold the commit back
    clock.advance(1)
    await proc.step()
    assert list(bundles(sink)) == [study_uid(1)]


async def test_marker_count_waits_for_missing_instance(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2, marker_count=3)
    proc, sink = make(source, clock, disk=disk)
    await started(proc)
    await proc.step()
    assert bundles(sink) == {}
    uid = study_uid(1)
    doc = make_instance(uid, series_uid(1), sop_uid(1, 2), number=3)
    source.append(0, uid.encode(), orjson.dumps(doc), ts(clock))
    await proc.step()
    [bundle] = bundles(sink)[uid]
    assert instance_uids(bundle) == {sop_uid(1, i) for i in range(3)}


async def test_bad_messages_go_to_dlq_and_good_studies_still_come_out(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource()
    uid = study_uid(1)
    source.append(
        0, uid.encode(), orjson.dumps(make_instance(uid, series_uid(1), sop_uid(1, 0))), ts(clock)
    )
    source.append(0, b"k1", b"{not json", ts(clock))
    source.append(0, b"k2", b"[1,2,3]", ts(clock))
    no_uid = make_instance(uid, series_uid(1), sop_uid(1, 9))
    del no_uid["0020000D"]
    source.append(0, None, orjson.dumps(no_uid), ts(clock))
    source.append(
        0,
        uid.encode(),
        orjson.dumps(make_instance(uid, series_uid(1), sop_uid(1, 1), number=2)),
        ts(clock),
    )
    source.append(0, uid.encode(), encode_marker(uid, 2), ts(clock))
    proc, sink = make(source, clock, disk=disk)
    await started(proc)
    await proc.step()
    dlq = sink.on("dicom.instances.dlq")
    assert [(k, v) for k, v, _ in dlq] == [
        (b"k1", b"{not json"),
        (b"k2", b"[1,2,3]"),
        (None, orjson.dumps(no_uid)),
    ]
    assert [h["source-offset"] for _, _, h in dlq] == [b"1", b"2", b"3"]
    assert {h["source-topic"] for _, _, h in dlq} == {b"dicom.instances"}
    assert {h["source-partition"] for _, _, h in dlq} == {b"0"}
    assert dlq[0][2]["error-type"] == b"InvalidMessageError"
    assert dlq[2][2]["error-type"] == b"InvalidInstanceError"
    assert all(h["error-message"] for _, _, h in dlq)
    [bundle] = bundles(sink)[uid]
    assert instance_uids(bundle) == {sop_uid(1, 0), sop_uid(1, 1)}


async def test_kill_and_restart_restores_open_studies_from_the_store(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2)  # complete: published
    put_study(source, clock, 2, 2, marker=False)  # open when the process dies
    proc, sink = make(source, clock, disk=disk)
    await started(proc)
    await proc.step()
    assert list(bundles(sink)) == [study_uid(1)]
    await proc.wait_checkpoint()
    assert source.committed[0] == 5
    # "kill -9": the processor goes without a checkpoint; a new one starts on the same disk.
    await proc.close()
    source2 = FakeSource(log=source.log, committed=dict(source.committed))
    put_study(source2, clock, 2, 0, marker=True)  # the marker arrives while we were down
    proc2, _ = make(source2, clock, sink, disk=disk)
    await started(proc2)
    await proc2.step()
    got = bundles(sink)
    assert instance_uids(got[study_uid(2)][0]) == {sop_uid(2, 0), sop_uid(2, 1)}
    assert len(got[study_uid(1)]) == 1  # nothing before the commit is read or published again


async def test_lost_disk_is_rebuilt_from_the_changelog(tmp_path: Path) -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2)
    put_study(source, clock, 2, 2, marker=False)
    proc, sink = make(source, clock, disk=Disk(tmp_path, "first"))
    await started(proc)
    await proc.step()
    # Late instance of the closed study 1 and the end of study 2 arrive for a new machine.
    source2 = FakeSource(log=source.log, committed=dict(source.committed))
    uid = study_uid(1)
    late = make_instance(uid, series_uid(1), sop_uid(1, 5), number=6)
    source2.append(0, uid.encode(), orjson.dumps(late), ts(clock))
    source2.append(0, uid.encode(), encode_marker(uid, None), ts(clock))
    put_study(source2, clock, 2, 0)
    proc2, _ = make(source2, clock, sink, disk=Disk(tmp_path, "second"))
    await started(proc2)
    await proc2.step()
    got = bundles(sink)
    first, second = got[uid]
    assert instance_uids(second) == {sop_uid(1, 0), sop_uid(1, 1), sop_uid(1, 5)}
    assert second["id"] == first["id"]
    assert instance_uids(got[study_uid(2)][0]) == {sop_uid(2, 0), sop_uid(2, 1)}


async def test_changelog_of_an_uncommitted_checkpoint_is_skipped_and_repaired(
    disk: Disk,
) -> None:
    """The process dies after the changelog was acked but before the commit."""
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2, marker=False)
    proc, sink = make(source, clock, disk=disk)
    await started(proc)

    async def die(offsets: dict[int, int]) -> bool:
        raise RuntimeError("killed between changelog and commit")

    source.commit = die  # type: ignore[method-assign]
    await proc.step()  # the commit fails in the background checkpoint...
    with pytest.raises(RuntimeError, match="killed"):
        await proc.wait_checkpoint()
    with pytest.raises(RuntimeError, match="killed"):
        await proc.step()  # ...and the loop raises it
    assert source.committed == {}
    await proc.close()
    changelog = sink.logs[("streamer.study-state", 0)]
    assert changelog, "the changelog records were sent before the commit"
    # Restart: the changelog records are skipped (their input is read again) and re-stated.
    source2 = FakeSource(log=source.log)
    proc2, _ = make(source2, clock, sink, disk=disk)
    await started(proc2)
    assert proc2.snapshot()["partitions"][0]["open"] == 0
    await proc2.step()
    assert proc2.open_studies() == {0: [study_uid(1)]}
    clock.advance(TIMEOUT_S)
    await proc2.step()
    [bundle] = bundles(sink)[study_uid(1)]
    assert instance_uids(bundle) == {sop_uid(1, 0), sop_uid(1, 1)}


async def test_late_instance_after_restart_republishes_the_whole_study(disk: Disk) -> None:
    """A study closed long ago is never replaced by a fragment, before or after a restart."""
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 3, marker_count=3)
    for n in range(2, 6):  # other studies over the next minutes
        clock.advance(60)
        put_study(source, clock, n, 1)
    proc, sink = make(source, clock, disk=disk)
    await started(proc)
    await proc.step()
    proc.stop()
    await proc.shutdown()
    await proc.close()
    clock.advance(3600)
    source2 = FakeSource(log=source.log, committed=dict(source.committed))
    uid = study_uid(1)
    late = make_instance(uid, series_uid(1), sop_uid(1, 7), number=8)
    source2.append(0, uid.encode(), orjson.dumps(late), ts(clock))
    proc2, _ = make(source2, clock, sink, disk=disk)
    await started(proc2)
    await proc2.step()
    clock.advance(TIMEOUT_S)
    await proc2.step()
    first, second = bundles(sink)[uid]
    assert instance_uids(first) == {sop_uid(1, i) for i in range(3)}
    assert instance_uids(second) == {sop_uid(1, i) for i in (0, 1, 2, 7)}


async def test_instances_of_a_study_past_retention_are_dead_lettered(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2)
    proc, sink = make(source, clock, disk=disk, state_retention_days=1)
    await started(proc)
    await proc.step()
    clock.advance(86_400 + 1)
    await proc.step()  # the retention sweep removes the study's instances
    proc.stop()
    await proc.shutdown()
    await proc.close()
    # After a restart the decision is the same: the instance is dead-lettered, nothing published.
    source2 = FakeSource(log=source.log, committed=dict(source.committed))
    uid = study_uid(1)
    late = make_instance(uid, series_uid(1), sop_uid(1, 9), number=10)
    source2.append(0, uid.encode(), orjson.dumps(late), ts(clock))
    proc2, _ = make(source2, clock, sink, disk=disk, state_retention_days=1)
    await started(proc2)
    await proc2.step()
    clock.advance(TIMEOUT_S)
    await proc2.step()
    assert len(bundles(sink)[uid]) == 1
    [(key, _, headers)] = sink.on("dicom.instances.dlq")
    assert key == uid.encode()
    assert headers["error-type"] == b"LateInstanceError"
    # The study's instances are gone from the changelog too (tombstones).
    latest: dict[bytes, bytes | None] = {}
    for k, v, _ in sink.logs[("streamer.study-state", 0)]:
        assert k is not None
        latest[k] = v
    assert [k for k, v in latest.items() if k.startswith(b"i|") and v is not None] == []


async def test_retention_is_kept_after_a_lost_disk(tmp_path: Path) -> None:
    # The closing-order index lives in the store and the changelog, not in memory: a process
    # on a new disk rebuilds it from the changelog and still removes the study on time.
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2)
    proc, sink = make(source, clock, disk=Disk(tmp_path, "first"), state_retention_days=1)
    await started(proc)
    await proc.step()
    proc.stop()
    await proc.shutdown()
    await proc.close()
    source2 = FakeSource(log=source.log, committed=dict(source.committed))
    proc2, _ = make(source2, clock, sink, disk=Disk(tmp_path, "second"), state_retention_days=1)
    await started(proc2)
    assert proc2.snapshot()["partitions"][0]["closed"] == 1
    clock.advance(86_400 - 10)
    await proc2.step()
    assert proc2.snapshot()["partitions"][0]["closed"] == 1  # not yet
    clock.advance(11)
    await proc2.step()
    assert proc2.snapshot()["partitions"][0]["closed"] == 0
    proc2.stop()
    await proc2.shutdown()  # the last checkpoint sends the removal to the changelog
    await proc2.close()
    latest: dict[bytes, bytes | None] = {}
    for k, v, _ in sink.logs[("streamer.study-state", 0)]:
        assert k is not None
        latest[k] = v
    assert [k for k, v in latest.items() if k.startswith((b"i|", b"c|")) and v is not None] == []
    assert any(k.startswith(b"c|") for k in latest)  # the index went through the changelog


async def test_backlog_replay_uses_stream_time_not_wall_clock(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource()
    uid = study_uid(1)
    source.append(
        0, uid.encode(), orjson.dumps(make_instance(uid, series_uid(1), sop_uid(1, 0))), ts(clock)
    )
    # The second instance arrived 10 s later; the processor starts an hour after both.
    source.append(
        0,
        uid.encode(),
        orjson.dumps(make_instance(uid, series_uid(1), sop_uid(1, 1), number=2)),
        ts(clock) + 10_000,
    )
    clock.advance(3600)
    # Poll one record at a time: after the first, the partition is behind, so no timeout may fire.
    proc, sink = make(source, clock, max_poll_records=1, disk=disk)
    await started(proc)
    await proc.step()
    assert bundles(sink) == {}
    await proc.step()  # caught up now: wall clock says the study timed out long ago
    [bundle] = bundles(sink)[uid]
    assert instance_uids(bundle) == {sop_uid(1, 0), sop_uid(1, 1)}


async def test_late_instance_republishes_same_ids_with_full_set(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2)
    proc, sink = make(source, clock, disk=disk)
    await started(proc)
    await proc.step()
    clock.advance(5)
    uid = study_uid(1)
    source.append(
        0,
        uid.encode(),
        orjson.dumps(make_instance(uid, series_uid(1), sop_uid(1, 7), number=8)),
        ts(clock),
    )
    await proc.step()
    assert len(bundles(sink)[uid]) == 1  # reopened, waits for marker or timeout
    source.append(0, uid.encode(), encode_marker(uid, None), ts(clock))
    await proc.step()
    first, second = bundles(sink)[uid]
    assert first["id"] == second["id"]

    def ids(b: dict[str, Any]) -> set[tuple[str, str]]:
        return {(e["resource"]["resourceType"], e["resource"]["id"]) for e in b["entry"]}

    assert ids(first) == ids(second)
    assert instance_uids(second) == {sop_uid(1, 0), sop_uid(1, 1), sop_uid(1, 7)}


async def test_rebalance_checkpoints_and_the_new_owner_restores(tmp_path: Path) -> None:
    clock = FakeClock()
    source = FakeSource(partitions=(0, 1))
    put_study(source, clock, 1, 2, partition=0, marker=False)
    put_study(source, clock, 2, 2, partition=1)
    proc, sink = make(source, clock, disk=Disk(tmp_path, "one"))
    await started(proc)
    await proc.step()
    assert list(bundles(sink)) == [study_uid(2)]
    await source.assign({1})  # partition 0 goes to another member
    await proc.wait_ready()
    assert source.committed[0] == 2  # the revoke committed what was read
    assert proc.open_studies() == {1: []}
    # The other member (another machine, same brokers) restores study 1 and times it out.
    other = FakeSource(partitions=(0,), log=source.log, committed=dict(source.committed))
    proc2, _ = make(other, clock, sink, disk=Disk(tmp_path, "two"))
    await started(proc2)
    assert proc2.open_studies() == {0: [study_uid(1)]}
    clock.advance(TIMEOUT_S)
    await proc2.step()
    [bundle] = bundles(sink)[study_uid(1)]
    assert instance_uids(bundle) == {sop_uid(1, 0), sop_uid(1, 1)}


async def test_commit_waits_for_acks_and_failed_output_stops_without_commit(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 1)
    proc, _ = make(source, clock, FakeSink(fail_with=OutputError("broker down")), disk=disk)
    await started(proc)
    await proc.step()  # sends the Bundle; the checkpoint waits for its ack in the background
    with pytest.raises(OutputError, match="broker down"):
        await proc.wait_checkpoint()
    with pytest.raises(OutputError, match="broker down"):
        await proc.step()
    assert source.committed == {}


async def test_stop_publishes_what_is_due_and_commits(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 1)
    put_study(source, clock, 2, 1, marker=False)
    proc, sink = make(source, clock, disk=disk)
    proc.stop()
    await proc.run()  # stopped before the first poll: nothing consumed, nothing lost
    assert sink.sent == []
    assert source.stopped
    proc2, sink2 = make(FakeSource(log=source.log), clock, disk=disk)
    await started(proc2)
    await proc2.step()
    proc2.stop()
    await proc2.shutdown()
    assert list(bundles(sink2)) == [study_uid(1)]
    assert proc2.open_studies() == {0: [study_uid(2)]}


class _GatedExecutor(ThreadPoolExecutor):
    """Runs each job only once the event loop has shown it still runs other tasks meanwhile."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(max_workers=1)
        self._loop = loop
        self.started = asyncio.Event()
        self.loop_ran = threading.Event()
        self.loop_was_free: list[bool] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        def gated() -> Any:
            self._loop.call_soon_threadsafe(self.started.set)
            # If the build ran on the loop's thread, the loop could not answer: wait would time out.
            self.loop_was_free.append(self.loop_ran.wait(timeout=30))
            return fn(*args, **kwargs)

        return super().submit(gated)


async def test_big_study_build_does_not_starve_the_event_loop(disk: Disk) -> None:
    """Bundle building runs off the loop, so group heartbeats keep flowing during a large study."""
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 4000)
    executor = _GatedExecutor(asyncio.get_running_loop())
    proc, sink = make(source, clock, executor=executor, disk=disk)
    await started(proc)

    async def answer_while_building() -> None:
        await executor.started.wait()
        executor.loop_ran.set()

    helper = asyncio.create_task(answer_while_building())
    for _ in range(20):  # 500 records per poll
        await proc.step()
    await helper
    [bundle] = bundles(sink)[study_uid(1)]
    assert imaging_study(bundle)["numberOfInstances"] == 4000
    assert executor.loop_was_free == [True]


async def test_logs_and_dead_letter_reasons_hold_no_patient_data(
    caplog: pytest.LogCaptureFixture, disk: Disk
) -> None:
    import logging

    from streamer.log import JsonFormatter
    from tests.dicom_factory import element

    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    source = FakeSource()
    uid = study_uid(1)
    secret = {
        "00100010": element("PN", {"Alphabetic": "Zyxwort^Quintessa"}),
        "00100020": element("LO", "MRN-98765"),
        "00100030": element("DA", "19451231"),
    }
    odd = {  # odd values make the mapper warn; the warning must name the tag, not the value
        "00100040": element("CS", "Quintessa-sex"),
        "00101030": element("DS", "Zyxwort-kg"),
    }
    for i in range(2):
        doc = make_instance(uid, series_uid(1), sop_uid(1, i)) | secret | odd
        source.append(0, uid.encode(), orjson.dumps(doc), ts(clock))
    bad = make_instance(uid, series_uid(1), "not-a-uid") | secret
    del bad["0020000E"]
    source.append(0, uid.encode(), orjson.dumps(bad), ts(clock))
    source.append(0, uid.encode(), encode_marker(uid, 2), ts(clock))
    proc, sink = make(source, clock, disk=disk)
    await started(proc)
    await proc.step()
    proc.stop()
    await proc.shutdown()
    assert bundles(sink)[uid]
    formatter = JsonFormatter()
    text = "\n".join(formatter.format(r) for r in caplog.records)
    text += "\n".join(h["error-message"].decode() for _, _, h in sink.on("dicom.instances.dlq"))
    assert "study published" in text
    for needle in ("Zyxwort", "Quintessa", "MRN-98765", "19451231", "1945-12-31"):
        assert needle not in text


async def test_periodic_status_line_counts_open_studies(
    caplog: pytest.LogCaptureFixture, disk: Disk
) -> None:
    import logging

    from streamer.log import JsonFormatter

    caplog.set_level(logging.INFO, logger="streamer.app")
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2, marker=False)
    proc, _ = make(source, clock, disk=disk)
    await started(proc)
    await proc.step()
    assert not [r for r in caplog.records if r.getMessage() == "status"]
    clock.advance(61)
    await proc.step()
    [status] = [r for r in caplog.records if r.getMessage() == "status"]
    line = orjson.loads(JsonFormatter().format(status))
    # The study timed out in the same round (30 s < 61 s): closed, kept for late instances.
    assert line["partitions"] == {"0": {"restoring": False, "open": 0, "closed": 1, "committed": 2}}
    assert line["stats"]["studies_closed_timeout"] == 1
    assert line["stats"]["records"] == 2


async def test_output_failure_during_revoke_stops_the_loop_without_commit(disk: Disk) -> None:
    """aiokafka swallows errors raised in rebalance callbacks; the loop must still stop."""
    clock = FakeClock()
    source = FakeSource(partitions=(0, 1))
    put_study(source, clock, 1, 1, partition=0)
    sink = FakeSink()
    proc, _ = make(source, clock, sink, reopen_window_seconds=0, disk=disk)
    await started(proc)
    sink.fail_with = OutputError("broker refuses output")
    await proc.step()  # the Bundle is sent, its ack fails in the background checkpoint
    with pytest.raises(OutputError):
        await source.assign({1})  # the revoke callback meets the same failure
    with pytest.raises(OutputError, match="refuses"):
        await proc.step()
    assert source.committed == {}


async def test_a_failed_restore_stops_the_loop(tmp_path: Path) -> None:
    """A restore fails in its own task; the loop must still see it and stop."""
    from streamer.errors import StateError
    from streamer.state.errors import StoreCorruptError

    def broken_store(partition: int) -> PartitionStore[StudyRecord]:
        raise StoreCorruptError(f"store of partition {partition} is damaged")

    source = FakeSource()
    put_study(source, FakeClock(), 1, 1)
    sink = FakeSink()
    settings = load_settings(study_timeout_seconds=TIMEOUT_S)
    proc = Processor(settings, source, sink, FakeChangelog(sink, settings.changelog), broken_store)
    await proc.start()
    with pytest.raises(StateError, match="damaged"):
        await proc.wait_ready()
    with pytest.raises(StateError, match="damaged"):
        await proc.step()
    assert sink.sent == []
    assert source.committed == {}


async def test_a_marker_whose_study_never_comes_is_dead_lettered(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 0, marker=True)
    proc, sink = make(source, clock, disk=disk)
    await started(proc)
    await proc.step()
    assert sink.on("dicom.instances.dlq") == []
    clock.advance(TIMEOUT_S)
    await proc.step()
    [(key, value, headers)] = sink.on("dicom.instances.dlq")
    assert key == study_uid(1).encode()
    assert headers["error-type"] == b"EmptyStudyError"
    assert headers["source-offset"] == b"0"
    assert value is not None and orjson.loads(value)["instances"] == 0
    assert bundles(sink) == {}


async def test_instances_of_another_patient_are_dead_lettered_not_merged(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource()
    uid = study_uid(1)
    for i, patient in enumerate(("P1", "P2", "P1")):
        doc = make_instance(uid, series_uid(1), sop_uid(1, i), number=i + 1, patient_id=patient)
        source.append(0, uid.encode(), orjson.dumps(doc), ts(clock))
    source.append(0, uid.encode(), encode_marker(uid, None), ts(clock))
    proc, sink = make(source, clock, disk=disk)
    await started(proc)
    await proc.step()
    [bundle] = bundles(sink)[uid]
    assert instance_uids(bundle) == {sop_uid(1, 0), sop_uid(1, 2)}
    [(_, _, headers)] = sink.on("dicom.instances.dlq")
    assert headers["error-type"] == b"PatientConflictError"
    assert headers["source-offset"] == b"1"
    assert b"P2" not in headers["error-message"]


class _WaitingSource(FakeSource):
    """Its poll waits out its timeout when there is nothing to read, like a consumer, unless woken."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = asyncio.Event()  # a poll is waiting
        self._woken = asyncio.Event()
        self.polls_woken = 0

    async def poll(self, timeout_s: float, max_records: int) -> dict[int, list[Any]]:
        batch = await super().poll(timeout_s, max_records)
        if batch:
            return batch
        self.waiting.set()
        try:
            await asyncio.wait_for(self._woken.wait(), timeout_s)
            self.polls_woken += 1
        except TimeoutError:
            pass
        self._woken.clear()
        return {}

    def wake(self) -> None:
        super().wake()
        self._woken.set()


async def test_stop_wakes_a_waiting_poll(disk: Disk) -> None:
    clock = FakeClock()
    source = _WaitingSource()
    put_study(source, clock, 1, 2)
    # A poll waits up to the timer interval; a stop must not wait for it to end.
    proc, sink = make(source, clock, disk=disk, timer_interval_seconds=60)
    run = asyncio.ensure_future(proc.run())
    await asyncio.wait_for(source.waiting.wait(), 30)  # read and published; now the poll waits
    assert list(bundles(sink)) == [study_uid(1)]
    proc.stop()
    await asyncio.wait_for(run, 30)  # not after the poll's minute
    assert source.wakes == 1 and source.polls_woken == 1
    assert source.stopped
    assert source.committed == {0: 3}  # two instances and the marker: everything read is committed
