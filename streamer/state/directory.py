"""The state directory of one consumer group: a process lock and one store per input partition.

    <root>/<group>/.lock                        flock, held for the process lifetime
    <root>/<group>/<topic>-<partition>/db/      RocksDB
    <root>/<group>/<topic>-<partition>/state.sqlite (+ -wal, -shm)   SQLite

The flock dies with its process, so a kill -9 leaves no stale lock (unlike a PID file). It is per
open file description: a second `StateDirectory` on the same group fails even in the same process.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
from pathlib import Path
from types import TracebackType
from typing import Literal

from streamer.state.errors import StateDirectoryLockedError, StoreClosedError, StoreCorruptError
from streamer.state.kv import KVStore
from streamer.state.rocks import RocksConfig, RocksStore, shared_resources
from streamer.state.sqlite import SqliteConfig, SqliteStore

Engine = Literal["rocksdb", "sqlite"]

_log = logging.getLogger(__name__)

_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")  # Kafka's legal topic names
_ROCKS_DIR = "db"
_SQLITE_FILE = "state.sqlite"


def _check_group(group_id: str) -> None:
    if group_id in ("", ".", "..") or "/" in group_id or "\0" in group_id:
        raise ValueError(f"group id {group_id!r} cannot name a state directory")


class StateDirectory:
    """Locks `<root>/<group>` at construction; `close()` (or process exit) releases it."""

    def __init__(
        self,
        root: Path,
        group_id: str,
        *,
        rocks: RocksConfig | None = None,
        sqlite: SqliteConfig | None = None,
    ) -> None:
        _check_group(group_id)
        self.root = root
        self.group_id = group_id
        self.group_dir = root / group_id
        self._rocks = rocks
        self._sqlite = sqlite
        self.group_dir.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = self._lock()

    def _lock(self) -> int:
        # os.open's descriptors are not inherited by subprocesses, so a child never keeps it.
        fd = os.open(self.group_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or None
            os.close(fd)
            raise StateDirectoryLockedError(self.group_dir, self.group_id, holder) from None
        except BaseException:
            os.close(fd)
            raise
        # Our PID, for the error message of the next process; only informative.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    @property
    def locked(self) -> bool:
        return self._fd is not None

    def close(self) -> None:
        """Release the lock (close every store first)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> StateDirectory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def partition_path(self, topic: str, partition: int) -> Path:
        if not _TOPIC.fullmatch(topic) or topic in (".", ".."):
            raise ValueError(f"{topic!r} is not a Kafka topic name")
        if partition < 0:
            raise ValueError(f"partition {partition} < 0")
        return self.group_dir / f"{topic}-{partition}"

    def open_store(
        self,
        topic: str,
        partition: int,
        engine: Engine = "rocksdb",
        *,
        recreate_if_corrupt: bool = False,
    ) -> KVStore:
        """Open (or create) the partition's store.

        Files of the other engine are deleted: they cannot be read, and the changelog rebuilds
        the state. With `recreate_if_corrupt`, a corrupt store is deleted and opened empty (its
        metadata is then empty too, which calls for a rebuild); otherwise `StoreCorruptError`.
        """
        if engine not in ("rocksdb", "sqlite"):
            raise ValueError(f"unknown state store engine {engine!r}")
        if self._fd is None:
            raise StoreClosedError(f"state directory {self.group_dir} is closed")
        base = self.partition_path(topic, partition)
        self._remove_other_engine(base, engine)
        try:
            return self._open(base, engine)
        except StoreCorruptError as exc:
            if not recreate_if_corrupt:
                raise
            _log.warning(
                "corrupt state store deleted; it will be rebuilt from the changelog",
                extra={"path": str(base), "error": str(exc)},
            )
            self._delete_engine_files(base, engine)
            return self._open(base, engine)

    def _open(self, base: Path, engine: Engine) -> KVStore:
        if engine == "rocksdb":
            return RocksStore(base / _ROCKS_DIR, shared_resources(self._rocks))
        return SqliteStore(base / _SQLITE_FILE, self._sqlite)

    @staticmethod
    def _delete_engine_files(base: Path, engine: Engine) -> None:
        if engine == "rocksdb":
            shutil.rmtree(base / _ROCKS_DIR, ignore_errors=True)
        else:
            for suffix in ("", "-wal", "-shm", "-journal"):
                (base / f"{_SQLITE_FILE}{suffix}").unlink(missing_ok=True)

    def _remove_other_engine(self, base: Path, engine: Engine) -> None:
        other: Engine = "sqlite" if engine == "rocksdb" else "rocksdb"
        marker = base / (_SQLITE_FILE if other == "sqlite" else _ROCKS_DIR)
        if marker.exists():
            _log.warning(
                "deleting a state store of the other engine",
                extra={"path": str(base), "engine": engine, "other": other},
            )
            self._delete_engine_files(base, other)

    def remove_partition(self, topic: str, partition: int) -> None:
        """Delete a partition's directory (its store must be closed)."""
        shutil.rmtree(self.partition_path(topic, partition), ignore_errors=True)

    def partitions(self) -> list[tuple[str, int]]:
        """(topic, partition) of every partition directory present, sorted."""
        found: list[tuple[str, int]] = []
        with contextlib.suppress(FileNotFoundError):
            for entry in self.group_dir.iterdir():
                topic, sep, num = entry.name.rpartition("-")
                if entry.is_dir() and sep and num.isdigit() and _TOPIC.fullmatch(topic):
                    found.append((topic, int(num)))
        return sorted(found)
