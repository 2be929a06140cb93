"""Stores of every engine on tmp_path, and a helper to run Python in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer.state import KVStore, MemoryStore, RocksStore, SqliteStore

REPO = Path(__file__).resolve().parents[3]
DISK_ENGINES = ["rocksdb", "sqlite"]


def open_disk(engine: str, base: Path) -> KVStore:
    if engine == "rocksdb":
        return RocksStore(base / "db")
    return SqliteStore(base / "state.sqlite")


def spawn(code: str, *args: str) -> subprocess.Popen[str]:
    """`python -c code args...` with the working tree importable."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.fixture(params=DISK_ENGINES)
def disk_engine(request: pytest.FixtureRequest) -> str:
    engine: str = request.param
    return engine


@pytest.fixture(params=[*DISK_ENGINES, "memory"])
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KVStore]:
    store = MemoryStore() if request.param == "memory" else open_disk(request.param, tmp_path)
    yield store
    store.close()
