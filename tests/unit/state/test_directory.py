"""StateDirectory: the per-group process lock (with real second processes) and per-partition stores."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from streamer.state import (
    RocksStore,
    SqliteStore,
    StateDirectory,
    StateDirectoryLockedError,
    StoreClosedError,
    StoreCorruptError,
)
from tests.unit.state.conftest import spawn

_HOLD = """
import sys, time
from pathlib import Path
from streamer.state import StateDirectory
d = StateDirectory(Path(sys.argv[1]), sys.argv[2])
print("locked", flush=True)
time.sleep(60)
"""

_TRY = """
import sys
from pathlib import Path
from streamer.state import StateDirectory
StateDirectory(Path(sys.argv[1]), sys.argv[2])
print("acquired", flush=True)
"""


def test_partition_layout(tmp_path: Path) -> None:
    with StateDirectory(tmp_path, "dicom-aggregator") as sd:
        assert (
            sd.partition_path("dicom.instances", 3)
            == tmp_path / "dicom-aggregator" / "dicom.instances-3"
        )
        assert (tmp_path / "dicom-aggregator" / ".lock").exists()
        with pytest.raises(ValueError, match="topic"):
            sd.partition_path("../etc", 0)
        with pytest.raises(ValueError, match="partition"):
            sd.partition_path("t", -1)
    for bad in ("", "..", "a/b"):
        with pytest.raises(ValueError, match="group id"):
            StateDirectory(tmp_path, bad)


def test_second_directory_in_same_process_fails(tmp_path: Path) -> None:
    first = StateDirectory(tmp_path, "g")
    try:
        with pytest.raises(StateDirectoryLockedError, match="same group id 'g'"):
            StateDirectory(tmp_path, "g")
        StateDirectory(tmp_path, "other-group").close()  # groups do not conflict
    finally:
        first.close()
    StateDirectory(tmp_path, "g").close()  # close() released it


def test_second_process_fails_fast_with_a_clear_message(tmp_path: Path) -> None:
    with StateDirectory(tmp_path, "g"):
        child = spawn(_TRY, str(tmp_path), "g")
        out, err = child.communicate(timeout=30)
    assert child.returncode != 0
    assert "acquired" not in out
    assert "StateDirectoryLockedError" in err
    assert f"state directory {tmp_path / 'g'} is in use by another streamer process" in err
    assert "same group id 'g'" in err


def test_lock_is_released_when_the_holder_is_killed(tmp_path: Path) -> None:
    holder = spawn(_HOLD, str(tmp_path), "g")
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StateDirectoryLockedError, match=rf"pid {holder.pid}\b"):
            StateDirectory(tmp_path, "g")
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=10) == -signal.SIGKILL
    finally:
        holder.kill()
        holder.communicate()
    with StateDirectory(tmp_path, "g") as sd:
        assert sd.locked


def test_open_store_per_engine_and_partition(tmp_path: Path) -> None:
    with StateDirectory(tmp_path, "g") as sd:
        rocks = sd.open_store("dicom.instances", 0)
        lite = sd.open_store("dicom.instances", 1, "sqlite")
        assert isinstance(rocks, RocksStore)
        assert isinstance(lite, SqliteStore)
        assert rocks.path == tmp_path / "g" / "dicom.instances-0" / "db"
        assert lite.path == tmp_path / "g" / "dicom.instances-1" / "state.sqlite"
        rocks.write_batch({b"k": b"0"})
        lite.write_batch({b"k": b"1"})
        rocks.close()
        lite.close()
        assert sd.partitions() == [("dicom.instances", 0), ("dicom.instances", 1)]
        with pytest.raises(ValueError, match="engine"):
            sd.open_store("dicom.instances", 0, "leveldb")  # type: ignore[arg-type]
        sd.remove_partition("dicom.instances", 1)
        assert sd.partitions() == [("dicom.instances", 0)]
    with pytest.raises(StoreClosedError):
        sd.open_store("dicom.instances", 0)


def test_switching_engine_deletes_the_other_engines_files(tmp_path: Path) -> None:
    with StateDirectory(tmp_path, "g") as sd:
        store = sd.open_store("t", 0, "rocksdb")
        store.write_batch({b"k": b"v"})
        store.close()
        lite = sd.open_store("t", 0, "sqlite")
        assert lite.get(b"k") is None
        lite.close()
        assert not (sd.partition_path("t", 0) / "db").exists()


def test_corrupt_store_is_recreated_on_request(tmp_path: Path) -> None:
    with StateDirectory(tmp_path, "g") as sd:
        store = sd.open_store("t", 0)
        store.write_batch({b"k": b"v"})
        store.close()
        (sd.partition_path("t", 0) / "db" / "CURRENT").write_text("garbage\n")
        with pytest.raises(StoreCorruptError):
            sd.open_store("t", 0)
        store = sd.open_store("t", 0, recreate_if_corrupt=True)
        assert store.get(b"k") is None
        store.close()
