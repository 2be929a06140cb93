"""STREAMER_PARTITION_ASSIGNMENT=all on a real broker: every partition without a group join.

The process assigns itself the input topic's partitions and commits as the group's "simple"
consumer; the broker refuses those commits while the group has members, which is what keeps it
from sharing partitions with group processes (at start, and when a member appears later).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from streamer.config import Settings, load_settings
from streamer.errors import ConfigError
from streamer.kafka.consumer import KafkaSource
from streamer.messages import encode_marker
from tests.dicom_factory import study_uid
from tests.integration.harness import (
    BrokerInfo,
    Producer,
    Spawn,
    Topics,
    bundles_by_study,
    check_bundle,
    committed_offsets,
    create_topics,
    doc,
    read_topic,
    streamer_env,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def _send_studies(bootstrap: str, topic: str, studies: range, count: int = 2) -> None:
    async with Producer(bootstrap, topic) as producer:
        for n in studies:
            for i in range(count):
                await producer.send_json(study_uid(n), doc(n, i))
            await producer.send(study_uid(n).encode(), encode_marker(study_uid(n), count))


async def test_all_partitions_without_a_group_then_the_group_goes_on(
    kafka_broker: BrokerInfo, spawn: Spawn
) -> None:
    topics = Topics.unique("assign-all")
    await create_topics(kafka_broker.bootstrap, topics, partitions=3)
    env = streamer_env(kafka_broker.bootstrap, kafka_broker.kind, topics)
    alone = spawn({**env, "STREAMER_PARTITION_ASSIGNMENT": "all"}, "alone")
    alone.wait_for_log('"msg":"partitions assigned","partitions":[0,1,2]')
    first = range(1, 7)
    await _send_studies(kafka_broker.bootstrap, topics.input, first)
    records = await read_topic(
        kafka_broker.bootstrap, topics.output, until=lambda r: len(r) >= len(first)
    )
    got = bundles_by_study(records)
    assert set(got) == {study_uid(n) for n in first}
    for n in first:
        check_bundle(got[study_uid(n)][0], n, 2)
    code, _ = alone.terminate()
    assert code == 0
    # Everything it read is committed as the group's offsets: 3 records per study.
    committed = await committed_offsets(kafka_broker.bootstrap, topics.group, topics.input, 3)
    assert set(committed) == {0, 1, 2}
    assert sum(committed.values()) == 3 * len(first)

    # A group process of the same group starts from those offsets: nothing is read twice.
    group = spawn(env, "group", disk="alone")
    later = range(7, 9)
    await _send_studies(kafka_broker.bootstrap, topics.input, later)
    records = await read_topic(
        kafka_broker.bootstrap,
        topics.output,
        until=lambda r: {study_uid(n) for n in later} <= set(bundles_by_study(r)),
        settle=1.0,
    )
    got = bundles_by_study(records)
    assert all(len(got[study_uid(n)]) == 1 for n in first), "a study was published twice"
    for n in later:
        [bundle] = got[study_uid(n)]
        check_bundle(bundle, n, 2)
    group.terminate()


async def test_all_refuses_to_start_beside_a_group_member(
    kafka_broker: BrokerInfo, spawn: Spawn
) -> None:
    topics = Topics.unique("assign-refused")
    await create_topics(kafka_broker.bootstrap, topics, partitions=2)
    env = streamer_env(kafka_broker.bootstrap, kafka_broker.kind, topics)
    member = spawn(env, "member")
    member.wait_for_log("partitions assigned")
    alone = spawn({**env, "STREAMER_PARTITION_ASSIGNMENT": "all"}, "alone")
    assert alone.proc is not None
    code = await asyncio.to_thread(alone.proc.wait, 60)
    assert code == 2
    assert "STREAMER_PARTITION_ASSIGNMENT" in alone.log()
    assert topics.group in alone.log()
    assert "partitions assigned" not in alone.log()
    # The group's process is not disturbed.
    await _send_studies(kafka_broker.bootstrap, topics.input, range(1, 3))
    records = await read_topic(kafka_broker.bootstrap, topics.output, until=lambda r: len(r) >= 2)
    assert set(bundles_by_study(records)) == {study_uid(1), study_uid(2)}


def _source_settings(broker: BrokerInfo, topics: Topics) -> Settings:
    return load_settings(
        bootstrap_servers=broker.bootstrap,
        input_topic=topics.input,
        output_topic=topics.output,
        dlq_topic=topics.dlq,
        group_id=topics.group,
        partition_assignment="all",
    )


class _Calls:
    """What the source told its owner, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, set[int]]] = []

    def callback(self, kind: str) -> Callable[[set[int]], Awaitable[None]]:
        async def record(partitions: set[int]) -> None:
            self.events.append((kind, set(partitions)))

        return record


async def _poll_until(
    source: KafkaSource, done: Callable[[dict[int, int]], bool], timeout: float = 30.0
) -> dict[int, int]:
    """Poll until ``done(records read per partition)``; returns those counts."""
    read: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while not done(read):
        assert time.monotonic() < deadline, f"timed out; read {read}"
        for partition, records in (await source.poll(0.2, 100)).items():
            read[partition] = read.get(partition, 0) + len(records)
    return read


async def _group_member(
    broker: BrokerInfo, topics: Topics, session_timeout_ms: int
) -> AIOKafkaConsumer:
    """A plain consumer of the group, started and holding its partitions."""
    member = AIOKafkaConsumer(
        topics.input,
        bootstrap_servers=broker.bootstrap,
        group_id=topics.group,
        enable_auto_commit=False,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=500,
    )
    await member.start()
    deadline = time.monotonic() + 30
    while not member.assignment():
        if time.monotonic() > deadline:
            await member.stop()
            raise AssertionError("the group member got no partitions")
        await asyncio.sleep(0.1)
    return member


async def test_all_stops_when_a_group_member_appears(
    kafka_broker: BrokerInfo, spawn: Spawn
) -> None:
    topics = Topics.unique("assign-member")
    await create_topics(kafka_broker.bootstrap, topics, partitions=2)
    env = streamer_env(kafka_broker.bootstrap, kafka_broker.kind, topics)
    alone = spawn({**env, "STREAMER_PARTITION_ASSIGNMENT": "all"}, "alone")
    alone.wait_for_log('"msg":"partition ready","partition":1')
    member = await _group_member(kafka_broker, topics, session_timeout_ms=6000)
    try:
        # The next records move the process's offsets: their commit is refused, and it stops.
        await _send_studies(kafka_broker.bootstrap, topics.input, range(1, 3))
        assert alone.proc is not None
        code = await asyncio.to_thread(alone.proc.wait, 60)
    finally:
        await member.stop()
    assert code == 2
    assert "STREAMER_PARTITION_ASSIGNMENT" in alone.log()
    assert topics.group in alone.log()


async def test_after_the_last_member_left_kafka_takes_the_commits_tansu_does_not(
    kafka_broker: BrokerInfo,
) -> None:
    """What the README says of switching a group from `group` to `all`, broker by broker."""
    topics = Topics.unique("assign-left")
    await create_topics(kafka_broker.bootstrap, topics, partitions=2)
    member = await _group_member(kafka_broker, topics, session_timeout_ms=2000)
    await member.stop()  # leaves the group
    await asyncio.sleep(3)  # past its session timeout
    source = KafkaSource(_source_settings(kafka_broker, topics))
    calls = _Calls()
    if kafka_broker.kind == "tansu":
        with pytest.raises(ConfigError, match="Tansu keeps members that left"):
            await source.start(calls.callback("assigned"), calls.callback("revoked"))
        assert calls.events == []
        return
    await source.start(calls.callback("assigned"), calls.callback("revoked"))
    try:
        assert calls.events == [("assigned", {0, 1})]
    finally:
        await source.stop()


async def test_all_reports_lag_and_caught_up_like_the_group(kafka_broker: BrokerInfo) -> None:
    """Inactivity deadlines and the lag gauges read the consumer's positions: also without a group."""
    topics = Topics.unique("assign-lag")
    await create_topics(kafka_broker.bootstrap, topics, partitions=2)
    calls = _Calls()
    source = KafkaSource(_source_settings(kafka_broker, topics))
    await source.start(calls.callback("assigned"), calls.callback("revoked"))
    try:
        async with Producer(kafka_broker.bootstrap, topics.input) as producer:
            for partition in (0, 1, 1):
                await producer.send(b"k", b"v", partition=partition)
        read = await _poll_until(source, lambda got: got.get(0, 0) >= 1 and got.get(1, 0) >= 2)
        assert read == {0: 1, 1: 2}
        await _poll_until(source, lambda _: source.caught_up(0) and source.caught_up(1))
        assert (source.lag(0), source.lag(1)) == (0, 0)
        assert calls.events == [("assigned", {0, 1})]
    finally:
        await source.stop()


@pytest.mark.real_kafka  # Tansu has no CreatePartitions
async def test_all_takes_partitions_added_later(kafka_broker: BrokerInfo) -> None:
    topics = Topics.unique("assign-grow")
    await create_topics(kafka_broker.bootstrap, topics, partitions=2)
    calls = _Calls()
    source = KafkaSource(_source_settings(kafka_broker, topics), partition_check_s=0.2)
    await source.start(calls.callback("assigned"), calls.callback("revoked"))
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
        await admin.start()
        try:
            await admin.create_partitions({topics.input: NewPartitions(total_count=3)})
        finally:
            await admin.close()
        async with Producer(kafka_broker.bootstrap, topics.input) as producer:
            for partition in (0, 2, 2):
                await producer.send(b"k", b"v", partition=partition)
        read = await _poll_until(source, lambda got: got.get(2, 0) >= 2 and got.get(0, 0) >= 1)
        assert (
            read[2] == 2
        )  # (partition 0 may be read again: the new assignment starts at the commit)
        # Like an eager rebalance: the old partitions are given up (checkpointed), all are taken.
        assert calls.events == [("assigned", {0, 1}), ("revoked", {0, 1}), ("assigned", {0, 1, 2})]
    finally:
        await source.stop()
