"""`python -m streamer` with a memory probe, for bench/memory.py and bench/soak.py (not for production use).

Runs the `streamer` package found on sys.path exactly as `python -m streamer` does (runpy), after
installing a SIGUSR2 handler that appends one JSON line to $BENCH_MALLINFO_OUT: VmRSS and glibc's
mallinfo2() (heap size, bytes in use, bytes free), then calls malloc_trim(0) (hands free heap pages
back to the kernel) and reports VmRSS and mallinfo2() again. That tells memory the process uses
from memory glibc merely keeps after freeing it. The handler runs between bytecodes of the main
thread; the streamer's own code is unchanged.

With $BENCH_TRACEMALLOC_DIR set (bench/soak.py --tracemalloc), tracemalloc traces every Python
allocation from the start (slow: a diagnosis run, not a measurement) and each SIGUSR1 dumps a
snapshot to that dir as `<n>.snap`; the bench diffs two of them to find what grows.
"""

from __future__ import annotations

import ctypes
import json
import os
import runpy
import signal
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any


class _MallInfo2(ctypes.Structure):
    _fields_ = [  # the ctypes layout of struct mallinfo2
        (name, ctypes.c_size_t)
        for name in (
            "arena",  # bytes of the heaps (main brk heap and thread arenas)
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",  # bytes in mmap()ed blocks
            "usmblks",
            "fsmblks",
            "uordblks",  # bytes in use
            "fordblks",  # bytes free in the heaps
            "keepcost",
        )
    ]


_libc = ctypes.CDLL("libc.so.6")
_libc.mallinfo2.restype = _MallInfo2
_libc.malloc_trim.argtypes = [ctypes.c_size_t]


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def _snapshot() -> dict[str, int]:
    m = _libc.mallinfo2()
    return {
        "rss_kib": _rss_kib(),
        "heap_bytes": m.arena,
        "in_use_bytes": m.uordblks,
        "free_bytes": m.fordblks,
        "mmapped_bytes": m.hblkhd,
    }


def _rocks_usage() -> dict[str, int] | None:
    """Block cache and memtable bytes of the process's shared RocksDB resources, if any.

    Read from the module that holds them (`streamer.state.rocks._shared`), so the streamer needs no
    hook for the bench. (Not through the garbage collector: after the first Bundle the streamer
    freezes its long-lived objects with gc.freeze(), and gc.get_objects() no longer lists them.)
    """
    module = sys.modules.get("streamer.state.rocks")
    shared = getattr(module, "_shared", None)
    if shared is None or not hasattr(shared, "usage"):
        return None
    return dict(shared.usage())


def _probe(_signum: int, _frame: object) -> None:
    rocks = _rocks_usage()
    before = _snapshot()
    started = time.perf_counter()
    _libc.malloc_trim(0)
    doc: dict[str, Any] = {
        "t": time.time(),
        "before": before,
        "after_trim": _snapshot(),
        "trim_s": time.perf_counter() - started,
        "rocks": rocks,
    }
    with open(os.environ["BENCH_MALLINFO_OUT"], "a") as f:
        f.write(json.dumps(doc) + "\n")


_snapshots = 0


def _dump_snapshot(_signum: int, _frame: object) -> None:
    global _snapshots
    _snapshots += 1
    path = Path(os.environ["BENCH_TRACEMALLOC_DIR"]) / f"{_snapshots}.snap"
    tracemalloc.take_snapshot().dump(str(path.with_suffix(".tmp")))
    path.with_suffix(".tmp").rename(path)  # whole files only, for the reader


def main() -> None:
    signal.signal(signal.SIGUSR2, _probe)
    if os.environ.get("BENCH_TRACEMALLOC_DIR"):
        tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "8")))
        signal.signal(signal.SIGUSR1, _dump_snapshot)
    sys.argv = ["streamer"]
    runpy.run_module("streamer", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
