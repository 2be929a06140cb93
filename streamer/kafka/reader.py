"""Reads a keyed topic from the start, keeping the latest value per key (as compaction would).

Used by the demo to collect the Bundles the processor published.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from aiokafka import AIOKafkaConsumer

from streamer.config import Settings


async def read_latest_per_key(
    settings: Settings,
    topic: str,
    *,
    group_id: str,
    done: Callable[[Mapping[bytes, bytes]], bool],
    wait_s: float,
) -> dict[bytes, bytes]:
    """Consume ``topic`` as ``group_id`` until ``done(latest)`` is true or ``wait_s`` has passed.

    Records without a key are ignored; a record without a value (a tombstone) deletes its key.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
    )
    await consumer.start()
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
