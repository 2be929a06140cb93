"""The sink answers /metrics, /healthz and /readyz through the processor's HTTP endpoints."""

from __future__ import annotations

from typing import cast

import orjson

from streamer.http.probes import Observed, Routes
from streamer.sink.client import Retry
from streamer.sink.loop import FhirSink
from streamer.sink.retry import Backoff
from tests.unit.sink.sink_fakes import (
    Clock,
    FakeDeadLetters,
    FakeServer,
    FakeSource,
    bundle,
    record,
)


async def test_metrics_health_and_readiness() -> None:
    clock = Clock()
    source = FakeSource(clock, [{0: [record(0, 0, bundle(1))]}])
    server = FakeServer([Retry("server_error", "HTTP 503", 503)])
    sink = FhirSink(
        source, server, FakeDeadLetters(), Backoff(0.5, 1.0, random=lambda: 1.0), monotonic=clock
    )
    routes = Routes(cast(Observed, sink), 30.0, clock)
    assert routes.answer("GET", "/readyz").status == 503  # nothing assigned yet
    seen: list[int] = []
    source.on_idle = lambda: seen.append(routes.answer("GET", "/readyz").status)
    await sink.step()
    assert seen == [503]  # not ready while the server fails
    assert routes.answer("GET", "/readyz").status == 200
    health = routes.answer("GET", "/healthz")
    assert health.status == 200 and orjson.loads(health.body)["status"] == "ok"
    clock.now += 31
    assert routes.answer("GET", "/healthz").status == 503  # no progress for too long
    text = routes.answer("GET", "/metrics").body.decode()
    assert "streamer_sink_bundles_posted_total 1.0" in text
    assert 'streamer_sink_post_retries_total{reason="server_error"} 1.0' in text
    assert "streamer_sink_post_seconds_bucket" in text
