"""The processing loop: poll -> decode -> aggregate -> close due studies -> publish -> commit.

One task does everything, under one lock that the rebalance callbacks also take, so record
handling, timers, publishing and offset bookkeeping never interleave (the Flink/Quix "lane").
Offsets are committed only after every Bundle and dead letter they depend on is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson

from streamer.aggregate import CloseReason, PartitionState, Study
from streamer.config import Settings
from streamer.errors import InvalidMessageError, MappingError
from streamer.fhir import BundleResult, MappingOptions, build_study_bundle, bundle_json
from streamer.messages import Instance, decode
from streamer.ports import Headers, InputRecord, Sink, Source

log = logging.getLogger(__name__)

BUNDLE_CONTENT_TYPE = b"application/fhir+json"
_STATUS_INTERVAL_S = 60.0  # a periodic line with counters and open studies per partition
_MAX_ERROR_MESSAGE = 1000  # header size stays small; the class name says the rest


@dataclass(frozen=True, slots=True)
class _Pending:
    """A send awaiting its broker ack, with what to do if the broker refuses it for good."""

    future: asyncio.Future[object]
    what: str  # "bundle" or "dead-letter"
    partition: int
    study_uid: str | None
    first_offset: int


def build_study(
    slim_instances: Iterable[bytes], options: MappingOptions
) -> tuple[BundleResult, bytes]:
    """Decode held instances, build and validate the Bundle, serialize it (runs in a worker thread)."""
    result = build_study_bundle([orjson.loads(raw) for raw in slim_instances], options)
    return result, bundle_json(result)


def dead_letter_headers(
    error_type: str, message: str, topic: str, partition: int, offset: int
) -> Headers:
    """The DLQ headers of the public contract."""
    return [
        ("error-type", error_type.encode()),
        ("error-message", message[:_MAX_ERROR_MESSAGE].encode("utf-8", "replace")),
        ("source-topic", topic.encode()),
        ("source-partition", str(partition).encode()),
        ("source-offset", str(offset).encode()),
    ]


class Processor:
    """Runs the stream until stop() is called or an unrecoverable error happens."""

    def __init__(
        self,
        settings: Settings,
        source: Source,
        sink: Sink,
        *,
        clock: Callable[[], float] = time.time,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self._settings = settings
        self._options = settings.mapping_options()
        self._source = source
        self._sink = sink
        self._clock = clock
        # Bundle building is CPU work; a thread keeps the loop (and the group heartbeats) responsive.
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="bundle")
        self._partitions: dict[int, PartitionState] = {}
        self._committed: dict[int, int] = {}
        self._pending: list[_Pending] = []
        self._lock = asyncio.Lock()
        # An output send the broker refused: nothing may be committed after it; the loop exits with it.
        self._fatal: BaseException | None = None
        self._stopping = asyncio.Event()
        self._last_commit = clock()
        self._last_status = clock()
        self.stats: Counter[str] = Counter()
        self.assigned = asyncio.Event()  # set once the first assignment arrived (readiness)

    # ---- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish: stop consuming, publish what is due, commit, return."""
        self._stopping.set()

    async def run(self) -> None:
        """Consume until stopped; then flush and commit within the shutdown budget."""
        await self.start()
        try:
            while not self._stopping.is_set():
                await self.step()
            await asyncio.wait_for(self._shutdown(), self._settings.shutdown_timeout_seconds)
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
        """One round: poll, handle records, close due studies, commit when due."""
        if self._fatal is not None:
            raise self._fatal
        batch = await self._source.poll(
            self._settings.timer_interval_seconds, self._settings.max_poll_records
        )
        async with self._lock:
            await self._handle_batch(batch)
            closed = await self._close_due()
            interval = self._settings.commit_interval_seconds
            if closed or self._clock() - self._last_commit >= interval:
                await self._commit()
            if self._clock() - self._last_status >= _STATUS_INTERVAL_S:
                self._last_status = self._clock()
                log.info("status", extra=self.snapshot())

    async def close(self) -> None:
        """Leave the group and stop the producer (no flushing: see stop())."""
        try:
            await self._source.stop()
        finally:
            await self._sink.stop()
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _shutdown(self) -> None:
        async with self._lock:
            await self._close_due()
            await self._commit()
        log.info("stopped", extra={"stats": dict(self.stats)})

    # ---- rebalance -------------------------------------------------------------------------

    async def _on_assigned(self, partitions: set[int]) -> None:
        async with self._lock:
            for p in partitions:
                if p not in self._partitions:
                    # Fresh state; the consumer resumes at the committed offset, so replay rebuilds it.
                    self._partitions[p] = PartitionState(
                        partition=p,
                        timeout_ms=int(self._settings.study_timeout_seconds * 1000),
                        reopen_window_ms=int(self._settings.reopen_window_seconds * 1000),
                    )
            log.info("partitions assigned", extra={"partitions": sorted(partitions)})
            self.assigned.set()

    async def _on_revoked(self, partitions: set[int]) -> None:
        async with self._lock:
            await self._commit(only=partitions)
            for p in partitions:
                self._partitions.pop(p, None)
                self._committed.pop(p, None)
            log.info("partitions revoked", extra={"partitions": sorted(partitions)})

    # ---- records ---------------------------------------------------------------------------

    async def _handle_batch(self, batch: dict[int, list[InputRecord]]) -> None:
        for partition, records in batch.items():
            state = self._partitions.get(partition)
            if state is None:
                continue  # revoked while the batch was in flight; the new owner reads it again
            for record in records:
                await self._handle_record(state, record)

    async def _handle_record(self, state: PartitionState, record: InputRecord) -> None:
        self.stats["records"] += 1
        try:
            message = decode(record.key, record.value)
            if isinstance(message, Instance):
                result = state.add_instance(message, record.offset, record.timestamp_ms)
            else:
                result = state.add_marker(message, record.offset, record.timestamp_ms)
        except InvalidMessageError as exc:
            state.skip(record.offset, record.timestamp_ms)
            await self._dead_letter_record(record, exc)
            return
        if result.reopened:
            self.stats["reopened_studies"] += 1
            log.info(
                "late instance reopened study",
                extra={
                    "study_uid": result.study_uid,
                    "partition": record.partition,
                    "offset": record.offset,
                },
            )
        elif result.duplicate:
            self.stats["duplicates"] += 1

    async def _dead_letter_record(self, record: InputRecord, exc: InvalidMessageError) -> None:
        error_type = type(exc).__name__
        self.stats["dead_letters"] += 1
        log.warning(
            "record sent to dead-letter topic",
            extra={
                "error_type": error_type,
                "reason": str(exc),
                "partition": record.partition,
                "offset": record.offset,
            },
        )
        headers = dead_letter_headers(
            error_type, str(exc), self._source.topic, record.partition, record.offset
        )
        future = await self._sink.send(self._settings.dlq_topic, record.key, record.value, headers)
        self._pending.append(_Pending(future, "dead-letter", record.partition, None, record.offset))

    # ---- closing and publishing --------------------------------------------------------------

    def _now_ms(self, partition: int) -> int:
        """Wall clock once the partition is caught up; its stream time while replaying a backlog.

        While behind, the next records may still belong to an open study, so only the record
        timestamps read so far may move its deadline (no mass closing after an outage).
        """
        if self._source.caught_up(partition):
            return int(self._clock() * 1000)
        return self._partitions[partition].stream_time_ms

    async def _close_due(self) -> int:
        closed = 0
        for partition, state in list(self._partitions.items()):
            now = self._now_ms(partition)
            for study, reason in list(state.due(now)):
                if not study.instances:
                    log.warning(
                        "end-of-study marker without instances timed out",
                        extra={"study_uid": study.uid, "partition": partition},
                    )
                    state.drop_empty(study)
                    continue
                await self._publish(partition, study, reason)
                state.close(study, now)
                closed += 1
            for uid in state.expire(now):
                log.debug(
                    "closed study forgotten", extra={"study_uid": uid, "partition": partition}
                )
        return closed

    async def _publish(self, partition: int, study: Study, reason: CloseReason) -> None:
        loop = asyncio.get_running_loop()
        slim = tuple(study.instances.values())
        try:
            result, payload = await loop.run_in_executor(
                self._executor, build_study, slim, self._options
            )
        except MappingError as exc:
            await self._dead_letter_study(partition, study, exc)
            return
        except Exception as exc:
            log.exception(
                "bundle build failed", extra={"study_uid": study.uid, "partition": partition}
            )
            await self._dead_letter_study(partition, study, exc)
            return
        headers = [
            ("content-type", BUNDLE_CONTENT_TYPE),
            ("close-reason", reason.value.encode()),
        ]
        try:
            future = await self._sink.send(
                self._settings.output_topic, study.uid.encode(), payload, headers
            )
        except Exception as exc:
            if not _is_permanent_send_error(exc):
                raise
            await self._dead_letter_study(partition, study, exc)
            return
        self._pending.append(_Pending(future, "bundle", partition, study.uid, study.first_offset))
        self.stats[f"studies_closed_{reason.value}"] += 1
        log.info(
            "study published",
            extra={
                "study_uid": study.uid,
                "partition": partition,
                "reason": reason.value,
                "series": result.series_count,
                "instances": result.instance_count,
                "warnings": len(result.warnings),
                "bytes": len(payload),
                "times": study.times_closed + 1,
            },
        )
        for warning in result.warnings:
            log.info("mapping warning", extra={"study_uid": study.uid, "warning": warning})

    async def _dead_letter_study(self, partition: int, study: Study, exc: BaseException) -> None:
        """A study that cannot be published: one DLQ record with its UID and the reason."""
        self.stats["dead_letter_studies"] += 1
        log.error(
            "study sent to dead-letter topic",
            extra={
                "study_uid": study.uid,
                "partition": partition,
                "error_type": type(exc).__name__,
            },
        )
        value = orjson.dumps(
            {
                "study_instance_uid": study.uid,
                "instances": len(study.instances),
                "error": str(exc)[:_MAX_ERROR_MESSAGE],
            }
        )
        headers = dead_letter_headers(
            type(exc).__name__, str(exc), self._source.topic, partition, study.first_offset
        )
        future = await self._sink.send(self._settings.dlq_topic, study.uid.encode(), value, headers)
        self._pending.append(
            _Pending(future, "dead-letter", partition, study.uid, study.first_offset)
        )

    # ---- acks and commits ------------------------------------------------------------------

    async def _drain(self) -> None:
        """Wait for every pending send; a Bundle the broker refuses for good is dead-lettered."""
        while self._pending:
            pending, self._pending = self._pending, []
            results = await asyncio.gather(*(p.future for p in pending), return_exceptions=True)
            for item, outcome in zip(pending, results, strict=True):
                if not isinstance(outcome, BaseException):
                    continue
                if item.what == "bundle" and _is_permanent_send_error(outcome):
                    state = self._partitions.get(item.partition)
                    study = state.studies.get(item.study_uid or "") if state else None
                    if study is not None:
                        await self._dead_letter_study(item.partition, study, outcome)
                        continue
                # Anything else means the broker is not taking our output: stop without committing.
                self._fatal = outcome
                raise outcome

    async def _commit(self, only: set[int] | None = None) -> None:
        if self._fatal is not None:
            raise self._fatal
        await self._drain()
        offsets: dict[int, int] = {}
        for p, state in self._partitions.items():
            if only is not None and p not in only:
                continue
            offset = state.commit_offset()
            if offset is not None and offset != self._committed.get(p):
                offsets[p] = offset
        if offsets and await self._source.commit(offsets):
            self._committed.update(offsets)
            log.debug("offsets committed", extra={"offsets": offsets})
        self._last_commit = self._clock()

    # ---- introspection (tests, health) -------------------------------------------------------

    def open_studies(self) -> dict[int, list[str]]:
        """Open study UIDs per partition."""
        return {
            p: [s.uid for s in st.studies.values() if s.is_open]
            for p, st in self._partitions.items()
        }

    def snapshot(self) -> dict[str, Any]:
        """Counters and per-partition state sizes (for logs and health endpoints)."""
        return {
            "stats": dict(self.stats),
            "partitions": {
                p: {
                    "open": st.open_count,
                    "held": len(st.studies),
                    "committed": self._committed.get(p),
                }
                for p, st in self._partitions.items()
            },
        }


def _is_permanent_send_error(exc: BaseException) -> bool:
    """Errors after which resending the same record cannot succeed (size limits)."""
    return type(exc).__name__ in {"MessageSizeTooLargeError", "RecordTooLargeError"}
