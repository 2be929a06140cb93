"""A raw aiokafka pass-through: the yardstick `throughput.py` holds the streamer against.

    python bench/passthrough.py CONFIG_JSON

A consumer in a group reads the input topic and produces every record's key and value, unchanged,
to the output topic, committing the way the streamer does (`streamer/app.py`, `partitions.py`):

* poll with the streamer's timeout (STREAMER_TIMER_INTERVAL_SECONDS) and max_poll_records;
* after a poll that sent something, a checkpoint at once but not more often than the streamer's
  `streamer.app._MIN_CLOSE_CHECKPOINT_S` (the streamer sends something only when a study closes,
  the pass-through after every non-empty poll, so this is at least as often), else every
  STREAMER_COMMIT_INTERVAL_SECONDS;
* a checkpoint waits for every produce ack, then commits ``last offset + 1`` per partition
  (offsets are committed only after everything a record caused is acked, as in the streamer).

The consumer and producer settings are the streamer's own (`CONFIG_JSON` holds the kwargs that
`throughput.py` builds with `streamer.kafka.producer.producer_kwargs` and the consumer arguments of
`streamer.kafka.consumer.KafkaSource`), so compression, acks, idempotence, linger, batch size,
isolation level and fetch settings match. Only aiokafka and orjson are imported: nothing decodes,
aggregates, stores or converts. With `"assignment": "all"` (the streamer's
STREAMER_PARTITION_ASSIGNMENT=all) it joins no group: it assigns itself every input partition and
commits as the group's simple consumer, as the streamer does then. Logs JSON lines like the streamer
("partitions assigned") on stdout.
SIGTERM: drain, commit, exit 0.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor


def log(msg: str, **extra: object) -> None:
    ts = datetime.now(UTC).isoformat(timespec="milliseconds")
    line = orjson.dumps({"ts": ts, "level": "INFO", "msg": msg, **extra})
    sys.stdout.buffer.write(line + b"\n")
    sys.stdout.flush()


class PassThrough:
    def __init__(self, config: dict[str, Any]) -> None:
        self.input: str = config["input_topic"]
        self.output: str = config["output_topic"]
        self.poll_timeout_ms = int(config["timer_interval_seconds"] * 1000)
        self.max_records: int = config["max_poll_records"]
        self.commit_interval: float = config["commit_interval_seconds"]
        self.assign_all = config.get("assignment", "group") == "all"
        self.min_close_checkpoint: float = config["min_close_checkpoint_seconds"]
        self.consumer = AIOKafkaConsumer(
            **config["consumer"], partition_assignment_strategy=(StickyPartitionAssignor,)
        )
        self.producer = AIOKafkaProducer(**config["producer"])
        self.pending: list[asyncio.Future[Any]] = []
        self.next_offsets: dict[int, int] = {}
        self.committed: dict[int, int] = {}
        self.last_commit = float("-inf")
        self.stopping = asyncio.Event()
        self.lock = asyncio.Lock()

    async def checkpoint(self) -> None:
        pending, self.pending = self.pending, []
        if pending:
            await asyncio.gather(*pending)  # a failed send raises: nothing is committed after it
        offsets = {
            TopicPartition(self.input, p): off
            for p, off in self.next_offsets.items()
            if self.committed.get(p) != off
        }
        if offsets:
            await self.consumer.commit(offsets)
            self.committed.update({tp.partition: off for tp, off in offsets.items()})
        self.last_commit = time.monotonic()

    async def run(self) -> None:
        outer = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
                async with outer.lock:
                    await outer.checkpoint()
                    for tp in revoked:
                        outer.next_offsets.pop(tp.partition, None)
                        outer.committed.pop(tp.partition, None)
                log("partitions revoked", partitions=sorted(tp.partition for tp in revoked))

            async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
                log("partitions assigned", partitions=sorted(tp.partition for tp in assigned))

        await self.producer.start()
        await self.consumer.start()
        if self.assign_all:
            await self.consumer._client.force_metadata_update()
            partitions = sorted(self.consumer.partitions_for_topic(self.input) or ())
            self.consumer.assign([TopicPartition(self.input, p) for p in partitions])
            log("partitions assigned", partitions=partitions)
        else:
            self.consumer.subscribe([self.input], listener=Listener())
        try:
            while not self.stopping.is_set():
                batch = await self.consumer.getmany(
                    timeout_ms=self.poll_timeout_ms, max_records=self.max_records
                )
                async with self.lock:
                    sent = 0
                    for tp, records in batch.items():
                        for r in records:
                            self.pending.append(
                                await self.producer.send(
                                    self.output,
                                    value=r.value,
                                    key=r.key,
                                    headers=[("content-type", b"application/octet-stream")],
                                )
                            )
                            sent += 1
                        if records:
                            self.next_offsets[tp.partition] = records[-1].offset + 1
                    since = time.monotonic() - self.last_commit
                    if (
                        sent and since >= self.min_close_checkpoint
                    ) or since >= self.commit_interval:
                        await self.checkpoint()
            async with self.lock:
                await self.checkpoint()
        finally:
            await self.consumer.stop()
            await self.producer.stop()
        log("stopped")


async def main() -> None:
    config = orjson.loads(sys.argv[1])
    app = PassThrough(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, app.stopping.set)
    await app.run()


if __name__ == "__main__":
    asyncio.run(main())
