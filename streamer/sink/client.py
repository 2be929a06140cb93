"""The FHIR server's HTTP side: POST one transaction Bundle, and sort the answer into three kinds.

* ``Accepted`` (2xx): the server stored the transaction; what each entry became (created,
  updated, unchanged) is read from the transaction-response, for the metrics.
* ``Rejected``: the server refused *this Bundle* (a 4xx with an OperationOutcome, or 413): it
  would refuse it again, so it goes to the dead-letter topic with the OperationOutcome.
* ``Retry``: nothing the Bundle can help: no connection, a timeout, 408/429/5xx, a version
  conflict (409/412, usually two writers at once), refused credentials (401/403/407), or an
  answer that is not FHIR at all (a proxy's 404 page, a redirect) — the same POST is tried again
  later, so no Bundle is lost while the server or the configuration is fixed.
"""

from __future__ import annotations

import ssl
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from streamer.sink.retry import parse_retry_after

FHIR_JSON = "application/fhir+json"
# Dead-letter headers and log fields stay small.
MESSAGE_LIMIT = 1000
OUTCOME_LIMIT = 64 * 1024

_RETRY_STATUS = {
    408: "timeout",
    409: "conflict",
    412: "conflict",
    425: "too_early",
    429: "throttled",
}
_AUTH_STATUS = frozenset({401, 403, 407})


@dataclass(frozen=True, slots=True)
class Accepted:
    status: int
    entries: Counter[str] = field(default_factory=Counter)  # created | updated | unchanged


@dataclass(frozen=True, slots=True)
class Rejected:
    status: int
    message: str  # "<status> <reason>: <issue diagnostics>", truncated
    outcome: bytes | None  # the OperationOutcome as the server sent it (JSON), truncated
    issue_codes: tuple[str, ...] = ()  # OperationOutcome.issue.code, for logs (no values in them)


@dataclass(frozen=True, slots=True)
class Retry:
    reason: str  # connection | timeout | throttled | server_error | conflict | auth | unexpected
    detail: str  # for the log line: status or exception class, never the Bundle's content
    status: int | None = None
    retry_after: float | None = None


PostOutcome = Accepted | Rejected | Retry


class FhirClient:
    """An ``httpx.AsyncClient`` for one FHIR base URL, with bearer or basic auth."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        timeout_s: float = 30.0,
        user_agent: str = "streamer-sink",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": FHIR_JSON, "User-Agent": user_agent}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        auth = httpx.BasicAuth(username, password or "") if username is not None else None
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            verify = ssl.create_default_context(cafile=ca_file)
        self._client = httpx.AsyncClient(
            headers=headers,
            auth=auth,
            verify=verify,
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            transport=transport,
        )

    async def post_transaction(self, body: bytes) -> PostOutcome:
        """POST the Bundle to the base URL; never raises for HTTP or network trouble."""
        try:
            response = await self._client.post(
                self.base_url, content=body, headers={"Content-Type": FHIR_JSON}
            )
        except httpx.TimeoutException as exc:
            return Retry("timeout", type(exc).__name__)
        except httpx.TransportError as exc:
            return Retry("connection", f"{type(exc).__name__}: {exc}"[:MESSAGE_LIMIT])
        except httpx.HTTPError as exc:
            # Anything else httpx raises (an answer whose body does not match its
            # Content-Encoding, ...) is the server's or the line's, not the Bundle's: retried.
            return Retry("unexpected", type(exc).__name__)
        return classify(response.status_code, response.headers, response.content)

    async def metadata_ok(self) -> bool:
        """Whether ``GET <base>/metadata`` answers 2xx (a start-up probe; failures just say no)."""
        try:
            response = await self._client.get(f"{self.base_url}/metadata")
        except httpx.HTTPError:
            return False
        return response.is_success

    async def aclose(self) -> None:
        await self._client.aclose()


def classify(status: int, headers: httpx.Headers, content: bytes) -> PostOutcome:
    """Sort one answer to a transaction POST (see the module doc)."""
    if 200 <= status < 300:
        return Accepted(status, entry_outcomes(content))
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if status >= 500:
        return Retry("server_error", f"HTTP {status}", status, retry_after)
    if status in _RETRY_STATUS:
        return Retry(_RETRY_STATUS[status], f"HTTP {status}", status, retry_after)
    if status in _AUTH_STATUS:
        return Retry("auth", f"HTTP {status}: credentials refused", status, retry_after)
    outcome = _operation_outcome(content)
    if 400 <= status < 500 and (outcome is not None or status == 413):
        return Rejected(
            status,
            _message(status, outcome),
            content[:OUTCOME_LIMIT] if outcome is not None else None,
            _issue_codes(outcome),
        )
    # A 3xx, or a 4xx that is not FHIR (a proxy's page): most likely the base URL is wrong.
    return Retry("unexpected", f"HTTP {status} without an OperationOutcome", status, retry_after)


def _json(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def _operation_outcome(content: bytes) -> dict[str, Any] | None:
    doc = _json(content)
    if isinstance(doc, dict) and doc.get("resourceType") == "OperationOutcome":
        return doc
    return None


def _issues(outcome: dict[str, Any] | None) -> list[dict[str, Any]]:
    issues = outcome.get("issue") if outcome is not None else None
    return [i for i in issues if isinstance(i, dict)] if isinstance(issues, list) else []


def _issue_codes(outcome: dict[str, Any] | None) -> tuple[str, ...]:
    return tuple(str(i.get("code", "")) for i in _issues(outcome))


def _message(status: int, outcome: dict[str, Any] | None) -> str:
    """``"400 Bad Request: <diagnostics>; <diagnostics>"``, truncated."""
    reason = httpx.codes.get_reason_phrase(status)
    texts = []
    for issue in _issues(outcome):
        text = issue.get("diagnostics")
        if not isinstance(text, str):
            details = issue.get("details")
            text = details.get("text") if isinstance(details, dict) else None
        if isinstance(text, str) and text:
            texts.append(text)
    head = f"{status} {reason}".strip()
    message = f"{head}: {'; '.join(texts)}" if texts else head
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 1] + "…"


def entry_outcomes(content: bytes) -> Counter[str]:
    """How many entries of a transaction-response were created, updated or left unchanged.

    HAPI answers an update that changes nothing with 200 and SUCCESSFUL_UPDATE_NO_CHANGE (the
    version stays); other servers may not say, and such entries count as updated.
    """
    doc = _json(content)
    counts: Counter[str] = Counter()
    entries = doc.get("entry") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return counts
    for entry in entries:
        response = entry.get("response") if isinstance(entry, dict) else None
        if not isinstance(response, dict):
            continue
        status = str(response.get("status", ""))
        if status.startswith("201"):
            counts["created"] += 1
        elif b"NO_CHANGE" in orjson.dumps(response.get("outcome")):
            counts["unchanged"] += 1
        else:
            counts["updated"] += 1
    return counts
