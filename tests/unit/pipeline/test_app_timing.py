"""The loop's timing: the poll wakes at the next inactivity deadline, small studies build inline, sweeps are rate-limited."""

from __future__ import annotations

import gc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from streamer.ports import InputRecord
from tests.fakes import FakeClock, FakeSource
from tests.unit.pipeline.test_app import TIMEOUT_S, Disk, bundles, make, put_study, started


class TimedSource(FakeSource):
    """Records the timeout of every poll."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float] = []

    async def poll(self, timeout_s: float, max_records: int) -> dict[int, list[InputRecord]]:
        self.timeouts.append(timeout_s)
        return await super().poll(timeout_s, max_records)


@pytest.fixture
def disk(tmp_path: Path) -> Disk:
    return Disk(tmp_path)


async def test_poll_wakes_up_at_the_next_inactivity_deadline(disk: Disk) -> None:
    clock = FakeClock()
    source = TimedSource()
    put_study(source, clock, 1, 2, marker=False)
    proc, sink = make(source, clock, disk=disk, timer_interval_seconds=1.0)
    await started(proc)
    await proc.step()  # reads the open study
    assert source.timeouts[-1] == 1.0  # nothing open yet when that poll started
    clock.advance(TIMEOUT_S - 0.3)
    await proc.step()
    assert source.timeouts[-1] == pytest.approx(0.3)  # not the whole timer interval
    clock.advance(0.3)
    await proc.step()
    assert list(bundles(sink)) == [study_uid_1()]
    await proc.step()
    assert source.timeouts[-1] == 1.0  # nothing open: back to the timer interval


async def test_poll_timeout_has_a_floor_when_a_deadline_passed(disk: Disk) -> None:
    clock = FakeClock()
    source = TimedSource()
    put_study(source, clock, 1, 2, marker=False)
    proc, _ = make(source, clock, disk=disk, timer_interval_seconds=1.0)
    await started(proc)
    await proc.step()
    # The deadline is in the past but the study is still open (the clock moved during the step):
    # the next poll still waits a little instead of spinning.
    clock.advance(TIMEOUT_S + 5)
    assert proc._poll_timeout() == pytest.approx(0.01)


def study_uid_1() -> str:
    from tests.dicom_factory import study_uid

    return study_uid(1)


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.jobs = 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.jobs += 1
        return super().submit(fn, *args, **kwargs)


async def test_small_studies_are_built_on_the_loop_large_ones_in_the_worker(disk: Disk) -> None:
    from streamer.publishing import INLINE_BUILD_MAX_INSTANCES

    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 3)
    put_study(source, clock, 2, INLINE_BUILD_MAX_INSTANCES + 1)
    executor = CountingExecutor()
    proc, sink = make(source, clock, executor=executor, disk=disk)
    await started(proc)
    for _ in range(3):
        await proc.step()
    assert len(bundles(sink)) == 2
    assert executor.jobs == 1  # only the large study went to the worker thread


async def test_retention_sweep_runs_at_most_once_a_second(
    disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamer.aggregate import PartitionState

    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 1)
    proc, _ = make(source, clock, disk=disk, state_retention_days=1.0)
    await started(proc)
    await proc.step()  # the first round sweeps
    calls: list[int] = []
    real = PartitionState.expire

    def counting(self: PartitionState, now_ms: int, limit: int) -> list[str]:
        calls.append(now_ms)
        return real(self, now_ms, limit)

    monkeypatch.setattr(PartitionState, "expire", counting)
    for _ in range(5):
        await proc.step()
    assert calls == []  # within the second after the last sweep
    clock.advance(1.0)
    await proc.step()
    assert len(calls) == 1


async def test_warm_objects_leave_the_collectors_view_after_the_first_bundle(
    disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    freezes: list[int] = []
    monkeypatch.setattr(gc, "freeze", lambda: freezes.append(1))
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2, marker=True)
    proc, sink = make(source, clock, disk=disk)
    await started(proc)
    assert freezes == []  # nothing published yet
    await proc.step()
    assert list(bundles(sink)) == [study_uid_1()]
    assert freezes == [1]
    put_study(source, clock, 2, 2, marker=True)
    await proc.step()
    assert len(list(bundles(sink))) == 2
    assert freezes == [1]  # once, not after every Bundle
