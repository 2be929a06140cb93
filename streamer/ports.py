"""The two ports the processing loop needs; kafka/ implements them for real, tests in memory."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One consumed record, independent of the client library."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


# Called with partition numbers; the Source awaits them inside its rebalance callback.
RebalanceCallback = Callable[[set[int]], Awaitable[None]]


class Source(Protocol):
    """The input topic, read through a consumer group."""

    topic: str

    async def start(
        self, on_assigned: RebalanceCallback, on_revoked: RebalanceCallback
    ) -> None: ...

    async def poll(self, timeout_s: float, max_records: int) -> dict[int, list[InputRecord]]: ...

    def caught_up(self, partition: int) -> bool:
        """True when the last fetch showed no records left behind (lag 0) on this partition."""
        ...

    async def commit(self, offsets: dict[int, int]) -> bool:
        """Commit offsets; False when the group rebalanced meanwhile (state is rebuilt anyway)."""
        ...

    async def stop(self) -> None: ...


class Sink(Protocol):
    """Where Bundles and dead letters go; send() returns a future resolved on broker ack."""

    async def start(self) -> None: ...

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> asyncio.Future[object]: ...

    async def stop(self) -> None: ...
