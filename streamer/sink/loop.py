"""The sink's loop: poll Bundles, POST each to the FHIR server, dead-letter what it rejects, commit.

Records of a partition are handled one after the other, in offset order, so a study's later
Bundle always lands after its earlier one. An offset is committed only once its record is done:
the server accepted the Bundle (2xx), or the broker acknowledged its dead letter. A Bundle the
server cannot take *right now* (down, throttling, 5xx, credentials refused) is retried with
backoff for as long as it takes; meanwhile the consumer stays in its group (``idle``) and
``/readyz`` says not ready. On SIGTERM the POST in flight finishes, done records are committed,
and the rest is read again by the next owner (every entry is a PUT with its id: a repeat is
harmless).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from streamer.errors import RecordTooLargeError
from streamer.ports import InputRecord
from streamer.sink.client import Accepted, Rejected, Retry
from streamer.sink.metrics import SinkMetrics
from streamer.sink.ports import BundleSource, DeadLetters, FhirServer
from streamer.sink.retry import Backoff

log = logging.getLogger("streamer.sink")

REJECTED = "FhirRejectedError"  # error-type of a Bundle the FHIR server refused
INVALID = "InvalidBundleError"  # error-type of a record that is not a transaction Bundle
# A version conflict (409/412) that does not go away after this many tries is the Bundle's.
CONFLICT_ATTEMPTS = 5
_POLL_S = 1.0
_MAX_RECORDS = 100
_COMMIT_INTERVAL_S = 1.0
_STATUS_INTERVAL_S = 60.0
# Retries are logged on the first attempt, then every this many, so an outage is not a flood.
_LOG_EVERY = 10


class FhirSink:
    """Reads ``source``, posts to ``server``, dead-letters to ``dead_letters``; ``stop()`` ends it."""

    def __init__(
        self,
        source: BundleSource,
        server: FhirServer,
        dead_letters: DeadLetters,
        backoff: Backoff,
        *,
        metrics: SinkMetrics | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        max_records: int = _MAX_RECORDS,
    ) -> None:
        self._source = source
        self._server = server
        self._dead_letters = dead_letters
        self._backoff = backoff
        self._monotonic = monotonic
        self._max_records = max_records
        self.metrics = metrics or SinkMetrics()
        self._done: dict[int, int] = {}  # partition -> next offset to commit (records done)
        self._committed: dict[int, int] = {}
        self._stopping = asyncio.Event()
        self._last_commit = monotonic()
        self._last_status = monotonic()
        # What /healthz and /readyz read.
        self.last_progress = monotonic()
        self.assigned = asyncio.Event()
        self.server_failing = False

    # ---- what the HTTP endpoints read ---------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Partitions assigned and the FHIR server taking Bundles (not retrying)."""
        return self.assigned.is_set() and not self.server_failing

    def restoring_partitions(self) -> list[int]:
        return []  # the sink keeps no state to restore

    # ---- running ------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        self._source.wake()  # a waiting poll returns now, not after its timeout

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> None:
        """Until ``stop()``; commits what is done before returning."""
        try:
            while not self.stopping:
                await self.step()
        finally:
            await self.commit()
            log.info("sink stopped", extra=self.metrics.snapshot())

    async def step(self) -> None:
        """One poll and the handling of every record it returned."""
        batch = await self._source.poll(_POLL_S, self._max_records)
        self.last_progress = self._monotonic()
        if self._source.assigned():
            self.assigned.set()
        for partition in sorted(batch):
            for record in batch[partition]:
                if self.stopping or partition not in self._source.assigned():
                    break  # stopping, or revoked meanwhile: the next owner reads it again
                if not await self._handle(record):
                    break
                self._done[partition] = record.offset + 1
                if self._monotonic() - self._last_commit >= _COMMIT_INTERVAL_S:
                    await self.commit()
        await self.commit()
        self._status()

    async def commit(self, partitions: set[int] | None = None) -> None:
        """Commit the done records (of ``partitions``, default all) not committed yet."""
        offsets = {
            p: off
            for p, off in self._done.items()
            if (partitions is None or p in partitions) and self._committed.get(p) != off
        }
        self._last_commit = self._monotonic()
        if not offsets:
            return
        if await self._source.commit(offsets):
            self._committed.update(offsets)
            self.metrics.commits.inc()

    async def on_revoked(self, partitions: set[int]) -> None:
        """Rebalance: commit what is done on the partitions leaving, then forget them."""
        await self.commit(partitions)
        for p in partitions:
            self._done.pop(p, None)
            self._committed.pop(p, None)

    # ---- one record ---------------------------------------------------------------------------

    async def _handle(self, record: InputRecord) -> bool:
        """Post (with retries) or dead-letter one record; False when stopped before it was done."""
        self.metrics.records_consumed.inc()
        if record.value is None:
            self.metrics.tombstones.inc()
            return True
        problem = bundle_problem(record.value)
        if problem is not None:
            await self._dead_letter(record, INVALID, problem)
            return True
        attempt = 0
        while True:
            started = self._monotonic()
            outcome = await self._server.post_transaction(record.value)
            self.metrics.post_seconds.observe(max(0.0, self._monotonic() - started))
            self.last_progress = self._monotonic()
            if isinstance(outcome, Accepted):
                self._accepted(record, outcome, attempt)
                return True
            if isinstance(outcome, Rejected):
                self.server_failing = False
                await self._rejected(record, outcome)
                return True
            attempt += 1
            if outcome.reason == "conflict" and attempt >= CONFLICT_ATTEMPTS:
                await self._dead_letter(
                    record, REJECTED, f"{outcome.detail}: version conflict after {attempt} tries",
                    status=outcome.status,
                )  # fmt: skip
                return True
            if not await self._wait_to_retry(record, outcome, attempt):
                return False

    def _accepted(self, record: InputRecord, outcome: Accepted, attempt: int) -> None:
        self.metrics.bundles_posted.inc()
        for kind, n in outcome.entries.items():
            self.metrics.entries.labels(kind).inc(n)
        if self.server_failing:
            log.info(
                "FHIR server takes Bundles again", extra={**_where(record), "attempts": attempt + 1}
            )
            self.server_failing = False
        log.info(
            "bundle posted",
            extra={
                **_where(record),
                "status": outcome.status,
                # "created" is a LogRecord attribute: prefix the entry counts.
                **{f"entries_{kind}": n for kind, n in outcome.entries.items()},
            },
        )

    async def _wait_to_retry(self, record: InputRecord, outcome: Retry, attempt: int) -> bool:
        """Back off before the next try, committing what is done; False if stopped meanwhile."""
        self.metrics.post_retries.labels(outcome.reason).inc()
        self.server_failing = True
        delay = self._backoff.delay(attempt, outcome.retry_after)
        if attempt == 1 or attempt % _LOG_EVERY == 0:
            level = logging.ERROR if outcome.reason in ("auth", "unexpected") else logging.WARNING
            log.log(
                level,
                "FHIR server did not take the Bundle; retrying",
                extra={
                    **_where(record),
                    "reason": outcome.reason,
                    "detail": outcome.detail,
                    "attempt": attempt,
                    "retry_in_s": round(delay, 2),
                },
            )
        await self.commit()
        deadline = self._monotonic() + delay
        while not self.stopping and (left := deadline - self._monotonic()) > 0:
            await self._source.idle(min(left, _POLL_S))
            self.last_progress = self._monotonic()
            if record.partition not in self._source.assigned():
                return False  # revoked while waiting: the next owner takes it from here
        return not self.stopping

    async def _rejected(self, record: InputRecord, outcome: Rejected) -> None:
        log.warning(
            "FHIR server rejected the Bundle; dead-lettered",
            extra={**_where(record), "status": outcome.status, "issues": list(outcome.issue_codes)},
        )
        await self._dead_letter(
            record, REJECTED, outcome.message, status=outcome.status, outcome=outcome.outcome
        )

    async def _dead_letter(
        self,
        record: InputRecord,
        error_type: str,
        message: str,
        *,
        status: int | None = None,
        outcome: bytes | None = None,
    ) -> None:
        """Send the record (key and value unchanged) to the DLQ with why; wait for the ack."""
        headers = [
            ("error-type", error_type.encode()),
            ("error-message", message.encode()),
            ("source-topic", self._source.topic.encode()),
            ("source-partition", str(record.partition).encode()),
            ("source-offset", str(record.offset).encode()),
        ]
        if status is not None:
            headers.append(("http-status", str(status).encode()))
        if outcome is not None:
            headers.append(("operation-outcome", outcome))
        try:
            await self._dead_letters.send(record.key, record.value, headers)
        except RecordTooLargeError:
            # The Bundle fits the Bundles topic but not the DLQ with our headers: keep the why.
            headers.append(("value-dropped", b"larger than the dead-letter topic takes"))
            await self._dead_letters.send(record.key, None, headers)
        self.metrics.bundles_rejected.labels(error_type).inc()

    def _status(self) -> None:
        now = self._monotonic()
        if now - self._last_status >= _STATUS_INTERVAL_S:
            self._last_status = now
            log.info("status", extra=self.metrics.snapshot())


def bundle_problem(value: bytes) -> str | None:
    """Why a record value is not a transaction Bundle the sink can post (None: it is one)."""
    try:
        doc: Any = orjson.loads(value)
    except orjson.JSONDecodeError:
        return "the record value is not JSON"
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        return "the record value is not a FHIR Bundle"
    if doc.get("type") != "transaction":
        return f"the Bundle's type is {str(doc.get('type'))[:40]!r}, not 'transaction'"
    return None


def _where(record: InputRecord) -> dict[str, Any]:
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    return {"study_uid": key, "partition": record.partition, "offset": record.offset}
