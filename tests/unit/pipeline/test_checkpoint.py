"""The pipelined checkpoint: the loop goes on while a checkpoint waits for its acks and commit."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streamer.app import Processor
from streamer.errors import OutputError
from streamer.ports import Headers
from streamer.state.changelog import SOURCE_OFFSET_HEADER
from tests.dicom_factory import study_uid
from tests.fakes import FakeClock, FakeSink, FakeSource
from tests.unit.pipeline.test_app import (
    TIMEOUT_S,
    Disk,
    bundles,
    make,
    put_study,
    started,
)

CHANGELOG = "streamer.study-state"


@pytest.fixture
def disk(tmp_path: Path) -> Disk:
    return Disk(tmp_path)


@dataclass
class HeldSink(FakeSink):
    """A sink whose acks wait until the test releases them."""

    acks: list[tuple[asyncio.Future[int], int]] = field(default_factory=list)

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        *,
        partition: int | None = None,
        source_partition: int = 0,
    ) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.acks.append((future, self.record(topic, partition, key, value, headers)))
        return future

    async def send_batch(
        self,
        topic: str,
        partition: int,
        records: Sequence[tuple[bytes, bytes | None]],
        headers: Headers,
        *,
        source_partition: int = 0,
    ) -> asyncio.Future[int]:
        """Like the real sink: one ack, for the batch's last record."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        offsets = [self.record(topic, partition, key, value, headers) for key, value in records]
        self.acks.append((future, offsets[-1]))
        return future

    def release(self, error: BaseException | None = None) -> None:
        for future, offset in self.acks:
            if future.done():
                continue
            if error is None:
                future.set_result(offset)
            else:
                future.set_exception(error)

    @property
    def unacked(self) -> int:
        return sum(not f.done() for f, _ in self.acks)


def watch_commits(source: FakeSource, sink: HeldSink) -> list[int]:
    """Make every commit note how many sends were still unacked at that moment."""
    unacked: list[int] = []
    commit = source.commit

    async def noting(offsets: dict[int, int]) -> bool:
        unacked.append(sink.unacked)
        return await commit(offsets)

    source.commit = noting  # type: ignore[method-assign]
    return unacked


async def spin(rounds: int = 20) -> None:
    """Let background tasks run as far as they can."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def acked(sink: HeldSink, task: asyncio.Task[None]) -> None:
    """Ack every send, as it comes, until `task` is done."""
    while not task.done():
        sink.release()
        await asyncio.sleep(0)
    await task


async def checkpointed(proc: Processor, sink: HeldSink) -> None:
    """Ack the sends until the checkpoint in flight is done."""
    await acked(sink, asyncio.create_task(proc.wait_checkpoint()))


def changelog_sources(sink: FakeSink) -> list[int]:
    """The input offset each changelog record says it reflects, in changelog order."""
    return [int(h[SOURCE_OFFSET_HEADER]) for _, _, h in sink.logs.get((CHANGELOG, 0), [])]


async def test_offsets_are_committed_only_after_every_ack(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2)
    sink = HeldSink()
    unacked = watch_commits(source, sink)
    proc, _ = make(source, clock, sink, disk=disk)
    await started(proc)
    await proc.step()  # closes the study: Bundle and changelog sent, the checkpoint goes on behind
    assert list(bundles(sink)) == [study_uid(1)]
    assert sink.unacked > 0
    await spin()
    assert source.commits == []  # the acks are still missing
    await checkpointed(proc, sink)
    assert source.committed == {0: 3}
    assert unacked == [0]


async def test_a_failed_ack_means_no_commit_and_the_loop_stops(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2)
    sink = HeldSink()
    proc, _ = make(source, clock, sink, disk=disk)
    await started(proc)
    await proc.step()
    sink.release(OutputError("broker lost the Bundle"))
    await spin()
    with pytest.raises(OutputError, match="lost the Bundle"):
        await proc.step()
    with pytest.raises(OutputError, match="lost the Bundle"):
        await proc.wait_checkpoint()
    assert source.commits == []
    await proc.close()


async def test_records_read_during_a_checkpoint_go_into_the_next_one(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2)  # offsets 0-2
    sink = HeldSink()
    unacked = watch_commits(source, sink)
    proc, _ = make(source, clock, sink, disk=disk)
    await started(proc)
    await proc.step()  # checkpoint 1: offsets up to 2, acks held
    put_study(source, clock, 2, 2, marker=False)  # offsets 3-4, read while checkpoint 1 waits
    await proc.step()  # the loop is not held: it handles them before any ack came
    assert proc.open_studies() == {0: [study_uid(2)]}
    assert source.commits == []
    await checkpointed(proc, sink)
    assert source.commits == [{0: 3}]  # checkpoint 1 has none of the later records
    assert set(changelog_sources(sink)) == {2}
    first_changelog = len(changelog_sources(sink))
    clock.advance(1)
    await proc.step()  # checkpoint 2 takes them in
    await checkpointed(proc, sink)
    assert source.commits == [{0: 3}, {0: 5}]
    later = changelog_sources(sink)[first_changelog:]
    assert later and set(later) == {4}
    assert unacked == [0, 0]
    # "kill -9", restart on the same disk: study 2 comes back from the store written by checkpoint 2.
    await proc.close()
    source2 = FakeSource(log=source.log, committed=dict(source.committed))
    proc2, _ = make(source2, clock, sink, disk=disk)
    await started(proc2)
    assert proc2.open_studies() == {0: [study_uid(2)]}
    assert proc2.snapshot()["partitions"][0]["committed"] == 5


async def test_a_revoke_waits_for_the_checkpoint_in_flight(tmp_path: Path) -> None:
    clock = FakeClock()
    source = FakeSource(partitions=(0, 1))
    put_study(source, clock, 1, 2, partition=0, marker=False)
    put_study(source, clock, 2, 2, partition=1)
    sink = HeldSink()
    unacked = watch_commits(source, sink)
    proc, _ = make(source, clock, sink, disk=Disk(tmp_path, "one"))
    await started(proc)
    await proc.step()  # study 2 closed; its checkpoint waits for acks
    revoke = asyncio.create_task(source.assign({1}))  # partition 0 goes to another member
    await spin()
    assert not revoke.done()  # the revoke waits for the checkpoint in flight
    assert source.commits == []
    await acked(sink, revoke)
    await proc.wait_ready()
    assert unacked and all(n == 0 for n in unacked)
    assert source.committed == {0: 2, 1: 3}
    # The other member restores study 1 from the changelog and times it out.
    other = FakeSource(partitions=(0,), log=source.log, committed=dict(source.committed))
    proc2, _ = make(other, clock, sink, disk=Disk(tmp_path, "two"))
    await started(proc2)
    assert proc2.open_studies() == {0: [study_uid(1)]}
    clock.advance(TIMEOUT_S)
    await proc2.step()
    await checkpointed(proc2, sink)
    assert set(bundles(sink)) == {study_uid(1), study_uid(2)}


async def test_stop_waits_for_the_checkpoint_in_flight(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2)
    sink = HeldSink()
    proc, _ = make(source, clock, sink, disk=disk)
    await started(proc)
    await proc.step()
    put_study(source, clock, 2, 1, marker=False)
    await proc.step()
    shutdown = asyncio.create_task(proc.shutdown())
    await spin()
    assert not shutdown.done()
    await acked(sink, shutdown)
    assert source.commits == [{0: 3}, {0: 4}]
    await proc.close()


async def test_freed_memory_is_released_once_the_burst_is_checkpointed(
    disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    releases: list[float] = []
    clock = FakeClock()
    monkeypatch.setattr("streamer.memory.release_free_memory", lambda: releases.append(clock()))
    source = FakeSource()
    sink = HeldSink()
    proc, _ = make(source, clock, sink, disk=disk)
    await started(proc)
    await proc.step()
    await checkpointed(proc, sink)  # the first checkpoint, before any input
    releases.clear()
    put_study(source, clock, 1, 2, marker=False)
    await proc.step()  # the burst: two instances staged, no checkpoint yet
    assert releases == []
    clock.advance(11)
    # An empty poll: the interval's checkpoint seals the burst (its acks held back) and the
    # periodic trim runs, but the sealed snapshot is still held until the checkpoint is written.
    await proc.step()
    await spin()
    assert sink.unacked > 0
    assert len(releases) == 1
    await proc.step()
    assert len(releases) == 1
    await checkpointed(proc, sink)
    await proc.step()  # idle, everything written: the heap is trimmed again, once
    await proc.step()
    assert len(releases) == 2
    # What the burst's work frees later (RocksDB's memtable flush) is trimmed too: each idle
    # second for a while, then only with the periodic checkpoint trim.
    clock.advance(1)
    await proc.step()
    assert len(releases) == 3
    clock.advance(0.5)
    await proc.step()
    assert len(releases) == 3
    clock.advance(12)
    await proc.step()  # the periodic trim (10 s since the last one); the after-burst ones are over
    assert len(releases) == 4
    for _ in range(3):
        clock.advance(1)
        await proc.step()
    assert len(releases) == 4
    await checkpointed(proc, sink)
    await proc.close()


async def test_a_snapshot_in_flight_does_not_start_another_checkpoint(
    disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The size trigger counts what no checkpoint has taken yet. Counting the sealed snapshot too,
    # the next round started a second checkpoint, which held the loop until the first one's acks.
    monkeypatch.setattr("streamer.app._MAX_DIRTY_BYTES", 1000)
    clock = FakeClock()
    source = FakeSource()
    sink = HeldSink()
    proc, _ = make(source, clock, sink, disk=disk)
    await started(proc)
    await proc.step()
    await checkpointed(proc, sink)
    put_study(source, clock, 1, 2, marker=False)
    await proc.step()  # over the size: a checkpoint seals the two instances, its acks held
    await spin()
    assert sink.unacked > 0
    await asyncio.wait_for(proc.step(), timeout=5)  # not held by the checkpoint in flight
    await asyncio.wait_for(proc.step(), timeout=5)
    await checkpointed(proc, sink)
    assert source.committed == {0: 2}
    await proc.close()


async def test_a_due_checkpoint_waits_for_the_one_in_flight_without_holding_the_loop(
    disk: Disk,
) -> None:
    # A close, then another a second later while the first checkpoint still waits for its acks:
    # the second study's Bundle goes out in that round, its checkpoint follows once the first is
    # done. (Started at once, it would have held the round until the first one's acks came.)
    clock = FakeClock()
    source = FakeSource()
    sink = HeldSink()
    proc, _ = make(source, clock, sink, disk=disk)
    await started(proc)
    put_study(source, clock, 1, 2)
    await proc.step()  # closes study 1; its checkpoint goes on behind, acks held
    await spin()
    assert sink.unacked > 0
    clock.advance(2.0)
    put_study(source, clock, 2, 2)
    await asyncio.wait_for(proc.step(), timeout=5)
    assert set(bundles(sink)) == {study_uid(1), study_uid(2)}
    assert source.committed == {}  # the first checkpoint's acks are still held
    await checkpointed(proc, sink)
    assert source.committed == {0: 3}  # study 1: two instances and its marker
    clock.advance(2.0)
    await acked(sink, asyncio.create_task(proc.step()))  # now the deferred checkpoint runs
    await checkpointed(proc, sink)
    assert source.committed == {0: 6}
    await proc.close()


async def test_past_the_hard_bound_a_due_checkpoint_holds_the_loop(
    disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Back-pressure: with more than _HARD_DIRTY_BYTES staged, the round waits for the checkpoint in
    # flight and starts the next one, instead of reading on.
    monkeypatch.setattr("streamer.app._MAX_DIRTY_BYTES", 1000)
    monkeypatch.setattr("streamer.app._HARD_DIRTY_BYTES", 2000)
    clock = FakeClock()
    source = FakeSource()
    sink = HeldSink()
    proc, _ = make(source, clock, sink, disk=disk)
    await started(proc)
    put_study(source, clock, 1, 2, marker=False)
    await proc.step()  # over the size: a checkpoint goes on behind, acks held
    await spin()
    assert sink.unacked > 0
    put_study(source, clock, 2, 4, marker=False)  # well over the hard bound
    step = asyncio.create_task(proc.step())
    await spin()
    assert not step.done()  # held by the checkpoint in flight
    await acked(sink, step)
    await checkpointed(proc, sink)
    assert source.committed == {0: 6}
    await proc.close()
