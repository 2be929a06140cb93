"""The sink's loop against in-memory Kafka and a scripted FHIR server: what is posted, retried,
dead-lettered, and which offsets are committed when."""

from __future__ import annotations

import asyncio
import logging

import pytest

from streamer.ports import InputRecord
from streamer.sink.client import Accepted, PostOutcome, Rejected, Retry
from streamer.sink.loop import CONFLICT_ATTEMPTS, INVALID, REJECTED, FhirSink
from streamer.sink.retry import Backoff
from tests.unit.sink.sink_fakes import (
    TOPIC,
    Clock,
    FakeDeadLetters,
    FakeServer,
    FakeSource,
    bundle,
    record,
)


@pytest.fixture(autouse=True)
def _every_log_line_is_made(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # a bad `extra` key fails only when the record is made


def make(
    batches: list[dict[int, list[InputRecord]]], script: list[PostOutcome] | None = None
) -> tuple[FhirSink, FakeSource, FakeServer, FakeDeadLetters]:
    clock = Clock()
    source = FakeSource(clock, batches)
    server = FakeServer(list(script or []))
    dlq = FakeDeadLetters()
    sink = FhirSink(source, server, dlq, Backoff(0.5, 4.0, random=lambda: 1.0), monotonic=clock)
    return sink, source, server, dlq


async def test_accepted_bundles_are_posted_in_order_and_committed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink, source, server, dlq = make(
        [{0: [record(0, 5, bundle(1)), record(0, 6, bundle(2))], 1: [record(1, 0, bundle(3))]}]
    )
    await sink.step()
    assert server.posted == [bundle(1), bundle(2), bundle(3)]
    assert source.committed == {0: 7, 1: 1}
    assert dlq.sent == []
    snap = sink.metrics.snapshot()
    assert snap["posted"] == 3 and snap["entries_created"] == 6 and "retried" not in snap
    assert sink.ready
    posted = [r for r in caplog.records if r.getMessage() == "bundle posted"]
    assert [getattr(r, "entries_created", None) for r in posted] == [2, 2, 2]


async def test_rejected_bundle_goes_to_the_dlq_with_the_outcome_and_is_committed() -> None:
    outcome = (
        b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing"}]}'
    )
    sink, source, server, dlq = make(
        [{0: [record(0, 3, bundle(1), key=b"9.8.7"), record(0, 4, bundle(2))]}],
        [Rejected(400, "400 Bad Request: HAPI-1094: not found", outcome, ("processing",))],
    )
    await sink.step()
    [(key, value, headers)] = dlq.sent
    assert key == b"9.8.7" and value == bundle(1)
    assert headers["error-type"] == REJECTED.encode()
    assert headers["error-message"] == b"400 Bad Request: HAPI-1094: not found"
    assert headers["http-status"] == b"400"
    assert headers["operation-outcome"] == outcome
    assert headers["source-topic"] == TOPIC.encode()
    assert (headers["source-partition"], headers["source-offset"]) == (b"0", b"3")
    assert server.posted == [bundle(1), bundle(2)]  # the stream goes on
    assert source.committed == {0: 5}
    assert sink.metrics.snapshot()["rejected"] == 1


async def test_transient_failures_are_retried_with_backoff_and_commit_waits() -> None:
    script: list[PostOutcome] = [
        Retry("connection", "ConnectError"),
        Retry("server_error", "HTTP 503", 503),
        Retry("throttled", "HTTP 429", 429, retry_after=10.0),
    ]
    sink, source, server, _ = make(
        [{0: [record(0, 0, bundle(1)), record(0, 1, bundle(2))]}], script
    )
    readiness: list[bool] = []
    committed_while_waiting: list[int | None] = []

    def waiting() -> None:
        readiness.append(sink.ready)
        committed_while_waiting.append(source.committed.get(0))

    source.on_idle = waiting
    sink.assigned.set()
    await sink.step()
    assert server.posted == [bundle(1)] * 4 + [bundle(2)]
    # Backoff 0.5, 1.0, then the server's Retry-After of 10 s (waited in slices of at most 1 s).
    assert sum(source.idled) == pytest.approx(0.5 + 1.0 + 10.0)
    assert max(source.idled) <= 1.0
    assert not any(readiness)  # not ready while the server fails
    assert sink.ready
    # Nothing of partition 0 was committed while its first record was being retried.
    assert set(committed_while_waiting) == {None}
    assert source.committed == {0: 2}
    retried = {
        s.labels["reason"]: s.value
        for s in next(iter(sink.metrics.post_retries.collect())).samples
        if s.name.endswith("_total")
    }
    assert retried["connection"] == retried["server_error"] == retried["throttled"] == 1


async def test_a_lasting_version_conflict_is_dead_lettered() -> None:
    script: list[PostOutcome] = [Retry("conflict", "HTTP 409", 409)] * CONFLICT_ATTEMPTS
    sink, source, server, dlq = make([{1: [record(1, 0, bundle(1))]}], script)
    await sink.step()
    assert len(server.posted) == CONFLICT_ATTEMPTS
    [(_, _, headers)] = dlq.sent
    assert headers["error-type"] == REJECTED.encode() and headers["http-status"] == b"409"
    assert source.committed == {1: 1}


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"not json", b"not JSON"),
        (b'{"resourceType": "Patient"}', b"not a FHIR Bundle"),
        (b'{"resourceType": "Bundle", "type": "batch"}', b"'batch', not 'transaction'"),
    ],
)
async def test_a_record_that_is_no_transaction_bundle_is_dead_lettered_unposted(
    value: bytes, why: bytes
) -> None:
    sink, source, server, dlq = make([{0: [record(0, 0, value)]}])
    await sink.step()
    assert server.posted == []
    [(_, sent, headers)] = dlq.sent
    assert sent == value and headers["error-type"] == INVALID.encode()
    assert why in headers["error-message"]
    assert "http-status" not in headers
    assert source.committed == {0: 1}


async def test_tombstones_are_skipped_and_committed() -> None:
    sink, source, server, dlq = make([{0: [record(0, 0, None)]}])
    await sink.step()
    assert server.posted == [] and dlq.sent == []
    assert source.committed == {0: 1}
    assert sink.metrics.snapshot()["tombstones"] == 1


async def test_stop_while_retrying_leaves_the_record_uncommitted() -> None:
    sink, source, server, _ = make(
        [{0: [record(0, 0, bundle(1)), record(0, 1, bundle(2))]}],
        [Accepted(200), Retry("connection", "ConnectError")],
    )
    source.on_idle = sink.stop
    await sink.run()
    assert server.posted == [bundle(1), bundle(2)]
    assert source.committed == {0: 1}  # the first is done, the second is read again later


async def test_revoked_while_retrying_gives_the_partition_up() -> None:
    sink, source, server, _ = make(
        [{0: [record(0, 0, bundle(1)), record(0, 1, bundle(2))]}],
        [Retry("server_error", "HTTP 500", 500)],
    )

    def revoke() -> None:
        source.partitions.discard(0)

    source.on_idle = revoke
    await sink.step()
    assert server.posted == [bundle(1)]
    assert source.committed == {}


async def test_on_revoked_commits_what_is_done() -> None:
    sink, source, _, _ = make([{0: [record(0, 0, bundle(1))]}, {}])
    await sink.step()
    sink._done[0] = 9  # done since the last commit
    await sink.on_revoked({0})
    assert source.commits[-1] == {0: 9}
    assert 0 not in sink._done


async def test_a_dead_letter_too_large_for_the_dlq_is_sent_without_its_value() -> None:
    outcome = b'{"resourceType":"OperationOutcome"}'
    sink, _, _, dlq = make([{0: [record(0, 0, bundle(1))]}], [Rejected(422, "422", outcome)])
    dlq.too_large_once = True
    await sink.step()
    [(key, value, headers)] = dlq.sent
    assert key == b"1.2.3" and value is None and "value-dropped" in headers


class _WaitingSource(FakeSource):
    """Waits out its poll timeout when it has no batch left, like a consumer, unless woken."""

    waiting: asyncio.Event | None = None
    woken: asyncio.Event | None = None
    polls_woken: int = 0

    async def poll(self, timeout_s: float, max_records: int) -> dict[int, list[InputRecord]]:
        if self.batches:
            return self.batches.pop(0)
        assert self.waiting is not None and self.woken is not None
        self.waiting.set()
        try:
            await asyncio.wait_for(self.woken.wait(), timeout_s)
            self.polls_woken += 1
        except TimeoutError:
            pass
        return {}

    def wake(self) -> None:
        super().wake()
        assert self.woken is not None
        self.woken.set()


async def test_stop_wakes_a_waiting_poll() -> None:
    clock = Clock()
    source = _WaitingSource(clock, [{0: [record(0, 5, bundle(1))]}])
    source.waiting, source.woken = asyncio.Event(), asyncio.Event()
    server = FakeServer([])
    sink = FhirSink(source, server, FakeDeadLetters(), Backoff(0.5, 4.0), monotonic=clock)
    run = asyncio.ensure_future(sink.run())
    await asyncio.wait_for(source.waiting.wait(), 30)  # the record is posted; the poll now waits
    sink.stop()
    await asyncio.wait_for(run, 30)
    assert source.wakes == 1 and source.polls_woken == 1  # the stop ended the poll's wait
    assert server.posted == [bundle(1)]
    assert source.committed == {0: 6}
