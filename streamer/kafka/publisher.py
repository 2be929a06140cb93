"""A plain keyed-record producer for the command-line tools (``publish``, ``demo``).

Same producer settings as the processor's output side; sends are pipelined and ``flush()`` waits
until the broker has acknowledged every record sent so far.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from aiokafka import AIOKafkaProducer

from streamer.config import Settings
from streamer.kafka.producer import producer_kwargs
from streamer.kafka.security import start_client


class Publisher:
    """``async with Publisher(settings) as p: await p.send(...); await p.flush()``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer = AIOKafkaProducer(**producer_kwargs(settings))
        self._pending: list[asyncio.Future[object]] = []

    async def __aenter__(self) -> Publisher:
        # A broker that cannot be reached or refuses us (TLS, SASL) is a ConfigError, in time.
        await start_client(self._producer.start, self._producer.stop, self._settings)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._producer.stop()

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Queue one record; it is sent in the background (raises only if the queue is broken)."""
        self._pending.append(await self._producer.send(topic, key=key, value=value))

    async def flush(self) -> None:
        """Wait for the broker's ack of every record sent so far; a refused record raises."""
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending)
