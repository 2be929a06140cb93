"""An await that a stop can cut short: a poll waits up to its timeout, and a stop should not."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


class Interruptible:
    """Runs one await at a time as a task that ``interrupt()`` cancels.

    Cut short, ``run`` returns its ``default`` instead of raising; a cancellation of the caller
    itself still propagates. An interrupt while nothing runs (a stop while the poll does something
    else first) cuts the next run instead, once. A poll cut this way may have taken records from
    the client: they are not handled, so their offsets are not committed, and whoever reads the
    partition next reads them again.
    """

    def __init__(self) -> None:
        self._running: asyncio.Future[Any] | None = None
        self._pending = False  # interrupted while nothing ran: the next run returns at once

    async def run(self, awaitable: Awaitable[T], default: T) -> T:
        task = asyncio.ensure_future(awaitable)
        if self._pending:
            self._pending = False
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return default
        self._running = task
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or not current.cancelling()):
                return default  # interrupted, not cancelled from outside
            raise
        finally:
            self._running = None

    def interrupt(self) -> None:
        """Cut the running await short, or the next one if none runs (a done one keeps its
        result)."""
        if self._running is not None:
            self._running.cancel()
        else:
            self._pending = True
