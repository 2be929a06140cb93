"""The input side: an aiokafka consumer in a group, behind the Source port."""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from streamer.config import Settings
from streamer.kafka.outage import BrokerWatch
from streamer.kafka.security import client_kwargs
from streamer.ports import InputRecord, RebalanceCallback

log = logging.getLogger(__name__)

_PROBE_INTERVAL_S = 1.0


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, on_assigned: RebalanceCallback, on_revoked: RebalanceCallback) -> None:
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._on_revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._on_assigned({tp.partition for tp in assigned})


class KafkaSource:
    """Consumes the input topic with manual commits; offsets are committed only by the app."""

    def __init__(self, settings: Settings, watch: BrokerWatch | None = None) -> None:
        self.topic = settings.input_topic
        self._watch = watch
        self._last_probe = 0.0
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=settings.group_id,
            group_instance_id=settings.group_instance_id,
            client_id=f"{settings.client_id}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=settings.isolation_level,
            max_poll_records=settings.max_poll_records,
            # An idle fetch returns after this long; until the first fetch after a restore answers,
            # a partition does not count as caught up, so its overdue studies wait that long.
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            max_poll_interval_ms=settings.max_poll_interval_ms,
            rebalance_timeout_ms=max(settings.max_poll_interval_ms, 60_000),
            partition_assignment_strategy=(StickyPartitionAssignor,),
            **client_kwargs(settings),
        )

    async def start(self, on_assigned: RebalanceCallback, on_revoked: RebalanceCallback) -> None:
        await self._consumer.start()
        self._consumer.subscribe([self.topic], listener=_Listener(on_assigned, on_revoked))

    async def poll(self, timeout_s: float, max_records: int) -> dict[int, list[InputRecord]]:
        batch = await self._consumer.getmany(
            timeout_ms=int(timeout_s * 1000), max_records=max_records
        )
        if self._watch is not None and self._watch.down:
            await self._probe()
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

    async def _probe(self) -> None:
        """During an outage, ask the broker for metadata once a second; an answer ends it."""
        now = time.monotonic()
        if now - self._last_probe < _PROBE_INTERVAL_S:
            return
        self._last_probe = now
        try:
            await asyncio.wait_for(self._consumer.topics(), _PROBE_INTERVAL_S)
        except (KafkaError, TimeoutError):
            return
        assert self._watch is not None
        self._watch.back()

    def caught_up(self, partition: int) -> bool:
        tp = TopicPartition(self.topic, partition)
        try:
            highwater = self._consumer.highwater(tp)
            position = self._consumer._subscription.subscription.assignment.state_value(tp)
        except (IllegalStateError, AttributeError, KeyError):
            return False
        if highwater is None or position is None or not position.has_valid_position:
            return False
        return bool(position.position >= highwater)

    def lag(self, partition: int) -> int | None:
        """High watermark - position, as of the last fetch (None until both are known)."""
        tp = TopicPartition(self.topic, partition)
        try:
            highwater = self._consumer.highwater(tp)
            position = self._consumer._subscription.subscription.assignment.state_value(tp)
        except (IllegalStateError, AttributeError, KeyError):
            return None
        if highwater is None or position is None or not position.has_valid_position:
            return None
        return max(0, int(highwater) - int(position.position))

    def _tps(self, partitions: set[int]) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p) for p in sorted(partitions)]

    def pause(self, partitions: set[int]) -> None:
        self._consumer.pause(*self._tps(partitions))

    def resume(self, partitions: set[int]) -> None:
        self._consumer.resume(*self._tps(partitions))

    def seek(self, partition: int, offset: int) -> None:
        self._consumer.seek(TopicPartition(self.topic, partition), offset)

    async def committed_offset(self, partition: int) -> int | None:
        offset = await self._consumer.committed(TopicPartition(self.topic, partition))
        return None if offset is None or offset < 0 else int(offset)

    async def commit(self, offsets: dict[int, int]) -> bool:
        return await commit_offsets(self._consumer, self.topic, offsets)

    async def stop(self) -> None:
        await self._consumer.stop()


async def commit_offsets(consumer: AIOKafkaConsumer, topic: str, offsets: dict[int, int]) -> bool:
    """Commit ``partition -> next offset`` of a group consumer; False when a rebalance took them.

    The group rebalanced: the new owner goes on from the last good commit. Not fatal.
    """
    if not offsets:
        return True
    try:
        await consumer.commit({TopicPartition(topic, p): off for p, off in offsets.items()})
    except (CommitFailedError, IllegalStateError) as exc:
        log.warning("commit skipped after rebalance: %s", exc)
        return False
    except KafkaError as exc:
        if getattr(exc, "retriable", False):
            log.warning("commit failed (retriable), will retry next round: %s", exc)
            return False
        raise
    return True
