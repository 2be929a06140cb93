"""The output side: one aiokafka producer for Bundles and dead letters, behind the Sink port."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from streamer.config import Settings
from streamer.ports import Headers


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


class KafkaSink:
    """Sends records; each send returns a future the app awaits before committing input offsets."""

    def __init__(self, settings: Settings) -> None:
        self._producer = AIOKafkaProducer(**producer_kwargs(settings))

    async def start(self) -> None:
        await self._producer.start()

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> asyncio.Future[object]:
        fut: asyncio.Future[object] = await self._producer.send(
            topic, value=value, key=key, headers=list(headers)
        )
        return fut

    async def stop(self) -> None:
        await self._producer.stop()
