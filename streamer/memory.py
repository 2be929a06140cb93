"""Keep resident memory close to what is really held: the C allocator's settings and trims.

A burst of records (a backlog after an outage) allocates and frees many short-lived objects; glibc
keeps the freed pages in its heap, and resident memory stays at the burst's peak. Trimming after a
checkpoint returns them. glibc also raises its mmap threshold each time a large mapped block is
freed (up to 32 MiB), after which large short-lived buffers (fetched record batches, Bundles) come
from the heap and leave holes between long-lived objects there; a fixed threshold keeps them
mapped. On a C library without ``malloc_trim``/``mallopt`` this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


@functools.cache
def _libc() -> ctypes.CDLL | None:
    path = ctypes.util.find_library("c")  # runs ldconfig: once per process
    if path is None:
        return None
    try:
        return ctypes.CDLL(path)
    except OSError:
        return None


def _libc_function(name: str) -> Callable[..., int] | None:
    libc = _libc()
    function: Callable[..., int] | None = getattr(libc, name, None) if libc else None
    return function


_TRIM = _libc_function("malloc_trim")


def release_free_memory() -> bool:
    """Return free heap pages to the system; False when the C library cannot."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


def set_mmap_threshold(size: int) -> bool:
    """Fix glibc's mmap threshold at ``size`` bytes (0: leave the default); False when not applied."""
    if size <= 0:
        return False
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, size))
