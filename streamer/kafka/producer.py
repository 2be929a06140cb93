"""The output side: one aiokafka producer for Bundles and dead letters, behind the Sink port."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from streamer.config import Settings
from streamer.errors import OutputError
from streamer.errors import RecordTooLargeError as TooLarge
from streamer.ports import Headers

# The producer refuses a record above max_request_size before sending it; the broker refuses one
# above the topic's max.message.bytes. Resending the same bytes can never succeed.
_TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError)


def producer_kwargs(settings: Settings) -> dict[str, object]:
    """Producer settings shared by the streamer and `streamer publish`."""
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


class KafkaSink:
    """Sends records; each send returns a future the app awaits before committing input offsets."""

    def __init__(self, settings: Settings) -> None:
        self._producer = AIOKafkaProducer(**producer_kwargs(settings))

    async def start(self) -> None:
        await self._producer.start()

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        *,
        partition: int | None = None,
    ) -> asyncio.Future[int]:
        try:
            fut: asyncio.Future[Any] = await self._producer.send(
                topic, value=value, key=key, headers=list(headers), partition=partition
            )
        except KafkaError as exc:
            raise translate_send_error(exc) from exc
        return _ack_future(fut)

    async def stop(self) -> None:
        await self._producer.stop()
