"""What one input record does: decoded and added to its partition's study state, or dead-lettered.

Counted in the metrics and logged by UIDs and offsets (never a value of the record). The loop
(``app.py``) calls ``handle`` for every record of a ready partition, under its lock.
"""

from __future__ import annotations

import logging

from streamer.aggregate import PartitionState
from streamer.config import Settings
from streamer.errors import (
    DeadLetterError,
    InvalidMessageError,
    LateInstanceError,
    RecordFailedError,
)
from streamer.messages import Instance, decode
from streamer.metrics import Metrics
from streamer.outbox import Outbox
from streamer.ports import InputRecord
from streamer.publishing import dead_letter_headers

log = logging.getLogger(__name__)


class RecordIntake:
    """Decodes records into the study state; an unusable one goes to the dead-letter topic."""

    def __init__(self, settings: Settings, outbox: Outbox, topic: str, metrics: Metrics) -> None:
        self._settings = settings
        self._outbox = outbox
        self._topic = topic
        self.metrics = metrics

    async def handle(self, state: PartitionState, record: InputRecord) -> None:
        self.metrics.records_consumed.inc()
        try:
            message = decode(record.key, record.value, max_bytes=self._settings.max_record_bytes)
            if isinstance(message, Instance):
                result = state.add_instance(message, record.offset, record.timestamp_ms)
            else:
                result = state.add_marker(message, record.offset, record.timestamp_ms)
        except InvalidMessageError as exc:
            if isinstance(exc, LateInstanceError):
                self.metrics.late_instances.inc()
            state.skip(record.offset, record.timestamp_ms)
            await self._dead_letter(record, exc)
            return
        if isinstance(message, Instance) and not result.duplicate:
            self.metrics.instances_accepted.inc()
        if result.reopened:
            self.metrics.late_instances.inc()
            self.metrics.reopened_studies.inc()
            log.info("late instance reopened study", extra=_where(result.study_uid, record))
        elif result.duplicate:
            self.metrics.duplicate_records.inc()
        if result.changed_tags:
            # Same SOPInstanceUID, other content: the later one replaced the held one.
            self.metrics.updated_instances.inc()
            log.warning(
                "instance replaced by a later one with the same SOPInstanceUID",
                extra={
                    **_where(result.study_uid, record),
                    "changed_tags": list(result.changed_tags),
                },
            )
        if isinstance(message, Instance) and message.warnings:
            self.metrics.instance_warnings.inc(len(message.warnings))
            where = _where(result.study_uid, record)
            for warning in message.warnings:
                log.info("instance warning", extra={**where, "warning": warning})

    async def set_aside(
        self, state: PartitionState, record: InputRecord, attempts: int, error_type: str
    ) -> None:
        """Dead-letter a record whose handling failed on `attempts` starts, without handling it."""
        self.metrics.records_consumed.inc()
        state.skip(record.offset, record.timestamp_ms)
        await self._dead_letter(
            record,
            RecordFailedError(
                f"handling this record raised {error_type} on {attempts} start(s) in a row "
                "(STREAMER_MAX_RECORD_ATTEMPTS): an internal error, logged with its stack at "
                "each start; it is set aside so the stream goes on, and can be re-sent once fixed"
            ),
        )

    async def _dead_letter(self, record: InputRecord, exc: DeadLetterError) -> None:
        error_type = type(exc).__name__
        self.metrics.dead_letters.labels(error_type=error_type, kind="record").inc()
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
            error_type, str(exc), self._topic, record.partition, record.offset
        )
        await self._outbox.send(
            self._settings.dlq_topic,
            record.key,
            record.value,
            headers,
            source_partition=record.partition,
        )


def _where(study_uid: str, record: InputRecord) -> dict[str, object]:
    """The log fields that place a record: made only for a line that is logged (not per record)."""
    return {"study_uid": study_uid, "partition": record.partition, "offset": record.offset}
