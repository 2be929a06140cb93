"""Assigned input partitions: their stores, their restore, and the checkpoint that commits them.

Each assigned partition has a store on local disk and, until its restore finished, is paused. The
checkpoint follows one order, so the store never holds what the group has not committed:

1. send the store's staged changes to the changelog (each record says which input offset it reflects);
2. wait for every ack: Bundles, dead letters and changelog records;
3. commit ``last processed offset + 1``;
4. write the staged changes to the local store, with the changelog offset reached.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from streamer.aggregate import PartitionState, StudyRecord
from streamer.config import Settings
from streamer.errors import OutputError, StateError
from streamer.metrics import Metrics
from streamer.outbox import Outbox
from streamer.ports import ChangelogReader, Sink, Source
from streamer.state.changelog import source_offset_header
from streamer.state.partition_store import PartitionStore
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

    def _identity(self, partition: int) -> str:
        s = self._settings
        return f"{s.group_id}|{s.input_topic}|{partition}|{s.changelog}"

    async def wait_restored(self) -> None:
        tasks = [lane.task for lane in self.lanes.values() if lane.task is not None]
        await asyncio.gather(*tasks)
        self.check()

    def check(self) -> None:
        """Raise a restore failure (it happened in a task, away from the loop)."""
        if self._failure is not None:
            raise self._failure

    def ready(self) -> dict[int, PartitionState]:
        return {p: lane.state for p, lane in self.lanes.items() if lane.state is not None}

    @property
    def restoring(self) -> bool:
        return any(lane.state is None for lane in self.lanes.values())

    async def revoke(self, partitions: set[int]) -> None:
        """Checkpoint what is safe, then close the stores (the new owner restores them)."""
        await self.checkpoint(only=partitions)
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
        """Bytes of keys and values staged for the next checkpoint, over all partitions."""
        return sum(lane.store.dirty_bytes for lane in self.lanes.values() if lane.store)

    async def checkpoint(self, only: set[int] | None = None) -> None:
        """Changelog, acks, commit, local store: in that order (see the module docstring)."""
        lanes = [
            (lane, lane.store, lane.state)
            for p, lane in self.lanes.items()
            if lane.state is not None and lane.store is not None and (only is None or p in only)
        ]
        ends: dict[int, asyncio.Future[int]] = {}
        for lane, store, state in lanes:
            dirty = store.dirty()
            if not dirty:
                continue
            headers = [source_offset_header((state.next_offset or 0) - 1)]
            ends[lane.number] = await self._outbox.send_batch(
                self._settings.changelog,
                lane.number,
                list(dirty.items()),
                headers,
                source_partition=lane.number,
            )
        await self._outbox.drain()
        offsets = {
            lane.number: state.next_offset
            for lane, _, state in lanes
            if state.next_offset is not None and state.next_offset != lane.committed
        }
        started = time.perf_counter()
        if self._sink.transactional:
            await self._sink.commit(offsets)  # the offsets commit with the outputs, or not at all
            committed = True
        else:
            committed = await self._source.commit(offsets) if offsets else True
        if offsets or self._sink.transactional:
            self._metrics.commit_seconds.observe(time.perf_counter() - started)
        now_ms = int(self._clock() * 1000)
        for lane, store, _ in lanes:
            if not committed and lane.number in offsets:
                # The group moved on: this lane's staged state is not ours to keep. Stop it; if the
                # partition comes back, it is restored and read again from the committed offset.
                await self._drop(lane)
                continue
            if lane.number in offsets:
                lane.committed = offsets[lane.number]
            end = ends.get(lane.number)
            store.flush(
                changelog_offset=end.result() if end is not None else None, checkpoint_ms=now_ms
            )
        if offsets and committed:
            log.debug("offsets committed", extra={"offsets": offsets})
