"""Reading topics for the tools, outside any consumer group.

* ``read_latest_per_key``: a keyed topic from the start, keeping the latest value per key (as
  compaction would); the demo collects the Bundles the processor published with it.
* ``follow``: every record of a topic as it arrives, from its end or its beginning (``tail``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from streamer.config import Settings
from streamer.kafka.security import client_kwargs, start_client

_TOPIC_WAIT_S = 1.0
_METADATA_MAX_AGE_MS = 30_000


async def read_latest_per_key(
    settings: Settings,
    topic: str,
    *,
    done: Callable[[Mapping[bytes, bytes]], bool],
    wait_s: float,
) -> dict[bytes, bytes]:
    """Consume ``topic`` from its start until ``done(latest)`` is true or ``wait_s`` has passed.

    No consumer group: every partition is read at once, without a group join (≈ 1–3 s on Tansu).
    Records without a key are ignored; a record without a value (a tombstone) deletes its key.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-reader",
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level=settings.isolation_level,
        max_partition_fetch_bytes=settings.max_bundle_bytes,
        **client_kwargs(settings),
    )
    await start_client(consumer.start, consumer.stop, settings)
    latest: dict[bytes, bytes] = {}
    try:
        deadline = time.monotonic() + wait_s
        while not done(latest) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.key is None:
                        continue
                    if record.value is None:
                        latest.pop(record.key, None)
                    else:
                        latest[record.key] = record.value
    finally:
        await consumer.stop()
    return latest


@dataclass(frozen=True)
class TopicRecord:
    """One record read by ``follow``."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


async def follow(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool,
    on_ready: Callable[[int], None] | None = None,
    on_waiting: Callable[[], None] | None = None,
    poll_s: float = 0.5,
) -> AsyncIterator[TopicRecord]:
    """Yield the records of ``topic`` as they arrive, until the caller stops iterating.

    No consumer group (nothing is committed, other readers are not disturbed): every partition is
    assigned, also partitions added later. Starts at the end of each partition, or at the
    beginning with ``from_beginning``. ``on_ready(partitions)`` is called once every partition's
    start position is known, so records sent after it are all seen. A topic that does not exist
    yet is waited for (``on_waiting()`` is called once then).
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-tail",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        isolation_level=settings.isolation_level,
        max_partition_fetch_bytes=settings.max_bundle_bytes,
        fetch_max_wait_ms=int(poll_s * 1000),
        # New partitions of the topic are assigned within this long.
        metadata_max_age_ms=_METADATA_MAX_AGE_MS,
        **client_kwargs(settings),
    )
    await start_client(consumer.start, consumer.stop, settings)
    try:
        waiting = False
        while topic not in await consumer.topics():
            if not waiting and on_waiting is not None:
                on_waiting()
            waiting = True
            await asyncio.sleep(_TOPIC_WAIT_S)
        consumer.subscribe([topic])
        ready = False
        while True:
            batch = await consumer.getmany(timeout_ms=int(poll_s * 1000))
            if not ready and (assigned := consumer.assignment()):
                # position() waits for the offset reset: from here on nothing new is missed.
                for tp in sorted(assigned, key=lambda t: t.partition):
                    await consumer.position(tp)
                ready = True
                if on_ready is not None:
                    on_ready(len(assigned))
            for tp, records in sorted(batch.items(), key=_by_partition):
                for r in records:
                    yield TopicRecord(
                        topic=tp.topic,
                        partition=tp.partition,
                        offset=r.offset,
                        timestamp_ms=r.timestamp,
                        key=r.key,
                        value=r.value,
                        headers=tuple(r.headers),
                    )
    finally:
        await consumer.stop()


def _by_partition(item: tuple[TopicPartition, object]) -> int:
    return int(item[0].partition)
