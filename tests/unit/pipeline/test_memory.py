"""The C allocator settings the processor applies at start (glibc; skipped elsewhere)."""

from __future__ import annotations

import gc
import platform
import subprocess
import sys

import pytest

from streamer import memory
from streamer.memory import release_free_memory, set_mmap_threshold

glibc = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="mallopt/mallinfo2 are glibc functions"
)


# Run in a fresh interpreter: malloc serves a request from free heap space when it has some, and
# the test process's heap has plenty after other tests; the threshold decides only beyond that.
_PROBE = """
import ctypes, sys
from streamer.memory import set_mmap_threshold

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "fixed":
    assert set_mmap_threshold(128 * 1024)
for _ in range(2):
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(1024 * 1024)
    print(libc.mallinfo2().hblkhd - before)
    libc.free(block)
"""


def _mapped_per_round(mode: str) -> list[int]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return [int(line) for line in done.stdout.split()]


@glibc
def test_a_fixed_threshold_keeps_large_blocks_mapped() -> None:
    # glibc's default raises its threshold above a freed mapped block's size: the next block of
    # that size comes from the heap. Fixed, it is mapped again (and unmapped when freed).
    default = _mapped_per_round("default")
    assert default[0] >= 1024 * 1024 and default[1] == 0
    fixed = _mapped_per_round("fixed")
    assert all(mapped >= 1024 * 1024 for mapped in fixed)


def test_zero_leaves_the_default() -> None:
    assert set_mmap_threshold(0) is False


@glibc
def test_free_memory_can_be_released() -> None:
    assert release_free_memory() is True


def test_the_heap_is_released_after_a_burst_and_then_each_idle_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    trims: list[float] = []
    collections: list[float] = []

    def trim() -> bool:
        trims.append(now[0])
        return True

    def collect() -> int:
        collections.append(now[0])
        return 0

    monkeypatch.setattr(memory, "release_free_memory", trim)
    monkeypatch.setattr(gc, "collect", collect)
    heap = memory.HeapReleaser(lambda: now[0])
    heap.after_round(busy=True, settled=False)
    heap.after_round(busy=False, settled=False)  # idle, but the burst's checkpoint is not written
    assert trims == []
    heap.after_round(busy=False, settled=True)
    assert trims == collections == [1000.0]  # a full collection, then the trim
    for _ in range(12):  # each idle second for AFTER_BURST_TRIMS_S, then no more
        now[0] += 1
        heap.after_round(busy=False, settled=True)
    assert len(trims) == 1 + int(memory.AFTER_BURST_TRIMS_S) - 1
    assert collections == [1000.0]
    heap.after_checkpoint()  # the periodic trim waits PERIODIC_TRIM_S since the last one
    assert len(trims) == int(memory.AFTER_BURST_TRIMS_S)
    now[0] += memory.PERIODIC_TRIM_S
    heap.after_checkpoint()
    assert len(trims) == int(memory.AFTER_BURST_TRIMS_S) + 1
