"""The processing loop: poll -> decode -> aggregate -> close due studies -> publish -> checkpoint.

One task does everything, under one lock that the rebalance callbacks also take, so record
handling, timers, publishing and checkpoints never interleave (only a checkpoint's changelog sends,
acks, commit and store write go on in the background, on the snapshot it sealed). Study state lives
in a store per partition backed by a changelog topic (``partitions.py``); offsets are committed
only after every Bundle, dead letter and changelog record they depend on is acknowledged. Building
and sending a closed study's Bundle (or its dead letter) is ``publishing.py``'s part.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from streamer.aggregate import CloseReason, PartitionState
from streamer.config import Settings
from streamer.errors import EmptyStudyError, RecordHandlingError, StreamerError
from streamer.intake import RecordIntake
from streamer.log import stack_without_message
from streamer.memory import HeapReleaser
from streamer.metrics import Metrics, Samples
from streamer.outbox import Outbox
from streamer.partitions import OpenStore, Partitions
from streamer.ports import ChangelogReader, InputRecord, Sink, Source
from streamer.publishing import StudyPublisher
from streamer.state import shared_usage
from streamer.state.partition_store import FailedRecord

log = logging.getLogger(__name__)

_STATUS_INTERVAL_S = 60.0  # a periodic line with counters and open studies per partition
# A checkpoint also runs when this much is staged, so memory stays bounded under load.
_MAX_DIRTY_BYTES = 4 * 1024 * 1024
# A due checkpoint waits for a round where the previous one is done (below), unless this much is
# staged meanwhile: then it holds the loop until it can start (back-pressure, bounded memory).
_HARD_DIRTY_BYTES = 4 * _MAX_DIRTY_BYTES
# After closes a checkpoint follows at once, but not more often than this: while a backlog is read,
# every poll closes studies, and a checkpoint per poll would spend the loop waiting on round trips.
# A checkpoint's sends, acks and commit (≈ 10–70 ms) run in the background (partitions.py); the next
# one waits for them, so checkpointing much more often would hold the loop again. A crash
# re-publishes at most this much more (same ids: harmless downstream).
_MIN_CLOSE_CHECKPOINT_S = 1.0
# Retention sweeps remove at most this many studies per round, so a sweep never stalls the lane,
# and run at most this often: each opens a store iterator per partition (on the closing-order
# index), needless in every round of a loop that runs a round per arriving record.
_EXPIRE_PER_ROUND = 50
_EXPIRE_INTERVAL_S = 1.0
# The shortest poll when an inactivity deadline is near (no busy loop on a deadline just passed).
_MIN_POLL_S = 0.01


class Processor:
    """Runs the stream until stop() is called or an unrecoverable error happens."""

    def __init__(
        self,
        settings: Settings,
        source: Source,
        sink: Sink,
        changelog: ChangelogReader,
        open_store: OpenStore,
        *,
        clock: Callable[[], float] = time.time,
        executor: ThreadPoolExecutor | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._options = settings.mapping_options()
        self._source = source
        self._sink = sink
        self._clock = clock
        # A large study's Bundle is CPU work; a thread keeps the loop (and the heartbeats) responsive.
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="bundle")
        # Every send waits here for its ack; a lost output record makes it fail for good.
        self._outbox = Outbox(sink)
        self.metrics = Metrics()
        self._partitions = Partitions(
            settings, source, sink, self._outbox, changelog, open_store, clock, self.metrics
        )
        self.metrics.open_studies.sample = self._sample_open_studies
        self.metrics.consumer_lag.sample = self._sample_lag
        self.metrics.oldest_open_study_age.sample = self._sample_oldest_age
        self.metrics.state_memory.sample = _sample_state_memory
        self._intake = RecordIntake(settings, self._outbox, source.topic, self.metrics)
        self._publisher = StudyPublisher(
            settings, self._outbox, source.topic, self.metrics, self._executor, self._options, clock
        )
        # Monotonic time at which the last step() completed (or the processor was made): /healthz.
        self._monotonic = monotonic
        self.last_progress = monotonic()
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._last_commit = float("-inf")  # the first round that closes a study checkpoints
        self._last_expire = float("-inf")
        self._last_status = clock()
        self._heap = HeapReleaser(clock)
        self._warm = False  # set once the first Bundle was built (see _freeze_warm_objects)
        self.assigned = asyncio.Event()  # set once the first assignment arrived

    # ---- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish: stop consuming, publish what is due, commit, return."""
        self._stopping.set()
        self._source.wake()  # a waiting poll returns now, not after its timeout

    async def run(self) -> None:
        """Consume until stopped; then flush and commit within the shutdown budget."""
        await self.start()
        try:
            while not self._stopping.is_set():
                await self.step()
            await asyncio.wait_for(self.shutdown(), self._settings.shutdown_timeout_seconds)
        finally:
            await self.close()

    async def start(self) -> None:
        """Start the producer, then join the group (assignment arrives through the callbacks)."""
        await self._sink.start()
        try:
            await self._source.start(self._on_assigned, self._on_revoked)
        except BaseException:
            await self._sink.stop()
            raise

    async def step(self) -> None:
        """One round: poll, handle records, close due studies, checkpoint when due."""
        self._outbox.check()
        self._partitions.check()
        batch = await self._source.poll(self._poll_timeout(), self._settings.max_poll_records)
        async with self._lock:
            await self._partitions.settle()  # a finished background checkpoint: drop refused lanes
            await self._handle_batch(batch)
            closed = await self._close_due()
            if closed and not self._warm:
                self._freeze_warm_objects()
            if self._checkpoint_due(closed):
                await self._checkpoint()
            if self._clock() - self._last_status >= _STATUS_INTERVAL_S:
                self._last_status = self._clock()
                log.info("status", extra=self.snapshot())
            self._heap.after_round(
                busy=bool(batch),
                settled=not self._partitions.dirty_bytes()
                and not self._partitions.checkpoint_running,
            )
        self.last_progress = self._monotonic()

    def _checkpoint_due(self, closed: int) -> bool:
        """Whether this round starts a checkpoint.

        A checkpoint starts only after the previous one's acks and commit (partitions.py). Started
        while those are still under way, it held the loop until they came, and with it every
        marker read meanwhile: under load on Apache Kafka that wait was ≈ 20–35 ms a round and the
        marker → Bundle latency grew (bench/README). So a due checkpoint waits for a round where
        the previous one is done, unless the staged data outgrows _HARD_DIRTY_BYTES.
        """
        # Only what no checkpoint has taken yet: counting the snapshot in flight started a second
        # checkpoint at once, which held the loop until the first one's acks came.
        unsealed = self._partitions.unsealed_bytes()
        since = self._clock() - self._last_commit
        due = (
            (closed and since >= _MIN_CLOSE_CHECKPOINT_S)
            or since >= self._settings.commit_interval_seconds
            or unsealed >= _MAX_DIRTY_BYTES
        )
        return due and (not self._partitions.checkpoint_running or unsealed >= _HARD_DIRTY_BYTES)

    def _freeze_warm_objects(self) -> None:
        """After the first Bundle: everything imported and built once for good (models, validators,
        caches) leaves the cyclic collector's view. A full collection then looks at the objects
        made since, not the ~160,000 of the warm process: ≈ 50 ms of stalled loop became ≈ 1 ms
        (the marker → Bundle p99 of bench/latency.py)."""
        self._warm = True
        gc.freeze()

    def _poll_timeout(self) -> float:
        """The timer interval, or less when an open study's inactivity deadline comes sooner.

        A caught-up partition closes studies by the wall clock, so waking up at the deadline closes
        them on time instead of up to a timer interval late. (A partition that is behind closes by
        its stream time: the records it reads move that, so no wake-up is needed for it.)
        """
        timeout = self._settings.timer_interval_seconds
        now = self._clock()
        for partition, state in self._partitions.ready().items():
            if not self._source.caught_up(partition):
                continue
            oldest = state.oldest_activity_ms()
            if oldest is None:
                continue
            due_in = (oldest + state.timeout_ms) / 1000 - now
            timeout = min(timeout, max(_MIN_POLL_S, due_in))
        return timeout

    async def close(self) -> None:
        """Close the stores, leave the group and stop the producer (no flushing: see stop())."""
        try:
            async with self._lock:
                await self._partitions.close_stores()
            await self._source.stop()
        finally:
            await self._sink.stop()
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def shutdown(self) -> None:
        """Publish what is due, wait for every ack and checkpoint (run() calls it after stop())."""
        async with self._lock:
            await self._close_due()
            await self._checkpoint(wait=True)
        log.info("stopped", extra={"stats": self.metrics.snapshot()})

    async def wait_checkpoint(self) -> None:
        """Wait until the checkpoint running in the background is done (raises its failure)."""
        async with self._lock:
            await self._partitions.settle(wait=True)

    async def wait_ready(self) -> None:
        """Wait until the current assignment is restored (raises a restore failure)."""
        await self.assigned.wait()
        await self._partitions.wait_restored()

    @property
    def ready(self) -> bool:
        """Partitions are assigned and every one of them is restored."""
        return self.assigned.is_set() and not self._partitions.restoring

    # ---- rebalance -------------------------------------------------------------------------

    async def _on_assigned(self, partitions: set[int]) -> None:
        async with self._lock:
            self.metrics.rebalances.inc()
            self._partitions.assign(partitions)
            log.info("partitions assigned", extra={"partitions": sorted(partitions)})
            self.assigned.set()

    async def _on_revoked(self, partitions: set[int]) -> None:
        async with self._lock:
            await self._partitions.revoke(partitions)
            log.info("partitions revoked", extra={"partitions": sorted(partitions)})

    # ---- records ---------------------------------------------------------------------------

    async def _handle_batch(self, batch: dict[int, list[InputRecord]]) -> None:
        ready = self._partitions.ready()
        for partition, records in batch.items():
            state = ready.get(partition)
            if state is None:
                if partition in self._partitions.lanes and records:
                    # Still restoring (it should be paused): read these again once it is ready.
                    self._source.seek(partition, records[0].offset)
                continue  # otherwise revoked meanwhile: the new owner reads them
            failed = self._partitions.failed_record(partition)
            for record in records:
                if failed is not None and record.offset == failed.offset:
                    failed = await self._meet_failed_record(state, record, failed)
                    if failed is None:
                        continue
                try:
                    await self._intake.handle(state, record)
                except StreamerError:
                    raise  # the error tree says what happens (output, state: exit as they are)
                except Exception as exc:  # noqa: BLE001 - any other error is a bug met on this record
                    raise self._record_failed(record, exc) from None

    async def _meet_failed_record(
        self, state: PartitionState, record: InputRecord, failed: FailedRecord
    ) -> FailedRecord | None:
        """The record that failed on the last start(s): dead-letter it once it had its attempts
        (None: done), else hand it back to be handled once more."""
        if failed.attempts < self._settings.max_record_attempts:
            return failed
        await self._intake.set_aside(state, record, failed.attempts, failed.error_type)
        self._partitions.forget_failed_record(record.partition)
        return None

    def _record_failed(self, record: InputRecord, exc: Exception) -> RecordHandlingError:
        """Note the record in its partition's store and say why the process exits.

        Its change may be half staged, so the process must not go on (a restart restores the
        last checkpoint and reads the record again). The exception's message is left out of the
        log and of the error: it may quote the record's values (patient data); its stack is not.
        """
        error_type = type(exc).__name__
        note = self._partitions.note_failed_record(record.partition, record.offset, error_type)
        stack = stack_without_message(exc)
        log.error(
            "handling a record failed unexpectedly",
            extra={
                "partition": record.partition,
                "offset": record.offset,
                "error_type": error_type,
                "attempts": note.attempts,
                "max_attempts": self._settings.max_record_attempts,
                "stack": stack,
            },
        )
        return RecordHandlingError(
            f"handling record {record.offset} of partition {record.partition} raised {error_type} "
            f"(start {note.attempts} of STREAMER_MAX_RECORD_ATTEMPTS="
            f"{self._settings.max_record_attempts} before it is dead-lettered); exiting without "
            "committing"
        )

    # ---- closing (publishing.py builds and sends) ------------------------------------------

    def _now_ms(self, partition: int, state: PartitionState) -> int:
        """Wall clock once the partition is caught up; its stream time while reading a backlog.

        While behind, the next records may still belong to an open study, so only the record
        timestamps read so far may move its deadline (no mass closing after an outage).
        """
        if self._source.caught_up(partition):
            return int(self._clock() * 1000)
        return state.stream_time_ms

    async def _close_due(self) -> int:
        closed = 0
        sweep = self._clock() - self._last_expire >= _EXPIRE_INTERVAL_S
        if sweep:
            self._last_expire = self._clock()
        for partition, state in self._partitions.ready().items():
            now = self._now_ms(partition, state)
            for uid, reason in state.due(now):
                record = state.study(uid)
                if record is None:
                    continue
                if record.instance_count == 0:
                    # A marker whose study never came: tell operators through the DLQ.
                    self.metrics.empty_studies.inc()
                    await self._publisher.dead_letter_study(
                        partition,
                        record,
                        EmptyStudyError(
                            f"end-of-study marker for study {uid}, but no instance of it arrived "
                            f"within STREAMER_STUDY_TIMEOUT_SECONDS"
                        ),
                    )
                    state.drop_empty(uid)
                    continue
                # marker: closed by a marker without a count; count: by one with its count reached.
                label = reason.value
                if reason is CloseReason.MARKER and record.expected_count is not None:
                    label = "count"
                await self._publisher.publish(partition, state, record, reason)
                state.close(uid, now, reason)
                self.metrics.studies_closed.labels(reason=label).inc()
                closed += 1
            if sweep and self._source.caught_up(partition):
                for uid in state.expire(now, _EXPIRE_PER_ROUND):
                    log.info(
                        "closed study past retention removed",
                        extra={"study_uid": uid, "partition": partition},
                    )
        return closed

    # ---- checkpoints -----------------------------------------------------------------------

    async def _checkpoint(self, *, wait: bool = False) -> None:
        # Measures what holds the loop: the previous checkpoint's end and the sealing.
        started = time.perf_counter()
        await self._partitions.checkpoint(wait=wait)
        self.metrics.checkpoint_seconds.observe(time.perf_counter() - started)
        now = self._clock()
        self._last_commit = now
        self._heap.after_checkpoint()

    # ---- introspection (tests, health) -------------------------------------------------------

    def open_studies(self) -> dict[int, list[str]]:
        """Open study UIDs per restored partition."""
        return {p: st.open_uids() for p, st in self._partitions.ready().items()}

    def restoring_partitions(self) -> list[int]:
        """Assigned partitions whose state is still being restored (for /readyz)."""
        return sorted(p for p, lane in self._partitions.lanes.items() if lane.state is None)

    # Sampled when /metrics is scraped (on the loop's thread).

    def _sample_open_studies(self) -> Samples:
        return [((str(p),), st.open_count) for p, st in sorted(self._partitions.ready().items())]

    def _sample_lag(self) -> Samples:
        lags = ((p, self._source.lag(p)) for p in sorted(self._partitions.lanes))
        return [((str(p),), lag) for p, lag in lags if lag is not None]

    def _sample_oldest_age(self) -> Samples:
        oldest = [st.oldest_activity_ms() for st in self._partitions.ready().values()]
        known = [ms for ms in oldest if ms is not None]
        age = max(0.0, self._clock() - min(known) / 1000) if known else 0.0
        return [((), age)]

    def snapshot(self) -> dict[str, Any]:
        """Counters and per-partition state sizes (for logs and health endpoints)."""
        lanes = self._partitions.lanes
        return {
            "stats": self.metrics.snapshot(),
            "partitions": {
                p: {
                    "restoring": lane.state is None,
                    "open": lane.state.open_count if lane.state else None,
                    "closed": lane.state.closed_count if lane.state else None,
                    "committed": lane.committed,
                }
                for p, lane in lanes.items()
            },
        }


def _sample_state_memory() -> Samples:
    return [((part,), float(size)) for part, size in sorted(shared_usage().items())]
