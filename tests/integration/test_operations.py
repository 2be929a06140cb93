"""`python -m streamer` on a real broker serves /metrics, /healthz and /readyz on STREAMER_HTTP_PORT."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamer.messages import encode_marker
from tests.dicom_factory import study_uid
from tests.integration.harness import (
    BrokerInfo,
    Producer,
    Spawn,
    Topics,
    bundles_by_study,
    check_bundle,
    create_topics,
    doc,
    read_topic,
    streamer_env,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return int(reply.status), bytes(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def get(port: int, path: str) -> tuple[int, bytes]:
    return await asyncio.to_thread(http_get, port, path)


async def scrape(port: int) -> Samples:
    status, body = await get(port, "/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


async def wait_for(port: int, path: str, status: int, timeout: float = 60.0) -> bytes:
    deadline = time.monotonic() + timeout
    last: tuple[int, bytes] | None = None
    while time.monotonic() < deadline:
        last = await get(port, path)
        if last[0] == status:
            return last[1]
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path} still answers {last} after {timeout}s")


async def test_metrics_and_probes_of_a_running_streamer(
    kafka_broker: BrokerInfo, spawn: Spawn
) -> None:
    topics = Topics.unique("ops")
    await create_topics(kafka_broker.bootstrap, topics, partitions=3)
    port = free_port()
    env = streamer_env(
        kafka_broker.bootstrap, kafka_broker.kind, topics, http_port=port, http_host="127.0.0.1"
    )
    proc = spawn(env)
    proc.wait_for_log("http server listening")
    assert (await get(port, "/healthz"))[0] == 200
    await wait_for(port, "/readyz", 200)  # assigned and restored

    async with Producer(kafka_broker.bootstrap, topics.input) as producer:
        for i in range(3):
            await producer.send_json(study_uid(1), doc(1, i))
        await producer.send(study_uid(1).encode(), encode_marker(study_uid(1), 3))
        await producer.send(study_uid(2).encode(), b"not json")
    records = await read_topic(kafka_broker.bootstrap, topics.output, until=lambda r: len(r) >= 1)
    [bundle] = bundles_by_study(records)[study_uid(1)]
    check_bundle(bundle, 1, 3)

    def lag_partitions(samples: Samples) -> set[str]:
        return {
            dict(labels)["partition"] for (name, labels) in samples if name.endswith("lag_records")
        }

    deadline = time.monotonic() + 30
    samples = await scrape(port)
    # A partition's lag is known once a fetch response for it arrived: the empty one may come last.
    while samples.get(("streamer_dead_letters_total", _dlq_labels())) != 1 or lag_partitions(
        samples
    ) != {"0", "1", "2"}:
        assert time.monotonic() < deadline, samples
        await asyncio.sleep(0.2)
        samples = await scrape(port)
    assert samples[("streamer_records_consumed_total", ())] == 5
    assert samples[("streamer_instances_accepted_total", ())] == 3
    assert samples[("streamer_studies_closed_total", (("reason", "count"),))] == 1
    assert samples[("streamer_bundles_published_total", ())] == 1
    assert samples[("streamer_bundle_bytes_count", ())] == 1
    assert samples[("streamer_bundle_bytes_sum", ())] == len(records[0].value or b"")
    assert samples[("streamer_marker_to_publish_seconds_count", ())] == 1
    assert samples[("streamer_rebalances_total", ())] >= 1
    assert samples[("streamer_restore_seconds_count", ())] == 3
    lags = {labels: v for (name, labels), v in samples.items() if name.endswith("lag_records")}
    assert set(lags) == {(("partition", str(p)),) for p in range(3)}
    assert sum(lags.values()) == 0  # everything read
    assert samples[("streamer_oldest_open_study_age_seconds", ())] == 0

    assert (await get(port, "/readyz"))[0] == 200
    assert (await get(port, "/healthz"))[0] == 200
    code, _ = proc.terminate()
    assert code == 0


def _dlq_labels() -> tuple[tuple[str, str], ...]:
    return (("error_type", "InvalidMessageError"), ("kind", "record"))


async def test_sigterm_does_not_wait_for_a_waiting_poll(
    kafka_broker: BrokerInfo, spawn: Spawn
) -> None:
    """The consumer's poll may wait up to the timer interval (here its maximum, 60 s) for records;
    a SIGTERM wakes it, so the process publishes, commits and exits without waiting for it."""
    topics = Topics.unique("ops-stop")
    await create_topics(kafka_broker.bootstrap, topics, partitions=3)
    env = streamer_env(kafka_broker.bootstrap, kafka_broker.kind, topics, timer_interval_seconds=60)
    proc = spawn(env)
    proc.wait_for_log("partition ready")
    async with Producer(kafka_broker.bootstrap, topics.input) as producer:
        await producer.send_json(study_uid(1), doc(1, 0))
        await producer.send(study_uid(1).encode(), encode_marker(study_uid(1), 1))
    records = await read_topic(kafka_broker.bootstrap, topics.output, until=lambda r: len(r) >= 1)
    check_bundle(bundles_by_study(records)[study_uid(1)][0], 1, 1)
    await asyncio.sleep(1.0)  # the next poll is waiting now: nothing more to read
    code, _ = proc.terminate(timeout=30)  # raises if the exit waited for the poll's minute
    assert code == 0
    assert '"msg":"stopped"' in proc.log()
