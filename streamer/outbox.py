"""Sends waiting for their broker ack: offsets may be committed only once the sends before are acked.

A checkpoint `take`s the sends made so far and `wait`s for them while the loop goes on sending:
a busy loop cannot hold its commit back. `drain` waits for everything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from streamer.errors import OutputError, RecordTooLargeError
from streamer.ports import Headers, Sink

# What to do when the broker refuses a record as too large (e.g. dead-letter the study instead).
OnTooLarge = Callable[[RecordTooLargeError], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Pending:
    """One send waiting for its ack."""

    future: asyncio.Future[int]
    on_too_large: OnTooLarge | None


class Outbox:
    """Every output, dead-letter (and later changelog) send goes through here until acked.

    A refusal other than "too large" is sticky: once the broker lost one output record, nothing
    may be committed after it, so every later call raises the same OutputError.
    """

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._pending: list[Pending] = []
        self._failed: OutputError | None = None

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def failed(self) -> OutputError | None:
        return self._failed

    def check(self) -> None:
        """Raise the sticky failure, if any."""
        if self._failed is not None:
            raise self._failed

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        *,
        source_partition: int,
        partition: int | None = None,
        on_too_large: OnTooLarge | None = None,
    ) -> asyncio.Future[int] | None:
        """Hand a record to the producer; a "too large" refusal now or at ack goes to on_too_large.

        Returns the ack future (its result is the record's offset once drained), or None when the
        record was refused at once and handed to on_too_large.
        """
        self.check()
        try:
            future = await self._sink.send(
                topic, key, value, headers, partition=partition, source_partition=source_partition
            )
        except RecordTooLargeError as exc:
            if on_too_large is None:
                raise self._fail(exc) from exc
            await on_too_large(exc)
            return None
        except OutputError as exc:
            raise self._fail(exc) from exc
        self._pending.append(Pending(future, on_too_large))
        return future

    async def send_batch(
        self,
        topic: str,
        partition: int,
        records: Sequence[tuple[bytes, bytes | None]],
        headers: Headers,
        *,
        source_partition: int,
    ) -> asyncio.Future[int]:
        """Many records to one partition; any refusal is an OutputError (no "too large" path)."""
        self.check()
        try:
            future = await self._sink.send_batch(
                topic, partition, records, headers, source_partition=source_partition
            )
        except (RecordTooLargeError, OutputError) as exc:
            raise self._fail(exc) from exc
        self._pending.append(Pending(future, None))
        return future

    async def drain(self) -> None:
        """Wait for every ack (including sends made by on_too_large callbacks meanwhile)."""
        self.check()
        while self._pending:
            await self.wait(self.take())

    def take(self) -> list[Pending]:
        """The sends made so far, for `wait`; later sends are the next taker's."""
        pending, self._pending = self._pending, []
        return pending

    async def wait(self, sends: list[Pending]) -> None:
        """Wait for the acks of `sends` (from `take`); raise the sticky OutputError on a refusal.

        A refusal raises as soon as it comes, without waiting for the other acks. A "too large"
        refusal runs its on_too_large callback; what the callback sends is waited for too (with
        every send made meanwhile: a superset). Cancelling the wait leaves the sends be.
        """
        self.check()
        while sends:
            waiting = [p.future for p in sends if not p.future.done()]
            if waiting and not any(_failed(p.future) for p in sends):
                await asyncio.wait(waiting, return_when=asyncio.FIRST_EXCEPTION)
            remaining: list[Pending] = []
            failure: BaseException | None = None
            retried = False
            for item in sends:
                if not item.future.done():
                    remaining.append(item)
                    continue
                outcome = _outcome(item.future)  # retrieve every outcome, so none goes unseen
                if outcome is None or failure is not None:
                    continue
                if isinstance(outcome, RecordTooLargeError) and item.on_too_large is not None:
                    await item.on_too_large(outcome)
                    retried = True
                    continue
                failure = outcome
            if failure is not None:
                for item in remaining:
                    item.future.add_done_callback(_outcome)
                raise self._fail(failure)
            sends = remaining + (self.take() if retried else [])

    def _fail(self, exc: BaseException) -> OutputError:
        failure = exc if isinstance(exc, OutputError) else OutputError(f"output refused: {exc!r}")
        if failure is not exc:
            failure.__cause__ = exc
        self._failed = failure
        return failure


def _outcome(future: asyncio.Future[int]) -> BaseException | None:
    if future.cancelled():
        return OutputError("send cancelled before its ack")
    return future.exception()


def _failed(future: asyncio.Future[int]) -> bool:
    return future.done() and (future.cancelled() or future.exception() is not None)
