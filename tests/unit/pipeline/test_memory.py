"""The C allocator settings the processor applies at start (glibc; skipped elsewhere)."""

from __future__ import annotations

import ctypes
import platform

import pytest

from streamer.memory import release_free_memory, set_mmap_threshold

glibc = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="mallopt/mallinfo2 are glibc functions"
)


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",  # bytes in mmap()ed blocks
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mapped_bytes(libc: ctypes.CDLL) -> int:
    libc.mallinfo2.restype = _MallInfo2
    return int(libc.mallinfo2().hblkhd)


@glibc
def test_a_fixed_threshold_keeps_large_blocks_mapped() -> None:
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    assert set_mmap_threshold(128 * 1024)
    # glibc would otherwise raise its threshold above a freed mapped block's size; fixed, the next
    # block of that size is mapped again (not carved from the heap).
    for _ in range(2):
        before = _mapped_bytes(libc)
        block = libc.malloc(1024 * 1024)
        assert block
        try:
            assert _mapped_bytes(libc) - before >= 1024 * 1024
        finally:
            libc.free(block)


def test_zero_leaves_the_default() -> None:
    assert set_mmap_threshold(0) is False


@glibc
def test_free_memory_can_be_released() -> None:
    assert release_free_memory() is True
