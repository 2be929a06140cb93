"""Give freed heap memory back to the system, so resident memory follows what is really held.

A burst of records (a backlog after an outage) allocates and frees many short-lived objects; glibc
keeps the freed pages in its heap, and resident memory stays at the burst's peak. Trimming after a
checkpoint returns them. On a C library without ``malloc_trim`` this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def _load_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _load_trim()


def release_free_memory() -> bool:
    """Return free heap pages to the system; False when the C library cannot."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
