"""Assigned input partitions: their stores, their restore, and the checkpoint that commits them.

Each assigned partition has a store on local disk and, until its restore finished, is paused. The
checkpoint follows one order, so the store never holds what the group has not committed:

1. seal each store's staged changes into a snapshot; take the offsets reached and the sends made
   so far (Bundles, dead letters);
2. send the snapshot to the changelog (each record says which input offset it reflects) and wait
   for the acks of all these sends;
3. commit those offsets;
4. write the snapshot to the local store, with the changelog offset its records reached.

Step 1 runs on the loop; steps 2–4 run in a background task (one at a time) while the loop goes on
handling records, into fresh dirty maps, so a marker does not wait for a checkpoint's round trips
(a changelog batch larger than a produce batch waits for the ack of the one before it).
Whatever ends a lane or the processor first waits for that task (`settle`), and its failures are
raised on the loop (`check`). With transactions, the whole checkpoint runs on the loop: the
transaction would otherwise take in outputs of records after the snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from streamer.aggregate import PartitionState, StudyRecord
from streamer.config import Settings
from streamer.errors import OutputError, StateError
from streamer.metrics import Metrics
from streamer.outbox import Outbox, Pending
from streamer.ports import ChangelogReader, Sink, Source
from streamer.state.changelog import source_offset_header
from streamer.state.partition_store import FailedRecord, PartitionStore
from streamer.state.restore import RestoreResult, restore_partition
from streamer.state.study_store import KVStudyStore

log = logging.getLogger(__name__)

OpenStore = Callable[[int], PartitionStore[StudyRecord]]


@dataclass(slots=True)
class Lane:
    """One assigned partition: restoring until ``state`` is set."""

    number: int
    store: PartitionStore[StudyRecord] | None = None
    state: PartitionState | None = None
    task: asyncio.Task[None] | None = None
    committed: int | None = None
    restore: RestoreResult | None = None
    # The record whose handling failed on the last start(s) (a note in the local store), if it is
    # still ahead of the committed offset.
    failed: FailedRecord | None = None


@dataclass(slots=True)
class _Snapshot:
    """What a checkpoint's step 1 captured, for steps 2–4."""

    lanes: list[tuple[Lane, PartitionStore[StudyRecord]]]
    changes: dict[int, tuple[list[tuple[bytes, bytes | None]], int]]  # sealed records, input offset
    offsets: dict[int, int]  # the offsets to commit
    sends: list[Pending]  # every send made before the snapshot
    ends: dict[int, asyncio.Future[int]] = field(default_factory=dict)  # changelog batch acks
    dropped: list[Lane] = field(default_factory=list)  # commit refused: drop them on the loop


class Partitions:
    """The lanes of the partitions this process owns."""

    def __init__(
        self,
        settings: Settings,
        source: Source,
        sink: Sink,
        outbox: Outbox,
        reader: ChangelogReader,
        open_store: OpenStore,
        clock: Callable[[], float],
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self._source = source
        self._sink = sink
        self._outbox = outbox
        self._reader = reader
        self._open_store = open_store
        self._clock = clock
        self._metrics = metrics or Metrics()
        self.lanes: dict[int, Lane] = {}
        self._failure: BaseException | None = None
        self._inflight: asyncio.Task[_Snapshot] | None = None

    # ---- assignment and restore ---------------------------------------------------------------

    def assign(self, partitions: set[int]) -> None:
        """Pause the new partitions and restore each in a task of its own (not in the callback)."""
        self._source.pause(partitions)
        for p in sorted(partitions):
            lane = Lane(p)
            self.lanes[p] = lane
            lane.task = asyncio.create_task(self._restore(lane), name=f"restore-{p}")

    async def _restore(self, lane: Lane) -> None:
        started = time.monotonic()
        try:
            await self._sink.open_partitions({lane.number})
            lane.store = self._open_store(lane.number)
            lane.committed = await self._source.committed_offset(lane.number)
            lane.restore = await restore_partition(
                lane.store,
                self._reader,
                lane.number,
                committed=lane.committed,
                identity=self._identity(lane.number),
                now_ms=int(self._clock() * 1000),
            )
            state = PartitionState(
                partition=lane.number,
                store=KVStudyStore(lane.store),
                timeout_ms=int(self._settings.study_timeout_seconds * 1000),
                retention_ms=int(self._settings.state_retention_days * 86_400_000),
                max_instances=self._settings.max_instances_per_study,
                next_offset=lane.committed,
            )
            state.rearm(state.store.studies())
            lane.failed = _pending_failure(lane.store, lane.committed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Exceptions in rebalance callbacks and tasks are easy to lose: the loop raises this.
            if isinstance(exc, StateError | OutputError):
                self._failure = exc
            else:
                self._failure = StateError(f"restore failed: {exc!r}")
                self._failure.__cause__ = exc
            log.exception("partition restore failed", extra={"partition": lane.number})
            return
        if self.lanes.get(lane.number) is not lane:
            return  # revoked meanwhile
        lane.state = state
        if lane.committed is not None:
            self._source.seek(lane.number, lane.committed)
        self._source.resume({lane.number})
        seconds = time.monotonic() - started
        self._metrics.restore_seconds.observe(seconds)
        self._metrics.restore_records.inc(lane.restore.applied)
        log.info(
            "partition ready",
            extra={
                "partition": lane.number,
                "restore_seconds": round(seconds, 3),
                "changelog_records": lane.restore.applied,
                "skipped_records": lane.restore.skipped,
                "rebuilt": lane.restore.rebuilt,
                "open_studies": state.open_count,
                "closed_studies": state.closed_count,
                "committed": lane.committed,
            },
        )

    # ---- records whose handling failed (app.py) ---------------------------------------------------

    def failed_record(self, partition: int) -> FailedRecord | None:
        """The record that failed on the last start(s) of this partition, if it lies ahead."""
        lane = self.lanes.get(partition)
        return lane.failed if lane is not None else None

    def note_failed_record(self, partition: int, offset: int, error_type: str) -> FailedRecord:
        """Note in the partition's store that the record at `offset` failed on one more start."""
        lane = self.lanes[partition]
        assert lane.store is not None  # only a ready lane handles records
        lane.failed = lane.store.note_failed_record(offset, error_type)
        return lane.failed

    def forget_failed_record(self, partition: int) -> None:
        """The noted record is dealt with (dead-lettered). The store keeps the note until a restore
        finds the committed offset past it: a crash before that commit dead-letters it again."""
        self.lanes[partition].failed = None

    def _identity(self, partition: int) -> str:
        s = self._settings
        return f"{s.group_id}|{s.input_topic}|{partition}|{s.changelog}"

    async def wait_restored(self) -> None:
        tasks = [lane.task for lane in self.lanes.values() if lane.task is not None]
        await asyncio.gather(*tasks)
        self.check()

    def check(self) -> None:
        """Raise a restore or checkpoint failure (it happened in a task, away from the loop)."""
        if self._failure is not None:
            raise self._failure

    def ready(self) -> dict[int, PartitionState]:
        return {p: lane.state for p, lane in self.lanes.items() if lane.state is not None}

    @property
    def restoring(self) -> bool:
        return any(lane.state is None for lane in self.lanes.values())

    async def revoke(self, partitions: set[int]) -> None:
        """Checkpoint what is safe, then close the stores (the new owner restores them)."""
        await self.checkpoint(only=partitions, wait=True)
        for p in sorted(partitions):
            lane = self.lanes.pop(p, None)
            if lane is not None:
                await self._close_lane(lane)

    async def _drop(self, lane: Lane) -> None:
        self.lanes.pop(lane.number, None)
        self._source.pause({lane.number})
        await self._close_lane(lane)
        log.warning("partition dropped after a failed commit", extra={"partition": lane.number})

    async def close_stores(self) -> None:
        """Close every store without a checkpoint (the process is leaving)."""
        task, self._inflight = self._inflight, None
        if task is not None and not task.done():
            # No checkpoint is promised here: a commit that made it is caught up by the restore.
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        lanes, self.lanes = list(self.lanes.values()), {}
        for lane in lanes:
            await self._close_lane(lane)

    async def _close_lane(self, lane: Lane) -> None:
        """Stop its restore, drop what is staged, close its store and its output transaction."""
        if lane.task is not None and not lane.task.done():
            lane.task.cancel()
            await asyncio.gather(lane.task, return_exceptions=True)
        if lane.store is not None:
            lane.store.discard_dirty()
            lane.store.close()
        await self._sink.close_partitions({lane.number})

    # ---- checkpoint -----------------------------------------------------------------------------

    def dirty_bytes(self) -> int:
        """Bytes of keys and values staged or sealed (not yet in the stores), over all partitions."""
        return sum(lane.store.dirty_bytes for lane in self.lanes.values() if lane.store)

    def unsealed_bytes(self) -> int:
        """Bytes staged since the last checkpoint sealed its snapshot, over all partitions."""
        return sum(lane.store.unsealed_bytes for lane in self.lanes.values() if lane.store)

    @property
    def checkpoint_running(self) -> bool:
        """A background checkpoint (changelog, acks, commit, store write) is not yet taken in."""
        return self._inflight is not None

    async def checkpoint(self, only: set[int] | None = None, *, wait: bool = False) -> None:
        """Changelog, acks, commit, local store: in that order (see the module docstring).

        Waits for the previous checkpoint first. Returns once the snapshot is sent, its acks,
        commit and store write going on in the background, unless `wait` (or transactions).
        """
        await self.settle(wait=True)
        snapshot = await self._start(only)
        if wait or self._sink.transactional:
            await self._apply(await self._finish(snapshot))
        else:
            self._inflight = asyncio.create_task(self._finish(snapshot), name="checkpoint")
            self._inflight.add_done_callback(self._finished)

    async def settle(self, *, wait: bool = False) -> None:
        """Take in the background checkpoint once done (now, with `wait`); raise its failure.

        Call it on the loop (under the processor's lock): it drops lanes whose commit was refused.
        """
        task = self._inflight
        if task is not None and (wait or task.done()):
            try:
                # Shielded: a caller cancelled meanwhile (a shutdown timeout) leaves the task to
                # close_stores, which cancels it.
                snapshot = await asyncio.shield(task)
            finally:
                if task.done() and self._inflight is task:
                    self._inflight = None
            await self._apply(snapshot)
        self.check()

    def _finished(self, task: asyncio.Task[_Snapshot]) -> None:
        # Keep the failure for check(); the loop raises it on its next round.
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()

    async def _start(self, only: set[int] | None) -> _Snapshot:
        """Step 1: seal each lane's staged changes; capture the offsets and the sends so far."""
        lanes = [
            (lane, lane.store, lane.state)
            for p, lane in self.lanes.items()
            if lane.state is not None and lane.store is not None and (only is None or p in only)
        ]
        changes: dict[int, tuple[list[tuple[bytes, bytes | None]], int]] = {}
        for lane, store, state in lanes:
            sealed = store.seal()
            if sealed:
                changes[lane.number] = (list(sealed.items()), (state.next_offset or 0) - 1)
        offsets = {
            lane.number: state.next_offset
            for lane, _, state in lanes
            if state.next_offset is not None and state.next_offset != lane.committed
        }
        stores = [(lane, store) for lane, store, _ in lanes]
        return _Snapshot(stores, changes, offsets, self._outbox.take())

    async def _finish(self, snapshot: _Snapshot) -> _Snapshot:
        """Steps 2–4: changelog, the acks of every send before it, the commit, the store write.

        Touches no lane but the snapshot's stores (a write with no await in between, so the loop
        sees the store before or after it); dropping lanes is left to `_apply`, on the loop.
        """
        for partition, (records, source_offset) in snapshot.changes.items():
            snapshot.ends[partition] = await self._outbox.send_batch(
                self._settings.changelog,
                partition,
                records,
                [source_offset_header(source_offset)],
                source_partition=partition,
            )
        await self._outbox.wait(
            snapshot.sends + [Pending(end, None) for end in snapshot.ends.values()]
        )
        offsets = snapshot.offsets
        started = time.perf_counter()
        if self._sink.transactional:
            await self._sink.commit(offsets)  # the offsets commit with the outputs, or not at all
            committed = True
        else:
            committed = await self._source.commit(offsets) if offsets else True
        if offsets or self._sink.transactional:
            self._metrics.commit_seconds.observe(time.perf_counter() - started)
        now_ms = int(self._clock() * 1000)
        for lane, store in snapshot.lanes:
            if not committed and lane.number in offsets:
                # The group moved on: this lane's staged state is not ours to keep. Stop it; if the
                # partition comes back, it is restored and read again from the committed offset.
                snapshot.dropped.append(lane)
                continue
            if self.lanes.get(lane.number) is not lane or lane.store is not store:
                continue  # closed meanwhile (the store went with it)
            if lane.number in offsets:
                lane.committed = offsets[lane.number]
            end = snapshot.ends.get(lane.number)
            store.flush_sealed(
                changelog_offset=end.result() if end is not None else None, checkpoint_ms=now_ms
            )
        if offsets and committed:
            log.debug("offsets committed", extra={"offsets": offsets})
        return snapshot

    async def _apply(self, snapshot: _Snapshot) -> None:
        """On the loop: drop the lanes whose commit was refused."""
        for lane in snapshot.dropped:
            if self.lanes.get(lane.number) is lane:
                await self._drop(lane)


def _pending_failure(
    store: PartitionStore[StudyRecord], committed: int | None
) -> FailedRecord | None:
    """The store's note of a failed record, unless the group has committed past it (stale)."""
    note = store.failed_record()
    if note is not None and committed is not None and note.offset < committed:
        store.clear_failed_record()
        return None
    return note
