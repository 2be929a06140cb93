"""The sink's HTTP side: each kind of answer (and of failure) sorted as the loop needs it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from streamer.sink.client import (
    MESSAGE_LIMIT,
    Accepted,
    FhirClient,
    Rejected,
    Retry,
    classify,
    entry_outcomes,
)
from streamer.sink.retry import RETRY_AFTER_LIMIT_S, Backoff, parse_retry_after

BASE = "http://fhir.test/fhir"


def outcome(*diagnostics: str) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "OperationOutcome",
            "issue": [
                {"severity": "error", "code": "processing", "diagnostics": d} for d in diagnostics
            ],
        }
    )


TRANSACTION_RESPONSE = orjson.dumps(
    {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [
            {"response": {"status": "201 Created"}},
            {"response": {"status": "200 OK"}},
            {
                "response": {
                    "status": "200 OK",
                    "outcome": {
                        "resourceType": "OperationOutcome",
                        "issue": [
                            {"details": {"coding": [{"code": "SUCCESSFUL_UPDATE_NO_CHANGE"}]}}
                        ],
                    },
                }
            },
        ],
    }
)


def test_2xx_is_accepted_with_what_each_entry_became() -> None:
    result = classify(200, httpx.Headers(), TRANSACTION_RESPONSE)
    assert isinstance(result, Accepted)
    assert result.entries == {"created": 1, "updated": 1, "unchanged": 1}
    assert entry_outcomes(b"not json") == {}


def test_4xx_with_an_operation_outcome_is_rejected_with_its_diagnostics() -> None:
    body = outcome("HAPI-1094: Resource Patient/x not found", "second")
    result = classify(400, httpx.Headers(), body)
    assert isinstance(result, Rejected)
    assert result.message == "400 Bad Request: HAPI-1094: Resource Patient/x not found; second"
    assert result.outcome == body and result.issue_codes == ("processing", "processing")
    long = classify(422, httpx.Headers(), outcome("x" * 5000))
    assert isinstance(long, Rejected) and len(long.message) == MESSAGE_LIMIT


def test_413_is_rejected_even_without_an_operation_outcome() -> None:
    result = classify(413, httpx.Headers(), b"<html>too big</html>")
    assert isinstance(result, Rejected) and result.outcome is None


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (500, outcome("boom"), "server_error"),
        (503, b"", "server_error"),
        (429, b"", "throttled"),
        (408, b"", "timeout"),
        (409, outcome("version conflict"), "conflict"),
        (412, b"", "conflict"),
        (401, outcome("no"), "auth"),
        (403, b"", "auth"),
        (404, b"<html>not found</html>", "unexpected"),
        (302, b"", "unexpected"),
    ],
)
def test_what_the_bundle_cannot_help_is_retried(status: int, body: bytes, reason: str) -> None:
    result = classify(status, httpx.Headers({"Retry-After": "7"}), body)
    assert isinstance(result, Retry)
    assert (result.reason, result.status, result.retry_after) == (reason, status, 7.0)


async def test_post_sends_fhir_json_with_bearer_token_and_sorts_network_errors() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=TRANSACTION_RESPONSE)

    client = FhirClient(BASE + "/", token="s3cret", transport=httpx.MockTransport(handler))
    result = await client.post_transaction(b'{"resourceType":"Bundle"}')
    await client.aclose()
    assert isinstance(result, Accepted)
    [request] = seen
    assert request.method == "POST" and str(request.url) == BASE
    assert request.headers["Content-Type"] == "application/fhir+json"
    assert request.headers["Accept"] == "application/fhir+json"
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.content == b'{"resourceType":"Bundle"}'


async def test_basic_auth() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"{}")

    client = FhirClient(BASE, username="u", password="p", transport=httpx.MockTransport(handler))
    await client.post_transaction(b"{}")
    await client.aclose()
    assert seen[0].headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (httpx.ConnectError("refused"), "connection"),
        (httpx.RemoteProtocolError("reset"), "connection"),
        (httpx.ReadTimeout("slow"), "timeout"),
        (httpx.ConnectTimeout("slow"), "timeout"),
    ],
)
async def test_network_trouble_is_retried(error: Exception, reason: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    client = FhirClient(BASE, transport=httpx.MockTransport(handler))
    result = await client.post_transaction(b"{}")
    assert await client.metadata_ok() is False
    await client.aclose()
    assert isinstance(result, Retry) and result.reason == reason


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    top = Backoff(0.5, 4.0, random=lambda: 1.0)
    assert [top.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    low = Backoff(0.5, 4.0, random=lambda: 0.0)
    assert [low.delay(n) for n in (1, 2, 10)] == [0.25, 0.5, 2.0]
    assert top.delay(10_000) == 4.0  # no overflow


def test_retry_after_is_a_floor_within_a_limit() -> None:
    backoff = Backoff(0.5, 4.0, random=lambda: 1.0)
    assert backoff.delay(1, retry_after=30.0) == 30.0
    assert backoff.delay(3, retry_after=0.1) == 2.0
    assert backoff.delay(1, retry_after=10**9) == RETRY_AFTER_LIMIT_S


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_an_answer_that_cannot_be_decoded_is_retried_not_raised() -> None:
    # A body that is not what its Content-Encoding says: httpx raises DecodingError, which is
    # neither a timeout nor a transport error; the sink must not stop on it.
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=b"not gzip")

    client = FhirClient(BASE, transport=httpx.MockTransport(handler))
    result = await client.post_transaction(b"{}")
    await client.aclose()
    assert isinstance(result, Retry)
    assert (result.reason, result.detail) == ("unexpected", "DecodingError")
