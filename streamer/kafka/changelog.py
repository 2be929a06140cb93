"""Reading the changelog topic back on restore: a consumer outside the group, one partition at a time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from streamer.config import Settings
from streamer.errors import StateError
from streamer.kafka.security import client_kwargs
from streamer.ports import ChangelogRecord
from streamer.state.changelog import read_source_offset

log = logging.getLogger(__name__)

# aiokafka may report the end of a transactional partition one past the last record it hands out
# (a trailing commit marker): after this many empty polls at end - 1 the partition counts as read.
_EMPTY_POLLS = 3
_POLL_MS = 100


class KafkaChangelogReader:
    """Reads partitions of the changelog topic with a consumer of its own (no group, assign())."""

    def __init__(self, settings: Settings, *, deadline_s: float = 600.0) -> None:
        self.topic = settings.changelog
        self._settings = settings
        self._deadline_s = deadline_s

    def _consumer(self) -> AIOKafkaConsumer:
        s = self._settings
        return AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers,
            client_id=f"{s.client_id}-restore",
            group_id=None,
            enable_auto_commit=False,
            isolation_level=s.isolation_level,
            max_partition_fetch_bytes=s.max_bundle_bytes,
            # The empty fetch at the end of a read returns after this (Tansu waits it out).
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            **client_kwargs(s),
        )

    async def bounds(self, partition: int) -> tuple[int, int]:
        tp = TopicPartition(self.topic, partition)
        consumer = self._consumer()
        try:
            await consumer.start()
            # Assigned (so its metadata is known) but paused: a fetch in flight made Tansu answer
            # the offset requests only after that fetch's max wait (≈ 0.5 s per partition).
            consumer.assign([tp])
            consumer.pause(tp)
            begin = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]
        except KafkaError as exc:
            raise StateError(f"cannot read the changelog topic {self.topic}: {exc!r}") from exc
        finally:
            await consumer.stop()
        return int(begin), int(end)

    async def read(
        self, partition: int, start: int, end: int
    ) -> AsyncIterator[list[ChangelogRecord]]:
        tp = TopicPartition(self.topic, partition)
        consumer = self._consumer()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._deadline_s
        try:
            await consumer.start()
            consumer.assign([tp])
            consumer.seek(tp, start)
            empty_polls = 0
            while True:
                batch = await consumer.getmany(tp, timeout_ms=_POLL_MS, max_records=1000)
                records = batch.get(tp, [])
                if records:
                    empty_polls = 0
                    yield [
                        ChangelogRecord(r.offset, r.key, r.value, read_source_offset(r.headers))
                        for r in records
                        if r.key is not None
                    ]
                    continue
                # Done only after an empty poll at the end: some brokers report an end offset
                # below the last record, so reaching ``end`` alone is not proof.
                empty_polls += 1
                position = await consumer.position(tp)
                if position >= end or (position >= end - 1 and empty_polls >= _EMPTY_POLLS):
                    return
                if loop.time() > deadline:
                    raise StateError(
                        f"restoring {self.topic}[{partition}] did not reach offset {end} "
                        f"within {self._deadline_s:.0f} s (at {position})"
                    )
        except KafkaError as exc:
            raise StateError(f"cannot read the changelog topic {self.topic}: {exc!r}") from exc
        finally:
            await consumer.stop()
