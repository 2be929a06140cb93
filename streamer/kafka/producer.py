"""The output side: one aiokafka producer for Bundles and dead letters, behind the Sink port."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from streamer.config import Settings
from streamer.errors import OutputError
from streamer.errors import RecordTooLargeError as TooLarge
from streamer.kafka.security import client_kwargs
from streamer.ports import Headers

# The producer refuses a record above max_request_size before sending it; the broker refuses one
# above the topic's max.message.bytes. Resending the same bytes can never succeed.
_TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError)


def producer_kwargs(settings: Settings) -> dict[str, object]:
    """Producer settings shared by the streamer and `streamer publish` (security included)."""
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": f"{settings.client_id}-producer",
        "acks": "all",
        "enable_idempotence": settings.idempotent_producer,
        "compression_type": None
        if settings.compression_type == "none"
        else settings.compression_type,
        "max_request_size": settings.max_bundle_bytes,
        "linger_ms": 5,
        # Changelog checkpoints go out as whole produce batches (send_batch); bigger batches mean
        # fewer requests. Single records larger than this still go out alone.
        "max_batch_size": 512 * 1024,
        **client_kwargs(settings),
    }


def translate_send_error(exc: BaseException) -> BaseException:
    """aiokafka's send errors as our error tree: too large (dead-letter) or output refused (exit)."""
    if isinstance(exc, _TOO_LARGE):
        return TooLarge(f"the broker does not take a record this large: {exc}")
    if isinstance(exc, KafkaError):
        return OutputError(f"the broker did not take an output record: {exc!r}")
    return exc


def _ack_future(fut: asyncio.Future[Any]) -> asyncio.Future[int]:
    """A future resolved with the record's offset, or with the send error translated."""
    out: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def _done(src: asyncio.Future[Any]) -> None:
        if out.done():
            return
        if src.cancelled():
            out.set_exception(OutputError("an output send was cancelled before its ack"))
        elif (exc := src.exception()) is not None:
            out.set_exception(translate_send_error(exc))
        else:
            out.set_result(int(src.result().offset))

    fut.add_done_callback(_done)
    return out


def _batch_ack_future(fut: asyncio.Future[Any], records: int) -> asyncio.Future[int]:
    """A future of the last record's offset of a produce batch (its base offset + count - 1)."""
    out: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def _done(src: asyncio.Future[Any]) -> None:
        if out.done():
            return
        if src.cancelled():
            out.set_exception(OutputError("an output batch was cancelled before its ack"))
        elif (exc := src.exception()) is not None:
            out.set_exception(translate_send_error(exc))
        else:
            out.set_result(int(src.result().offset) + max(records - 1, 0))

    fut.add_done_callback(_done)
    return out


class KafkaSink:
    """Sends records; each send returns a future the app awaits before committing input offsets.

    At least once: one idempotent producer for everything. Exactly once: one transactional
    producer per assigned input partition (the client has no group-aware fencing, so the
    transactional id names the partition); a partition's Bundles, dead letters, changelog records
    and its input offset are committed in one transaction, and starting the producer for a
    partition fences any earlier owner still writing to it.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.transactional = settings.processing_guarantee == "exactly_once"
        self._producer = (
            None if self.transactional else AIOKafkaProducer(**producer_kwargs(settings))
        )
        self._txn: dict[int, AIOKafkaProducer] = {}
        self._open_txn: set[int] = set()

    async def start(self) -> None:
        if self._producer is not None:
            await self._producer.start()

    async def open_partitions(self, partitions: set[int]) -> None:
        """Exactly once: a transactional producer per partition (fences the previous owner)."""
        if not self.transactional:
            return
        s = self._settings
        for p in sorted(partitions - set(self._txn)):
            producer = AIOKafkaProducer(
                **{
                    **producer_kwargs(s),
                    "client_id": f"{s.client_id}-producer-{p}",
                    "enable_idempotence": True,
                    "transactional_id": f"{s.group_id}-{s.input_topic}-{p}",
                }
            )
            try:
                await producer.start()
            except KafkaError as exc:
                raise OutputError(f"cannot start the transactional producer: {exc!r}") from exc
            self._txn[p] = producer

    async def close_partitions(self, partitions: set[int]) -> None:
        """Abort what a partition's transaction holds and stop its producer."""
        for p in sorted(partitions & set(self._txn)):
            producer = self._txn.pop(p)
            try:
                if p in self._open_txn:
                    self._open_txn.discard(p)
                    await producer.abort_transaction()
            except KafkaError:
                pass  # the next owner fences and aborts it anyway
            finally:
                await producer.stop()

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        *,
        partition: int | None = None,
        source_partition: int,
    ) -> asyncio.Future[int]:
        try:
            producer = await self._producer_for(source_partition)
            fut: asyncio.Future[Any] = await producer.send(
                topic, value=value, key=key, headers=list(headers), partition=partition
            )
        except KafkaError as exc:
            raise translate_send_error(exc) from exc
        return _ack_future(fut)

    async def send_batch(
        self,
        topic: str,
        partition: int,
        records: Sequence[tuple[bytes, bytes | None]],
        headers: Headers,
        *,
        source_partition: int,
    ) -> asyncio.Future[int]:
        """Many records to one partition in as few produce batches as fit; far cheaper than send()
        per record. The future gives the offset of the last record."""
        if not records:
            raise ValueError("send_batch needs at least one record")
        header_list = list(headers)
        try:
            producer = await self._producer_for(source_partition)
            batch = producer.create_batch()
            last: asyncio.Future[Any] | None = None
            count = 0
            for key, value in records:
                if batch.append(key=key, value=value, timestamp=None, headers=header_list) is None:
                    last = await producer.send_batch(batch, topic, partition=partition)
                    batch = producer.create_batch()
                    count = 0
                    if (
                        batch.append(key=key, value=value, timestamp=None, headers=header_list)
                        is None
                    ):
                        raise TooLarge("a changelog record is larger than a produce batch")
                count += 1
            if count or last is None:
                last = await producer.send_batch(batch, topic, partition=partition)
                records_in_last = count
            else:
                records_in_last = 0
        except KafkaError as exc:
            raise translate_send_error(exc) from exc
        return _batch_ack_future(last, records_in_last)

    async def _producer_for(self, source_partition: int) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        producer = self._txn.get(source_partition)
        if producer is None:
            raise OutputError(f"no transactional producer for partition {source_partition}")
        if source_partition not in self._open_txn:
            await producer.begin_transaction()
            self._open_txn.add(source_partition)
        return producer

    async def commit(self, offsets: dict[int, int]) -> None:
        """Exactly once: commit each open transaction, with the partition's next input offset."""
        s = self._settings
        for p in sorted(self._open_txn | set(offsets)):
            producer = self._txn.get(p)
            if producer is None:
                continue
            try:
                if p not in self._open_txn:
                    await producer.begin_transaction()
                    self._open_txn.add(p)
                if p in offsets:
                    await producer.send_offsets_to_transaction(
                        {TopicPartition(s.input_topic, p): offsets[p]}, s.group_id
                    )
                await producer.commit_transaction()
            except KafkaError as exc:
                raise OutputError(f"committing the transaction of partition {p}: {exc!r}") from exc
            finally:
                self._open_txn.discard(p)

    async def stop(self) -> None:
        await self.close_partitions(set(self._txn))
        if self._producer is not None:
            await self._producer.stop()
