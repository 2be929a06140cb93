"""Suite-wide guard: a compiled module older than its source would be tested instead of the source."""

from __future__ import annotations

import pytest

from streamer.compiled import stale_sources


def pytest_sessionstart(session: pytest.Session) -> None:
    if stale := stale_sources():
        pytest.exit(
            f"compiled modules are older than their sources ({', '.join(stale)}): run `make compile`",
            returncode=2,
        )
