"""In-memory fakes of our own ports (Source, Sink) and a clock, for broker-free unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from streamer.ports import ChangelogRecord, Headers, InputRecord, RebalanceCallback
from streamer.state.changelog import SOURCE_OFFSET_HEADER


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeSource:
    """A topic with partitions; poll() hands out everything not yet delivered (or max_records)."""

    partitions: tuple[int, ...] = (0,)
    topic: str = "dicom.instances"
    log: dict[int, list[InputRecord]] = field(default_factory=dict)
    position: dict[int, int] = field(default_factory=dict)
    committed: dict[int, int] = field(default_factory=dict)
    commits: list[dict[int, int]] = field(default_factory=list)
    assigned: set[int] = field(default_factory=set)
    paused: set[int] = field(default_factory=set)
    _on_assigned: RebalanceCallback | None = None
    _on_revoked: RebalanceCallback | None = None
    stopped: bool = False
    wakes: int = 0

    def append(self, partition: int, key: bytes | None, value: bytes | None, ts_ms: int) -> int:
        records = self.log.setdefault(partition, [])
        offset = len(records)
        records.append(InputRecord(partition, offset, ts_ms, key, value))
        return offset

    async def start(self, on_assigned: RebalanceCallback, on_revoked: RebalanceCallback) -> None:
        self._on_assigned, self._on_revoked = on_assigned, on_revoked
        await self.assign(set(self.partitions))

    async def assign(self, partitions: set[int]) -> None:
        """Like a rebalance: revoke all, resume every partition from its committed offset."""
        assert self._on_assigned is not None and self._on_revoked is not None
        if self.assigned:
            await self._on_revoked(set(self.assigned))
        self.assigned = set(partitions)
        self.paused = set()  # like aiokafka: every assignment starts unpaused
        for p in partitions:
            self.position[p] = self.committed.get(p, 0)
        await self._on_assigned(set(partitions))

    async def revoke_all(self) -> None:
        """The group takes every partition away (as before a rebalance or on leaving)."""
        assert self._on_revoked is not None
        revoked, self.assigned = set(self.assigned), set()
        await self._on_revoked(revoked)

    async def poll(self, timeout_s: float, max_records: int) -> dict[int, list[InputRecord]]:
        await asyncio.sleep(0)
        out: dict[int, list[InputRecord]] = {}
        budget = max_records
        for p in sorted(self.assigned - self.paused):
            records = self.log.get(p, [])[self.position[p] : self.position[p] + budget]
            if records:
                out[p] = records
                self.position[p] += len(records)
                budget -= len(records)
        return out

    def wake(self) -> None:
        self.wakes += 1  # poll() never waits here: nothing to end

    def caught_up(self, partition: int) -> bool:
        return self.position.get(partition, 0) >= len(self.log.get(partition, []))

    def lag(self, partition: int) -> int | None:
        if partition not in self.assigned:
            return None
        return max(0, len(self.log.get(partition, [])) - self.position.get(partition, 0))

    def pause(self, partitions: set[int]) -> None:
        self.paused |= partitions

    def resume(self, partitions: set[int]) -> None:
        self.paused -= partitions

    def seek(self, partition: int, offset: int) -> None:
        self.position[partition] = offset

    async def committed_offset(self, partition: int) -> int | None:
        return self.committed.get(partition)

    async def commit(self, offsets: dict[int, int]) -> bool:
        self.commits.append(dict(offsets))
        self.committed.update(offsets)
        return True

    async def stop(self) -> None:
        self.stopped = True


@dataclass
class FakeSink:
    """Collects sent records; acks at once unless told to fail."""

    sent: list[tuple[str, bytes | None, bytes | None, dict[str, bytes]]] = field(
        default_factory=list
    )
    fail_with: BaseException | None = None
    transactional: bool = False
    # Acked records per (topic, partition); partition None when the producer would pick it by key.
    logs: dict[
        tuple[str, int | None], list[tuple[bytes | None, bytes | None, dict[str, bytes]]]
    ] = field(default_factory=dict)

    async def start(self) -> None:
        pass

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        *,
        partition: int | None = None,
        source_partition: int = 0,
    ) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if self.fail_with is not None:
            future.set_exception(self.fail_with)
            self.sent.append((topic, key, value, dict(headers)))
        else:
            future.set_result(self.record(topic, partition, key, value, headers))
        return future

    def record(
        self,
        topic: str,
        partition: int | None,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
    ) -> int:
        """Log a record as acked by the broker; returns its offset in (topic, partition)."""
        log = self.logs.setdefault((topic, partition), [])
        log.append((key, value, dict(headers)))
        self.sent.append((topic, key, value, dict(headers)))
        return len(log) - 1

    async def send_batch(
        self,
        topic: str,
        partition: int,
        records: Sequence[tuple[bytes, bytes | None]],
        headers: Headers,
        *,
        source_partition: int = 0,
    ) -> asyncio.Future[int]:
        last: asyncio.Future[int] | None = None
        for key, value in records:
            last = await self.send(
                topic, key, value, headers, partition=partition, source_partition=source_partition
            )
        assert last is not None, "an empty batch"
        return last

    async def open_partitions(self, partitions: set[int]) -> None:
        pass

    async def close_partitions(self, partitions: set[int]) -> None:
        pass

    async def commit(self, offsets: dict[int, int]) -> None:
        raise AssertionError("FakeSink is not transactional")

    async def stop(self) -> None:
        pass

    def on(self, topic: str) -> list[tuple[bytes | None, bytes | None, dict[str, bytes]]]:
        return [(k, v, h) for t, k, v, h in self.sent if t == topic]


@dataclass
class FakeChangelog:
    """Reads the changelog records a FakeSink acked, per partition (a compacted topic, uncompacted)."""

    sink: FakeSink
    topic: str = "streamer.study-state"

    def _log(self, partition: int) -> list[tuple[bytes | None, bytes | None, dict[str, bytes]]]:
        return self.sink.logs.get((self.topic, partition), [])

    async def bounds(self, partition: int) -> tuple[int, int]:
        return 0, len(self._log(partition))

    async def read(
        self, partition: int, start: int, end: int
    ) -> AsyncIterator[list[ChangelogRecord]]:
        records = self._log(partition)
        for first in range(start, end, 100):
            batch = []
            for offset in range(first, min(first + 100, end)):
                key, value, headers = records[offset]
                assert key is not None
                src = headers.get(SOURCE_OFFSET_HEADER)
                batch.append(
                    ChangelogRecord(offset, key, value, int(src) if src is not None else None)
                )
            await asyncio.sleep(0)
            yield batch
