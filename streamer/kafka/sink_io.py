"""The Kafka side of the FHIR sink: the Bundles topic read in the sink's own group, its DLQ producer.

* ``BundleConsumer``: consumes the Bundles topic (``STREAMER_OUTPUT_TOPIC``) with manual commits;
  ``idle()`` waits while staying in the group (all partitions paused, the poll loop kept alive),
  so a long run of retries against a FHIR server that is down does not get the sink evicted.
* ``DeadLetterProducer``: sends one dead letter and waits for the broker's ack.
* ``ensure_sink_topics``: the DLQ topic exists (created if allowed); says whether the Bundles
  topic does yet (the consumer waits for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaError,
    TopicAlreadyExistsError,
)

from streamer.config import Settings
from streamer.errors import ConfigError
from streamer.interruptible import Interruptible
from streamer.kafka.consumer import commit_offsets
from streamer.kafka.producer import producer_kwargs, translate_send_error
from streamer.kafka.security import client_kwargs, start_client
from streamer.ports import Headers, InputRecord, RebalanceCallback

log = logging.getLogger(__name__)

_MIN_FETCH_BYTES = 1024 * 1024
_IDLE_SLICE_S = 0.5


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, on_revoked: RebalanceCallback) -> None:
        self._on_revoked = on_revoked

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._on_revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info(
            "partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned)}
        )


class BundleConsumer:
    """The Bundles topic in the sink's consumer group; offsets are committed only by the sink."""

    def __init__(self, settings: Settings, group_id: str) -> None:
        self.topic = settings.output_topic
        self._settings = settings
        # A Bundle may be as large as the producer allows; fetch at least one whole record.
        fetch_bytes = max(_MIN_FETCH_BYTES, settings.max_bundle_bytes + 64 * 1024)
        self._wait = Interruptible()  # poll's wait for records, which wake() ends
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=group_id,
            client_id=f"{settings.client_id}-sink-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=settings.isolation_level,
            max_partition_fetch_bytes=fetch_bytes,
            fetch_max_bytes=max(fetch_bytes, 50 * 1024 * 1024),
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            max_poll_interval_ms=settings.max_poll_interval_ms,
            rebalance_timeout_ms=max(settings.max_poll_interval_ms, 60_000),
            **client_kwargs(settings),
        )

    async def start(self, on_revoked: RebalanceCallback) -> None:
        """Join the group; ``on_revoked`` runs (and may commit) before partitions move away."""
        await start_client(self._consumer.start, self._consumer.stop, self._settings)
        self._consumer.subscribe([self.topic], listener=_Listener(on_revoked))

    async def poll(self, timeout_s: float, max_records: int) -> dict[int, list[InputRecord]]:
        batch = await self._wait.run(
            self._consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records), {}
        )
        return {
            tp.partition: [
                InputRecord(
                    partition=tp.partition,
                    offset=r.offset,
                    timestamp_ms=r.timestamp,
                    key=r.key,
                    value=r.value,
                )
                for r in records
            ]
            for tp, records in batch.items()
        }

    def wake(self) -> None:
        self._wait.interrupt()

    def assigned(self) -> set[int]:
        return {tp.partition for tp in self._consumer.assignment() if tp.topic == self.topic}

    async def idle(self, seconds: float) -> None:
        """Wait ``seconds`` without taking records, still polling so the group keeps us.

        Every partition is paused meanwhile (their positions stay where the last batch ended).
        """
        deadline = time.monotonic() + seconds
        assignment = self._consumer.assignment()
        self._consumer.pause(*assignment)
        try:
            while (left := deadline - time.monotonic()) > 0:
                await self._consumer.getmany(timeout_ms=int(min(left, _IDLE_SLICE_S) * 1000))
        finally:
            # Partitions assigned since (a rebalance) were never paused; resume only what is ours.
            current = self._consumer.assignment()
            self._consumer.resume(*(tp for tp in assignment if tp in current))

    async def commit(self, offsets: dict[int, int]) -> bool:
        """Commit ``partition -> next offset``; False when a rebalance took the partitions."""
        return await commit_offsets(self._consumer, self.topic, offsets)

    async def stop(self) -> None:
        await self._consumer.stop()


class DeadLetterProducer:
    """Sends dead letters one at a time and waits for each ack (the sink commits after it)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self._settings = settings
        self._producer = AIOKafkaProducer(
            **{**producer_kwargs(settings), "client_id": f"{settings.client_id}-sink-producer"}
        )

    async def start(self) -> None:
        await start_client(self._producer.start, self._producer.stop, self._settings)

    async def send(self, key: bytes | None, value: bytes | None, headers: Headers) -> int:
        """The record's offset once the broker acknowledged it.

        Raises ``RecordTooLargeError`` (never takes it) or ``OutputError`` (broker refused).
        """
        try:
            meta = await self._producer.send_and_wait(
                self.topic, value=value, key=key, headers=list(headers)
            )
        except KafkaError as exc:
            raise translate_send_error(exc) from exc
        return int(meta.offset)

    async def stop(self) -> None:
        await self._producer.stop()


async def ensure_sink_topics(settings: Settings, dlq_topic: str) -> bool:
    """Create the sink's DLQ topic when missing (if allowed); True when the Bundles topic exists.

    The DLQ gets the Bundles topic's partition count (``STREAMER_TOPIC_PARTITIONS`` while that
    does not exist yet) and its ``max.message.bytes``.
    """
    if dlq_topic == settings.output_topic:
        raise ConfigError("STREAMER_SINK_DLQ_TOPIC must differ from STREAMER_OUTPUT_TOPIC")
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-sink-admin",
        **client_kwargs(settings),
    )
    await start_client(admin.start, admin.close, settings)
    try:
        names = set(await admin.list_topics())
        if dlq_topic not in names:
            if not settings.create_topics:
                raise ConfigError(
                    f"topic {dlq_topic} does not exist and STREAMER_CREATE_TOPICS is false"
                )
            partitions = settings.topic_partitions
            if settings.output_topic in names:
                [described] = await admin.describe_topics([settings.output_topic])
                partitions = len(described["partitions"]) or partitions
            topic = NewTopic(
                name=dlq_topic,
                num_partitions=partitions,
                replication_factor=settings.topic_replication_factor,
                topic_configs={"max.message.bytes": str(settings.max_bundle_bytes)},
            )
            with contextlib.suppress(TopicAlreadyExistsError):  # another sink was first
                await admin.create_topics([topic])
            log.info("created topics", extra={"topics": [dlq_topic], "partitions": partitions})
        return settings.output_topic in names
    except KafkaError as exc:
        raise ConfigError(f"cannot check topics on {settings.bootstrap_servers}: {exc}") from exc
    finally:
        await admin.close()


async def wait_for_topic(settings: Settings, topic: str, timeout_s: float) -> bool:
    """Whether ``topic`` exists within ``timeout_s`` (checked every second)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-sink-admin",
        **client_kwargs(settings),
    )
    await start_client(admin.start, admin.close, settings)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if topic in set(await admin.list_topics()):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(1.0)
    finally:
        await admin.close()
