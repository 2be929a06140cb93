"""What ``/metrics``, ``/healthz`` and ``/readyz`` answer, apart from any socket (tested directly)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from streamer.metrics import Metrics

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"

# /healthz turns red when no step() of the loop completed for this long. A step polls for up to
# STREAMER_TIMER_INTERVAL_SECONDS, then handles the batch, closes due studies and checkpoints, so
# three missed rounds plus the poll of a fourth mean a stuck loop. Never less than 30 s: a slow
# checkpoint (acks during a short broker hiccup) or a large study's build must not get a healthy
# process restarted.
MIN_STALL_SECONDS = 30.0


def stall_limit(timer_interval_seconds: float) -> float:
    """Seconds without a completed step after which /healthz answers 503."""
    return max(MIN_STALL_SECONDS, 3 * timer_interval_seconds + timer_interval_seconds)


class Observed(Protocol):
    """What the endpoints read of the processor (``streamer.app.Processor``)."""

    metrics: Metrics
    last_progress: float  # monotonic time of the last completed step
    assigned: asyncio.Event

    @property
    def ready(self) -> bool: ...

    def restoring_partitions(self) -> list[int]: ...


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = field(default=())


def _json(status: int, doc: object) -> Response:
    return Response(status, JSON, orjson.dumps(doc) + b"\n")


def metrics(observed: Observed) -> Response:
    return Response(200, CONTENT_TYPE_LATEST, observed.metrics.exposition())


def health(observed: Observed, now: float, limit: float) -> Response:
    """200 while the loop completed a step within ``limit`` seconds; 503 (stalled) otherwise."""
    age = max(0.0, now - observed.last_progress)
    ok = age <= limit
    return _json(
        200 if ok else 503,
        {
            "status": "ok" if ok else "stalled",
            "seconds_since_progress": round(age, 3),
            "limit_seconds": limit,
        },
    )


def readiness(observed: Observed) -> Response:
    """200 once partitions are assigned and every one is restored; 503 (with which) before."""
    ready = observed.ready
    return _json(
        200 if ready else 503,
        {
            "status": "ready" if ready else "not ready",
            "assigned": observed.assigned.is_set(),
            "restoring": observed.restoring_partitions(),
        },
    )


@dataclass(frozen=True, slots=True)
class Routes:
    """Path -> answer; GET and HEAD only."""

    observed: Observed
    limit: float
    monotonic: Callable[[], float]

    def answer(self, method: str, path: str) -> Response:
        if method not in {"GET", "HEAD"}:
            return Response(405, TEXT, b"method not allowed\n", (("Allow", "GET, HEAD"),))
        if path == "/metrics":
            return metrics(self.observed)
        if path == "/healthz":
            return health(self.observed, self.monotonic(), self.limit)
        if path == "/readyz":
            return readiness(self.observed)
        return Response(404, TEXT, b"not found: /metrics, /healthz and /readyz are served\n")
