"""The byte-level key-value store behind each partition's state, and an in-memory implementation.

Engines: `RocksStore` (rocks.py, the default) and `SqliteStore` (sqlite.py, the fallback), both on
local disk; `MemoryStore` here for unit tests of code above the store. Keys sort as unsigned bytes in
all three, so prefix scans come back in the same order whatever the engine.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from streamer.state.errors import StoreClosedError


@runtime_checkable
class KVStore(Protocol):
    """Bytes in, bytes out. Not thread-safe: one user at a time (the partition's lane)."""

    @property
    def path(self) -> Path | None:
        """Where the files are (None for memory)."""
        ...

    @property
    def closed(self) -> bool: ...

    def get(self, key: bytes) -> bytes | None:
        """The stored value, or None."""
        ...

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) whose key starts with `prefix`, sorted by key.

        Do not write to the store while iterating: the engines differ in what the rest of the
        iteration then sees (RocksDB: a snapshot; SQLite: pages of the live table).
        """
        ...

    def write_batch(self, puts: Mapping[bytes, bytes | None]) -> None:
        """Apply all puts (None = delete) atomically: after a crash, all or none are there."""
        ...

    def wipe(self) -> None:
        """Delete all data and stay open, empty (a full rebuild follows)."""
        ...

    def destroy(self) -> None:
        """Close and delete the store's files."""
        ...

    def close(self) -> None:
        """Release the files; idempotent. Unflushed writes survive a process crash, not power loss."""
        ...


def prefix_upper_bound(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix` (None: no bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))


class MemoryStore:
    """A dict plus a sorted key list; for tests. Same semantics as the disk stores, no durability."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []
        self._closed = False

    @property
    def path(self) -> Path | None:
        return None

    @property
    def closed(self) -> bool:
        return self._closed

    def _check(self) -> None:
        if self._closed:
            raise StoreClosedError("memory store is closed")

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: bytes) -> bytes | None:
        self._check()
        return self._data.get(key)

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        self._check()
        lo = bisect_left(self._keys, prefix)
        upper = prefix_upper_bound(prefix)
        hi = len(self._keys) if upper is None else bisect_left(self._keys, upper)
        # A copy, so that writes during iteration cannot shift the slice under us.
        return self._scan([(k, self._data[k]) for k in self._keys[lo:hi]])

    def _scan(self, items: list[tuple[bytes, bytes]]) -> Iterator[tuple[bytes, bytes]]:
        for item in items:
            self._check()
            yield item

    def write_batch(self, puts: Mapping[bytes, bytes | None]) -> None:
        self._check()
        for key, value in puts.items():
            if value is None:
                if self._data.pop(key, None) is not None:
                    del self._keys[bisect_left(self._keys, key)]
            else:
                if key not in self._data:
                    insort(self._keys, key)
                self._data[key] = value

    def wipe(self) -> None:
        self._check()
        self._data.clear()
        self._keys.clear()

    def destroy(self) -> None:
        self._data.clear()
        self._keys.clear()
        self._closed = True

    def close(self) -> None:
        self._closed = True
