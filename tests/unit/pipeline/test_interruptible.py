"""Interruptible: an await that interrupt() cuts short, and nothing else does."""

from __future__ import annotations

import asyncio

import pytest

from streamer.interruptible import Interruptible


async def _forever() -> int:
    await asyncio.Event().wait()
    return 1


async def _soon(value: int) -> int:
    await asyncio.sleep(0)
    return value


async def test_interrupt_returns_the_default() -> None:
    cut = Interruptible()
    run = asyncio.ensure_future(cut.run(_forever(), -1))
    await asyncio.sleep(0.01)
    cut.interrupt()
    assert await asyncio.wait_for(run, 5) == -1


async def test_an_await_that_ends_returns_its_result() -> None:
    cut = Interruptible()
    assert await cut.run(_soon(7), -1) == 7
    assert await cut.run(_soon(8), -1) == 8


async def test_an_interrupt_while_nothing_runs_cuts_the_next_run_once() -> None:
    # A stop that comes while the poll does something else first must not wait for its wait.
    cut = Interruptible()
    cut.interrupt()
    assert await asyncio.wait_for(cut.run(_forever(), -1), 5) == -1
    assert await cut.run(_soon(9), -1) == 9


async def test_a_cancellation_from_outside_still_propagates() -> None:
    cut = Interruptible()
    run = asyncio.ensure_future(cut.run(_forever(), -1))
    await asyncio.sleep(0.01)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run


async def test_an_error_of_the_await_propagates() -> None:
    async def fails() -> int:
        await asyncio.sleep(0)
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        await Interruptible().run(fails(), -1)
