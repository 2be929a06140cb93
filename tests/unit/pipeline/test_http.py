"""/metrics, /healthz and /readyz over a real socket, against a processor on in-memory fakes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from streamer.app import Processor
from streamer.config import load_settings
from streamer.http import MIN_STALL_SECONDS, StatusServer, stall_limit
from tests.fakes import FakeChangelog, FakeClock, FakeSink, FakeSource
from tests.unit.pipeline.test_app import TIMEOUT_S, Disk, put_study

LIMIT = 30.0


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        doc = orjson.loads(self.body)
        assert isinstance(doc, dict)
        return doc


async def request(port: int, raw: bytes) -> Reply:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        writer.write_eof()  # nothing more comes: a cut-off request is answered at once
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    assert status_line.startswith("HTTP/1.1 ")
    return Reply(int(status_line.split()[1]), headers, body)


async def get(port: int, path: str, method: str = "GET") -> Reply:
    return await request(port, f"{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())


@dataclass
class GatedChangelog(FakeChangelog):
    """A changelog whose reads wait until the test opens the gate (a restore in progress)."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)

    async def bounds(self, partition: int) -> tuple[int, int]:
        await self.gate.wait()
        return await super().bounds(partition)


@dataclass
class Rig:
    proc: Processor
    source: FakeSource
    clock: FakeClock
    changelog: GatedChangelog
    server: StatusServer


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    clock = FakeClock()
    source = FakeSource(partitions=(0, 1))
    put_study(source, clock, 1, 2, marker=True)
    settings = load_settings(study_timeout_seconds=TIMEOUT_S, dicom_timezone="Europe/Berlin")
    sink = FakeSink()
    changelog = GatedChangelog(sink, settings.changelog)
    proc = Processor(
        settings,
        source,
        sink,
        changelog,
        Disk(tmp_path).opener(),
        clock=clock,
        monotonic=clock,  # the test moves time; nothing sleeps
    )
    server = StatusServer(proc, "127.0.0.1", 0, stall_limit=LIMIT, monotonic=clock)
    await server.start()
    try:
        yield Rig(proc, source, clock, changelog, server)
    finally:
        await server.stop()
        changelog.gate.set()
        await proc.close()


async def test_metrics_are_scraped_over_http(rig: Rig) -> None:
    rig.changelog.gate.set()
    await rig.proc.start()
    await rig.proc.wait_ready()
    await rig.proc.step()
    reply = await get(rig.server.port, "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"] == CONTENT_TYPE_LATEST
    text = reply.body.decode()
    for info in rig.proc.metrics.info.values():
        assert f"# TYPE {info.name} {info.type}" in text
    assert "streamer_records_consumed_total 3.0" in text
    assert 'streamer_studies_closed_total{reason="marker"} 1.0' in text
    assert 'streamer_consumer_lag_records{partition="0"} 0.0' in text
    assert "streamer_bundle_bytes_count 1.0" in text


async def test_healthz_turns_red_when_the_loop_stops_stepping(rig: Rig) -> None:
    rig.changelog.gate.set()
    await rig.proc.start()
    await rig.proc.step()
    reply = await get(rig.server.port, "/healthz")
    assert (reply.status, reply.json()["status"]) == (200, "ok")
    assert reply.headers["content-type"] == "application/json"
    rig.clock.advance(LIMIT - 1)  # a slow round: still within the limit
    assert (await get(rig.server.port, "/healthz")).status == 200
    rig.clock.advance(2)  # no step() for longer than the limit: stuck
    reply = await get(rig.server.port, "/healthz")
    assert reply.status == 503
    doc = reply.json()
    assert doc["status"] == "stalled"
    assert doc["seconds_since_progress"] == pytest.approx(LIMIT + 1)
    assert doc["limit_seconds"] == LIMIT
    await rig.proc.step()  # the loop moves again
    assert (await get(rig.server.port, "/healthz")).status == 200


async def test_readyz_is_red_until_assigned_and_while_a_partition_restores(rig: Rig) -> None:
    reply = await get(rig.server.port, "/readyz")
    assert reply.status == 503
    assert reply.json() == {"status": "not ready", "assigned": False, "restoring": []}
    await rig.proc.start()  # assigned; the restores wait on the changelog
    await asyncio.sleep(0)
    reply = await get(rig.server.port, "/readyz")
    assert reply.status == 503
    assert reply.json() == {"status": "not ready", "assigned": True, "restoring": [0, 1]}
    await rig.proc.step()  # the loop keeps stepping while partitions restore: healthy
    assert (await get(rig.server.port, "/healthz")).status == 200
    rig.changelog.gate.set()
    await rig.proc.wait_ready()
    reply = await get(rig.server.port, "/readyz")
    assert reply.status == 200
    assert reply.json() == {"status": "ready", "assigned": True, "restoring": []}
    # A rebalance brings a partition whose restore waits again: not ready meanwhile.
    rig.changelog.gate.clear()
    await rig.source.assign({0, 1})
    await asyncio.sleep(0)
    reply = await get(rig.server.port, "/readyz")
    assert (reply.status, reply.json()["restoring"]) == (503, [0, 1])
    rig.changelog.gate.set()
    await rig.proc.wait_ready()
    assert (await get(rig.server.port, "/readyz")).status == 200


async def test_other_paths_methods_and_bad_requests(rig: Rig) -> None:
    port = rig.server.port
    assert (await get(port, "/nope")).status == 404
    reply = await get(port, "/metrics", method="POST")
    assert (reply.status, reply.headers["allow"]) == (405, "GET, HEAD")
    head = await get(port, "/readyz", method="HEAD")
    assert head.status == 503 and head.body == b""
    assert int(head.headers["content-length"]) > 0
    assert (await get(port, "/metrics?name[]=x")).status == 200
    assert (await request(port, b"garbage\r\n\r\n")).status == 400
    assert (await request(port, b"GET /metrics")).status == 400  # closed before the end


def test_stall_limit_has_a_floor_and_follows_the_timer() -> None:
    assert stall_limit(1.0) == MIN_STALL_SECONDS == 30.0
    assert stall_limit(20.0) == 80.0
