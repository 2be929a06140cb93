"""The input side: an aiokafka consumer in a group, behind the Source port.

With ``STREAMER_PARTITION_ASSIGNMENT=all`` the consumer joins no group: it assigns itself every
partition of the input topic and commits as the group's "simple" consumer. The broker refuses such a
commit while the group has members, which is what stops two kinds of processes sharing one group.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from streamer.config import Settings
from streamer.errors import ConfigError
from streamer.interruptible import Interruptible
from streamer.kafka.outage import BrokerWatch
from streamer.kafka.security import client_kwargs
from streamer.ports import InputRecord, RebalanceCallback

log = logging.getLogger(__name__)

_PROBE_INTERVAL_S = 1.0
# With partition_assignment=all: how often the input topic's partition count is looked up again.
PARTITION_CHECK_S = 30.0


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

    def __init__(
        self,
        settings: Settings,
        watch: BrokerWatch | None = None,
        partition_check_s: float = PARTITION_CHECK_S,
    ) -> None:
        self.topic = settings.input_topic
        self._group_id = settings.group_id
        self._watch = watch
        self._last_probe = 0.0
        self._take_all = settings.partition_assignment == "all"
        self._partition_check_s = partition_check_s
        self._last_partition_check = 0.0
        self._owned: set[int] = set()
        self._on_assigned: RebalanceCallback | None = None
        self._on_revoked: RebalanceCallback | None = None
        self._wait = Interruptible()  # poll's wait for records, which wake() ends
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
        if not self._take_all:
            self._consumer.subscribe([self.topic], listener=_Listener(on_assigned, on_revoked))
            return
        self._on_assigned, self._on_revoked = on_assigned, on_revoked
        try:
            await self._assign_all(await self._partitions())
        except BaseException:
            await self._consumer.stop()
            raise

    async def _partitions(self) -> set[int]:
        await self._consumer._client.force_metadata_update()
        partitions = self._consumer.partitions_for_topic(self.topic)
        if not partitions:
            raise ConfigError(
                f"input topic {self.topic} has no partitions in the broker's metadata"
            )
        return set(partitions)

    async def _assign_all(self, partitions: set[int]) -> None:
        """Take ``partitions``, first making sure the group has no members (see the module doc)."""
        tps = self._tps(partitions)
        self._consumer.assign(tps)
        committed = {tp: await self._consumer.committed(tp) for tp in tps}
        missing = [tp for tp, offset in committed.items() if offset is None or offset < 0]
        first = await self._consumer.beginning_offsets(missing) if missing else {}
        # Committing what the group already has (or the start of the log) changes nothing, and the
        # broker refuses it while the group has members.
        probe = {tp.partition: committed[tp] if tp not in first else first[tp] for tp in tps}
        await self.commit(probe)
        self._owned = set(partitions)
        self._last_partition_check = time.monotonic()
        assert self._on_assigned is not None
        await self._on_assigned(set(partitions))

    async def _check_partitions(self) -> None:
        """Take partitions added to the input topic, as a group rebalance would."""
        now = time.monotonic()
        if now - self._last_partition_check < self._partition_check_s:
            return
        self._last_partition_check = now
        try:
            partitions = await self._partitions()
        except (KafkaError, ConfigError) as exc:
            log.warning("input partitions not checked: %s", exc)
            return
        if partitions <= self._owned:
            return
        log.info(
            "input topic has new partitions",
            extra={"partitions": sorted(partitions - self._owned)},
        )
        assert self._on_revoked is not None
        await self._on_revoked(set(self._owned))  # checkpoint and close, like an eager rebalance
        await self._assign_all(partitions)

    async def poll(self, timeout_s: float, max_records: int) -> dict[int, list[InputRecord]]:
        if self._take_all:
            await self._check_partitions()
        # Only the client's wait is cut by wake(), never the reassignment above.
        batch = await self._wait.run(
            self._consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records), {}
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

    def wake(self) -> None:
        self._wait.interrupt()

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
        if not self._take_all:
            return await commit_offsets(self._consumer, self.topic, offsets)
        try:
            await self._consumer.commit(
                {TopicPartition(self.topic, p): off for p, off in offsets.items()}
            )
        except CommitFailedError as exc:
            raise ConfigError(
                f"consumer group {self._group_id} has members, so the broker refuses the commits of "
                "this process, which reads all partitions outside the group "
                "(STREAMER_PARTITION_ASSIGNMENT=all): stop the group's other processes or wait for "
                "their session timeout, or use STREAMER_PARTITION_ASSIGNMENT=group (Tansu keeps "
                "members that left: there, use a group id that group processes never used)"
            ) from exc
        return True

    async def stop(self) -> None:
        await self._consumer.stop()


async def commit_offsets(consumer: AIOKafkaConsumer, topic: str, offsets: dict[int, int]) -> bool:
    """Commit ``partition -> next offset`` of a group consumer; False when a rebalance took them.

    The group rebalanced: the new owner goes on from the last good commit. Not fatal. Any other
    error propagates (the process exits and restarts from the last commit): aiokafka already
    retries a retriable one until it succeeds or turns fatal (``GroupCoordinator.commit_offsets``),
    and answering False for it would make the caller give up a partition it still owns.
    """
    if not offsets:
        return True
    try:
        await consumer.commit({TopicPartition(topic, p): off for p, off in offsets.items()})
    except (CommitFailedError, IllegalStateError) as exc:
        log.warning("commit skipped after rebalance: %s", exc)
        return False
    return True
