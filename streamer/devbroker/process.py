"""What both launchers share: the broker handle, port probes, starting and killing a process."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

_log = logging.getLogger(__name__)

BrokerKind = Literal["tansu", "apache-kafka"]


@dataclass
class LocalBroker:
    """A broker process started by this package; ``stop()`` it (or use ``with``)."""

    kind: BrokerKind
    bootstrap: str
    process: subprocess.Popen[bytes]
    log_path: Path
    # Temp dirs owned by this broker, removed by stop().
    cleanup_dirs: list[Path] = field(default_factory=list, repr=False)
    stop_timeout: float = 30.0

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL; remove temp dirs. Safe to call more than once."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                _log.warning(
                    "%s broker pid %d ignored SIGTERM; killing", self.kind, self.process.pid
                )
                self.process.kill()
                self.process.wait(10)
        for path in self.cleanup_dirs:
            shutil.rmtree(path, ignore_errors=True)
        self.cleanup_dirs.clear()

    def __enter__(self) -> LocalBroker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_port() -> int:
    """A port on 127.0.0.1 that nobody listens on right now (it may be taken before we bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether we could bind 127.0.0.1:port now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a broker log, for error messages."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"<no log: {e}>"
    return "\n".join(data.splitlines()[-lines:])


def launch(cmd: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start cmd with stdout and stderr appended to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # The child keeps its own copy of the fd, so ours can be closed right away.
    with log_path.open("ab") as log:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
