"""The ports the processing loop needs; kafka/ implements them for real, tests in memory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
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


@dataclass(frozen=True, slots=True)
class ChangelogRecord:
    """One record read back from the changelog topic while restoring a partition."""

    offset: int
    key: bytes
    value: bytes | None  # None: the key was deleted
    source_offset: int | None  # last input offset processed when it was written (header)


# Called with partition numbers; the Source awaits them inside its rebalance callback.
RebalanceCallback = Callable[[set[int]], Awaitable[None]]


class Source(Protocol):
    """The input topic, read through a consumer group."""

    topic: str

    async def start(
        self, on_assigned: RebalanceCallback, on_revoked: RebalanceCallback
    ) -> None: ...

    async def poll(self, timeout_s: float, max_records: int) -> dict[int, list[InputRecord]]: ...

    def wake(self) -> None:
        """End a poll that is waiting for records now (it returns what it has, maybe nothing): a
        stop does not wait for the poll's timeout."""

    def caught_up(self, partition: int) -> bool:
        """True when the last fetch showed no records left behind (lag 0) on this partition."""
        ...

    def lag(self, partition: int) -> int | None:
        """Records between the position and the partition's end (None: not known yet)."""
        ...

    def pause(self, partitions: set[int]) -> None:
        """Stop fetching these partitions (while their state is restored)."""
        ...

    def resume(self, partitions: set[int]) -> None: ...

    def seek(self, partition: int, offset: int) -> None:
        """Read the partition again from ``offset`` on."""
        ...

    async def committed_offset(self, partition: int) -> int | None:
        """The group's committed offset of the partition (None: never committed)."""
        ...

    async def commit(self, offsets: dict[int, int]) -> bool:
        """Commit offsets; False when the group rebalanced meanwhile (state is rebuilt anyway)."""
        ...

    async def stop(self) -> None: ...


class Sink(Protocol):
    """Where Bundles, dead letters and changelog records go.

    send() returns a future resolved with the record's offset once the broker acknowledged it.
    It raises (or the future fails with) RecordTooLargeError or OutputError. ``source_partition``
    is the input partition the record comes from (a transactional sink writes it in that
    partition's transaction).
    """

    # True: offsets are committed by commit() inside the output transactions, not by the Source.
    transactional: bool

    async def start(self) -> None: ...

    async def open_partitions(self, partitions: set[int]) -> None: ...

    async def close_partitions(self, partitions: set[int]) -> None: ...

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        *,
        partition: int | None = None,
        source_partition: int,
    ) -> asyncio.Future[int]: ...

    async def send_batch(
        self,
        topic: str,
        partition: int,
        records: Sequence[tuple[bytes, bytes | None]],
        headers: Headers,
        *,
        source_partition: int,
    ) -> asyncio.Future[int]:
        """Records to one partition at once (the changelog); the future gives the last offset."""
        ...

    async def commit(self, offsets: dict[int, int]) -> None:
        """Transactional sinks: commit the open transactions with these next input offsets."""
        ...

    async def stop(self) -> None: ...


class ChangelogReader(Protocol):
    """Reads a partition of the changelog topic back (restore)."""

    async def bounds(self, partition: int) -> tuple[int, int]:
        """The partition's first offset and its end (the offset the next record would get)."""
        ...

    def read(self, partition: int, start: int, end: int) -> AsyncIterator[list[ChangelogRecord]]:
        """Batches of records from ``start`` until the position reaches ``end``."""
        ...
