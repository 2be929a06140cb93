"""SQLite (stdlib) as the fallback engine: WAL, synchronous=NORMAL, a rowid table kv(k, v).

A rowid table with a BLOB primary key, not WITHOUT ROWID: with ~1 KB values and 4 KiB pages the
latter spills rows to overflow pages (measured: about 4x slower writes and 3x the disk). BLOB keys
compare with memcmp, so the key order is the same as RocksDB's. SQLite has no process lock of its
own worth relying on here; `StateDirectory`'s flock keeps a second process out.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from streamer.state.errors import StoreClosedError, StoreCorruptError, StoreError, StoreLockedError
from streamer.state.kv import prefix_upper_bound

_SCAN_PAGE = 512  # rows per query of a prefix scan; no statement stays open between pages


@dataclass(frozen=True, slots=True)
class SqliteConfig:
    cache_bytes: int = 8 * 1024 * 1024  # per store: SQLite connections share no page cache
    busy_timeout_ms: int = 0  # a lock held elsewhere fails at once instead of stalling the lane


def _translate(exc: sqlite3.Error, path: Path, action: str) -> StoreError:
    text = str(exc)
    msg = f"SQLite store {path}: {action} failed: {text}"
    if "not a database" in text or "malformed" in text:
        return StoreCorruptError(msg)
    if "locked" in text or "busy" in text:
        return StoreLockedError(msg)
    return StoreError(msg)


class SqliteStore:
    """A `KVStore` in one SQLite file (plus its -wal and -shm files)."""

    def __init__(self, path: Path, config: SqliteConfig | None = None) -> None:
        self._path = path
        self._config = config or SqliteConfig()
        self._conn: sqlite3.Connection | None = self._open()

    def _open(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; write_batch issues BEGIN/COMMIT itself.
        # check_same_thread=False: the caller may move store calls to an executor thread.
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._config.busy_timeout_ms)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"SQLite store {self._path}: cannot switch to WAL (got {mode})")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA cache_size = {-(int(self._config.cache_bytes) // 1024)}")
            conn.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL)")
        except sqlite3.Error as exc:
            conn.close()
            raise _translate(exc, self._path, "open") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreClosedError(f"SQLite store {self._path} is closed")
        return self._conn

    @property
    def path(self) -> Path:
        return self._path

    @property
    def closed(self) -> bool:
        return self._conn is None

    def get(self, key: bytes) -> bytes | None:
        conn = self._live()
        try:
            row = conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise _translate(exc, self._path, "read") from exc
        return None if row is None else bytes(row[0])

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        # Keyset pages: each query runs to completion, so no read transaction stays open while
        # the caller holds the generator (that would block write_batch's BEGIN on this connection).
        upper = prefix_upper_bound(prefix)
        where = "k >= ?" if upper is None else "k >= ? AND k < ?"
        first = f"SELECT k, v FROM kv WHERE {where} ORDER BY k LIMIT {_SCAN_PAGE}"
        nxt = f"SELECT k, v FROM kv WHERE k > ? {'' if upper is None else 'AND k < ?'} ORDER BY k LIMIT {_SCAN_PAGE}"
        bounds: tuple[bytes, ...] = () if upper is None else (upper,)
        sql, params = first, (prefix, *bounds)
        while True:
            conn = self._live()
            try:
                rows: list[tuple[bytes, bytes]] = conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise _translate(exc, self._path, "scan") from exc
            for row in rows:
                if self._conn is None:
                    raise StoreClosedError(f"SQLite store {self._path} was closed during a scan")
                yield row
            if len(rows) < _SCAN_PAGE:
                return
            sql, params = nxt, (rows[-1][0], *bounds)

    def write_batch(self, puts: Mapping[bytes, bytes | None]) -> None:
        conn = self._live()
        deletes = [(k,) for k, v in puts.items() if v is None]
        upserts = [(k, v) for k, v in puts.items() if v is not None]
        try:
            conn.execute("BEGIN")
            try:
                if deletes:
                    conn.executemany("DELETE FROM kv WHERE k = ?", deletes)
                if upserts:
                    # An upsert keeps the rowid; INSERT OR REPLACE would delete and re-insert.
                    conn.executemany(
                        "INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                        upserts,
                    )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise _translate(exc, self._path, "write") from exc

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _delete_files(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self._path}{suffix}").unlink(missing_ok=True)

    def wipe(self) -> None:
        self._live()
        self.close()
        self._delete_files()
        self._conn = self._open()

    def destroy(self) -> None:
        self.close()
        self._delete_files()
