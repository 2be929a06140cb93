"""The KVStore engines behave alike: RocksDB, SQLite and the in-memory one."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from streamer.state import (
    KVStore,
    RocksConfig,
    RocksStore,
    SqliteStore,
    StoreClosedError,
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    prefix_upper_bound,
    shared_resources,
)
from tests.unit.state.conftest import open_disk, spawn


def test_put_get_delete(kv: KVStore) -> None:
    kv.write_batch({b"a": b"1", b"b": b"2"})
    assert kv.get(b"a") == b"1"
    assert kv.get(b"missing") is None
    kv.write_batch({b"a": None, b"b": b"22", b"never-there": None})
    assert kv.get(b"a") is None
    assert kv.get(b"b") == b"22"


def test_values_are_exact_bytes(kv: KVStore) -> None:
    value = bytes(range(256)) * 8
    kv.write_batch({b"\x00k\xff": value, b"empty": b""})
    assert kv.get(b"\x00k\xff") == value
    assert kv.get(b"empty") == b""


def test_iter_prefix_is_sorted_and_bounded(kv: KVStore) -> None:
    keys = [
        b"i|1.2|9",
        b"i|1.2|10",
        b"i|1.2|",
        b"i|1.2|\xff\xff",
        b"i|1.20|x",  # starts with "i|1.2" but not with "i|1.2|"
        b"i|1.2}",
        b"i|1.1|z",
        b"s|1.2",
    ]
    kv.write_batch({k: k[::-1] for k in reversed(keys)})
    got = list(kv.iter_prefix(b"i|1.2|"))
    assert got == [(k, k[::-1]) for k in [b"i|1.2|", b"i|1.2|10", b"i|1.2|9", b"i|1.2|\xff\xff"]]
    assert [k for k, _ in kv.iter_prefix(b"")] == sorted(keys)
    assert list(kv.iter_prefix(b"x|")) == []


def test_iter_prefix_pages_through_many_rows(kv: KVStore) -> None:
    batch: dict[bytes, bytes | None] = {b"i|9|%05d" % n: b"v%d" % n for n in range(1300)}
    batch[b"i|8|0"] = b"before"
    batch[b"i|9}"] = b"after"
    kv.write_batch(batch)
    got = list(kv.iter_prefix(b"i|9|"))
    assert len(got) == 1300
    assert got == sorted(got)
    assert got[0] == (b"i|9|00000", b"v0")
    assert got[-1] == (b"i|9|01299", b"v1299")


def test_prefix_upper_bound() -> None:
    assert prefix_upper_bound(b"i|1.2|") == b"i|1.2}"
    assert prefix_upper_bound(b"a\xff") == b"b"
    assert prefix_upper_bound(b"\xff\xff") is None
    assert prefix_upper_bound(b"") is None


def test_wipe_empties_and_stays_usable(kv: KVStore) -> None:
    kv.write_batch({b"a": b"1", b"m|x": b"2"})
    kv.wipe()
    assert list(kv.iter_prefix(b"")) == []
    kv.write_batch({b"b": b"3"})
    assert kv.get(b"b") == b"3"


def test_closed_store_refuses_use(kv: KVStore) -> None:
    kv.close()
    kv.close()  # idempotent
    assert kv.closed
    with pytest.raises(StoreClosedError):
        kv.get(b"a")
    with pytest.raises(StoreClosedError):
        kv.write_batch({b"a": b"1"})
    with pytest.raises(StoreClosedError):
        list(kv.iter_prefix(b""))


def test_reopen_keeps_data(disk_engine: str, tmp_path: Path) -> None:
    kv = open_disk(disk_engine, tmp_path)
    kv.write_batch({b"i|1|%d" % n: b"x" * 1000 for n in range(500)})
    kv.write_batch({b"i|1|7": None})
    kv.close()
    kv = open_disk(disk_engine, tmp_path)
    try:
        assert len(list(kv.iter_prefix(b"i|1|"))) == 499
        assert kv.get(b"i|1|7") is None
        assert kv.get(b"i|1|8") == b"x" * 1000
    finally:
        kv.close()


def test_destroy_deletes_files(disk_engine: str, tmp_path: Path) -> None:
    kv = open_disk(disk_engine, tmp_path)
    kv.write_batch({b"a": b"1"})
    kv.destroy()
    assert kv.closed
    assert list(tmp_path.iterdir()) == []


_WRITER = """
import sys
from pathlib import Path
from streamer.state import RocksStore, SqliteStore

engine, base = sys.argv[1], Path(sys.argv[2])
kv = RocksStore(base / "db") if engine == "rocksdb" else SqliteStore(base / "state.sqlite")
gen = 0
while True:
    gen += 1
    value = b"%d." % gen * 40
    batch = {b"k%04d" % i: value for i in range(300)}
    if gen % 2:  # odd generations delete the upper half
        batch.update({b"k%04d" % i: None for i in range(150, 300)})
    batch[b"gen"] = b"%d" % gen
    kv.write_batch(batch)
    if gen == 5:
        print("ready", flush=True)
"""


def test_batch_is_atomic_across_kill_9(disk_engine: str, tmp_path: Path) -> None:
    child = spawn(_WRITER, disk_engine, str(tmp_path))
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        child.kill()
        child.communicate()
    kv = open_disk(disk_engine, tmp_path)
    try:
        raw = kv.get(b"gen")
        assert raw is not None
        gen = int(raw)
        assert gen >= 5
        value = b"%d." % gen * 40
        assert [kv.get(b"k%04d" % i) for i in range(150)] == [value] * 150
        upper = [kv.get(b"k%04d" % i) for i in range(150, 300)]
        assert upper == ([None] * 150 if gen % 2 else [value] * 150)
    finally:
        kv.close()


def test_rocksdb_second_open_in_process_is_locked(tmp_path: Path) -> None:
    kv = RocksStore(tmp_path / "db")
    try:
        with pytest.raises(StoreLockedError, match="LOCK"):
            RocksStore(tmp_path / "db")
    finally:
        kv.close()
    RocksStore(tmp_path / "db").close()  # the close released RocksDB's LOCK


def test_rocksdb_corrupt_store_is_reported(tmp_path: Path) -> None:
    RocksStore(tmp_path / "db").close()
    (tmp_path / "db" / "CURRENT").write_text("garbage\n")
    with pytest.raises(StoreCorruptError, match=str(tmp_path / "db")):
        RocksStore(tmp_path / "db")


def test_sqlite_corrupt_store_is_reported(tmp_path: Path) -> None:
    (tmp_path / "state.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreCorruptError, match=r"state\.sqlite"):
        SqliteStore(tmp_path / "state.sqlite")


def test_shared_rocks_budget_cannot_change() -> None:
    current = shared_resources()
    assert shared_resources(current.config) is current
    with pytest.raises(StoreError, match="already set"):
        shared_resources(RocksConfig(block_cache_bytes=current.config.block_cache_bytes + 1))


def test_write_while_a_scan_is_open(kv: KVStore) -> None:
    kv.write_batch({b"i|1|%04d" % n: b"v" for n in range(1200)})
    scan = kv.iter_prefix(b"i|1|")
    first = [next(scan) for _ in range(600)]
    kv.write_batch({b"i|2|x": b"w"})  # must not fail, e.g. on an open SQLite read transaction
    rest = list(scan)
    assert first[0][0] == b"i|1|0000"
    assert len(first) + len(rest) == 1200
    assert kv.get(b"i|2|x") == b"w"


def test_close_ends_open_scans(kv: KVStore) -> None:
    kv.write_batch({b"a": b"1", b"b": b"2"})
    scan = kv.iter_prefix(b"")
    assert next(scan) == (b"a", b"1")
    done = kv.iter_prefix(b"b")
    assert list(done) == [(b"b", b"2")]
    kv.close()
    with pytest.raises(StoreClosedError):
        next(scan)
    assert list(done) == []  # an exhausted scan stays exhausted


def test_open_scan_does_not_keep_the_store_open(disk_engine: str, tmp_path: Path) -> None:
    kv = open_disk(disk_engine, tmp_path)
    kv.write_batch({b"a": b"1", b"b": b"2"})
    scan = kv.iter_prefix(b"")
    assert next(scan) == (b"a", b"1")
    kv.close()
    # A live native iterator would keep RocksDB open: StoreLockedError here.
    kv = open_disk(disk_engine, tmp_path)
    assert kv.get(b"b") == b"2"
    kv.close()
    assert scan is not None
