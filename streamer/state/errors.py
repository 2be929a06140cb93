"""Errors of the local state store: a branch of `streamer.errors.StateError` (exit; restore again).

A locked state directory is turned into a `ConfigError` at start (``cli/run.py``): it is a setup
problem (two processes, one directory), not a failure of the store.
"""

from __future__ import annotations

from pathlib import Path

from streamer.errors import StateError


class StoreError(StateError):
    """A local state store failed; the message names the store's path."""


class StoreCorruptError(StoreError):
    """The store's files are damaged. The caller wipes it and rebuilds from the changelog."""


class StoreLockedError(StoreError):
    """The store's files are held open elsewhere (RocksDB's own `LOCK`, SQLite's busy lock)."""


class StoreClosedError(StoreError):
    """The store was used after `close()`."""


class InvalidKeyError(StoreError, ValueError):
    """A key that the layout forbids: a UID containing `|`, or an `m|` key staged for the changelog."""


class StateDirectoryLockedError(StoreLockedError):
    """Another process holds `<state_dir>/<group>/.lock`: same state directory, same group id."""

    def __init__(self, group_dir: Path, group_id: str, holder: str | None) -> None:
        who = f"pid {holder}" if holder else "another process"
        super().__init__(
            f"state directory {group_dir} is in use by another streamer process ({who}) "
            f"with the same group id {group_id!r}: stop it, or give this process its own "
            f"STREAMER_STATE_DIR (lock file {group_dir / '.lock'})"
        )
        self.group_dir = group_dir
        self.group_id = group_id
        self.holder = holder
