"""Closing and publishing a study: build its Bundle (in a worker thread when the study is large),
send it with its headers, or dead-letter the study when it cannot be published (``app.py`` decides
when a study closes)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import orjson

from streamer.aggregate import CloseReason, PartitionState, StudyRecord
from streamer.config import Settings
from streamer.errors import BundleBuildError, MappingError, RecordTooLargeError
from streamer.fhir import BundleResult, MappingOptions, build_study_bundle, bundle_json
from streamer.log import stack_without_message
from streamer.metrics import Metrics
from streamer.outbox import Outbox
from streamer.ports import Headers

# Log records keep the processing loop's logger name, as before the move.
log = logging.getLogger("streamer.app")

BUNDLE_CONTENT_TYPE = b"application/fhir+json"
# Studies of up to this many instances are built on the loop's thread: ≈ 0.1 ms per instance, less
# than the hand-off to the worker thread costs (a thread switch, and while the worker holds the
# GIL every socket call of the loop waits for it: bench/README.md, latency). Larger studies go to
# the worker, so the loop (and the group heartbeats) stays responsive.
INLINE_BUILD_MAX_INSTANCES = 64
_MAX_ERROR_MESSAGE = 1000  # header size stays small; the class name says the rest


def build_study(
    slim_instances: Iterable[bytes], options: MappingOptions
) -> tuple[BundleResult, bytes]:
    """Decode held instances, build and validate the Bundle, serialize it (thread-safe)."""
    # Held instances were slimmed (and so cleaned) when their record was decoded.
    result = build_study_bundle(
        [orjson.loads(raw) for raw in slim_instances], options, cleaned=True
    )
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


class StudyPublisher:
    """Publishes closed studies as Bundles (or dead-letters them) through the processor's outbox."""

    def __init__(
        self,
        settings: Settings,
        outbox: Outbox,
        source_topic: str,
        metrics: Metrics,
        executor: ThreadPoolExecutor,
        options: MappingOptions,
        clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._outbox = outbox
        self._source_topic = source_topic
        self._metrics = metrics
        self._executor = executor
        self._options = options
        self._clock = clock

    async def publish(
        self, partition: int, state: PartitionState, study: StudyRecord, reason: CloseReason
    ) -> None:
        """Build the study's Bundle and send it; a study that cannot be built is dead-lettered."""
        loop = asyncio.get_running_loop()
        slim = tuple(state.instances(study.uid))
        started = time.perf_counter()
        try:
            if len(slim) <= INLINE_BUILD_MAX_INSTANCES:
                result, payload = build_study(slim, self._options)
            else:
                result, payload = await loop.run_in_executor(
                    self._executor, build_study, slim, self._options
                )
        except MappingError as exc:
            await self.dead_letter_study(partition, study, exc)
            return
        except Exception as exc:  # noqa: BLE001 - any other error is a bug met on this study
            log.error(  # not log.exception: the message may quote a value (stack_without_message)
                "bundle build failed",
                extra={
                    "study_uid": study.uid,
                    "partition": partition,
                    "error_type": type(exc).__name__,
                    "stack": stack_without_message(exc),
                },
            )
            error = BundleBuildError(
                f"building the Bundle raised {type(exc).__name__}: an internal error, not the "
                "data's fault; its stack is in the log. Re-send the study once fixed"
            )
            await self.dead_letter_study(partition, study, error)
            return
        self._metrics.bundle_build_seconds.observe(time.perf_counter() - started)
        headers = [
            ("content-type", BUNDLE_CONTENT_TYPE),
            ("close-reason", reason.value.encode()),
        ]

        async def too_large(exc: RecordTooLargeError) -> None:
            await self.dead_letter_study(partition, study, exc)

        ack = await self._outbox.send(
            self._settings.output_topic,
            study.uid.encode(),
            payload,
            headers,
            source_partition=partition,
            on_too_large=too_large,
        )
        if ack is not None:
            # Closed by a marker: latency from the record that completed the study to the ack.
            completed_ms = study.last_activity_ms if reason is CloseReason.MARKER else None
            size = len(payload)
            ack.add_done_callback(lambda f: self._bundle_acked(f, size, completed_ms))
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

    def _bundle_acked(self, ack: asyncio.Future[int], size: int, completed_ms: int | None) -> None:
        if ack.cancelled() or ack.exception() is not None:
            return  # the outbox handles it (dead letter when too large, else the loop stops)
        self._metrics.bundles_published.inc()
        self._metrics.bundle_bytes.observe(size)
        if completed_ms is not None:
            latency = self._clock() - completed_ms / 1000
            self._metrics.marker_to_publish_seconds.observe(max(0.0, latency))

    async def dead_letter_study(
        self, partition: int, study: StudyRecord, exc: BaseException
    ) -> None:
        """A study that cannot be published: one DLQ record with its UID and the reason."""
        self._metrics.dead_letters.labels(error_type=type(exc).__name__, kind="study").inc()
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
                "instances": study.instance_count,
                "error": str(exc)[:_MAX_ERROR_MESSAGE],
            }
        )
        headers = dead_letter_headers(
            type(exc).__name__, str(exc), self._source_topic, partition, study.first_offset
        )
        await self._outbox.send(
            self._settings.dlq_topic,
            study.uid.encode(),
            value,
            headers,
            source_partition=partition,
        )
