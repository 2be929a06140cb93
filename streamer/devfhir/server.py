"""Start and stop the HAPI FHIR JPA server (R4B, in-memory H2) on 127.0.0.1.

``start_fhir_server()`` runs ``FhirServer`` (see ``FhirServer.java``) with the local ``java``, reads
its output in a thread (into a log file, watching for the port it listens on), waits until
``/fhir/metadata`` answers and returns a :class:`LocalFhirServer`; ``stop()`` ends it. The data
lives in memory only: every start is an empty server.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from streamer.devfhir.hapi_jpa import HAPI_JPA_VERSION, MAIN_CLASS, ensure_server

_log = logging.getLogger(__name__)

DEFAULT_HEAP = "512m"
# Measured ≈ 17-21 s from start to a /metadata answer on 2 cores; generous for a busy CI machine.
START_TIMEOUT_S = 240.0
_LISTENING = re.compile(r"FHIR server listening on port (\d+)")
_JVM_OPTS = (
    "-XX:+UseSerialGC",  # one small heap, no parallel GC threads on a 2-core machine
    "-XX:TieredStopAtLevel=1",  # C1 only: less CPU at start; a test server's requests stay fast
    "-Xss512k",
    "-Djava.awt.headless=true",
)


@dataclass
class LocalFhirServer:
    """A HAPI FHIR JPA server process started by :func:`start_fhir_server`; ``stop()`` it."""

    base_url: str  # http://127.0.0.1:<port>/fhir
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    _reader: threading.Thread | None = field(default=None, repr=False)
    _cleanup_dir: Path | None = field(default=None, repr=False)

    def stop(self, timeout: float = 30.0) -> None:
        """Close its standard input (it then exits), SIGTERM after ``timeout``, then SIGKILL.

        Safe to call more than once.
        """
        proc = self.process
        if proc.poll() is None:
            if proc.stdin is not None and not proc.stdin.closed:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    _log.warning("FHIR server pid %d ignored SIGTERM; killing", proc.pid)
                    proc.kill()
                    proc.wait(10)
        if self._reader is not None:
            self._reader.join(5)
        if self._cleanup_dir is not None:
            shutil.rmtree(self._cleanup_dir, ignore_errors=True)
            self._cleanup_dir = None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"<no log: {exc}>"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> LocalFhirServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _OutputReader(threading.Thread):
    """Copies the server's output into its log file and notes the port it says it listens on."""

    def __init__(self, stream: IO[bytes], log_path: Path) -> None:
        super().__init__(name="fhir-server-output", daemon=True)
        self._stream = stream
        self._log_path = log_path
        self.port: int | None = None
        self.listening = threading.Event()

    def run(self) -> None:
        with self._log_path.open("ab") as log:
            for line in iter(self._stream.readline, b""):
                log.write(line)
                log.flush()
                if self.port is None and (m := _LISTENING.search(line.decode("utf-8", "replace"))):
                    self.port = int(m.group(1))
                    self.listening.set()
        self.listening.set()  # the process ended: stop waiting


def metadata_ok(base_url: str, timeout: float = 5.0) -> bool:
    """Whether ``GET <base>/metadata`` answers 200 with a CapabilityStatement."""
    request = urllib.request.Request(
        f"{base_url}/metadata", headers={"Accept": "application/fhir+json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bool(response.status == 200 and b"CapabilityStatement" in response.read())
    except (urllib.error.URLError, OSError, TimeoutError):
        return False


def start_fhir_server(
    port: int | None = None,
    *,
    log_path: Path | None = None,
    heap: str = DEFAULT_HEAP,
    version: str = HAPI_JPA_VERSION,
    timeout: float = START_TIMEOUT_S,
) -> LocalFhirServer:
    """Start the server (on ``port``, or a free one) and wait until ``/fhir/metadata`` answers.

    Fetches and compiles it first when the cache is cold (:func:`ensure_server`). Raises
    ``FhirServerUnavailable`` when java/javac/mvn are missing, RuntimeError when it does not start.
    """
    java, classpath = ensure_server(version)
    cleanup: Path | None = None
    if log_path is None:
        cleanup = Path(tempfile.mkdtemp(prefix="streamer-fhir-"))
        log_path = cleanup / "fhir-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [java, f"-Xmx{heap}", *_JVM_OPTS, "-cp", classpath, MAIN_CLASS, str(port or 0)]
    started = time.monotonic()
    # Standard input stays open: the server exits when it closes, so it never outlives us.
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdout is not None
    reader = _OutputReader(proc.stdout, log_path)
    reader.start()
    server = LocalFhirServer("", 0, proc, log_path, reader, cleanup)
    try:
        deadline = started + timeout
        while not reader.listening.wait(0.5):
            if time.monotonic() > deadline:
                raise RuntimeError(f"FHIR server did not listen within {timeout:.0f} s")
        if reader.port is None:
            raise RuntimeError(f"FHIR server exited with {proc.wait(10)}")
        server.port = reader.port
        server.base_url = f"http://127.0.0.1:{reader.port}/fhir"
        while not metadata_ok(server.base_url):
            if proc.poll() is not None:
                raise RuntimeError(f"FHIR server exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"FHIR server /metadata did not answer within {timeout:.0f} s")
            time.sleep(0.25)
    except BaseException as exc:
        tail = server.log_tail()
        server.stop(timeout=5)
        if isinstance(exc, RuntimeError):
            raise RuntimeError(f"{exc}; output tail:\n{tail}") from exc
        raise
    _log.info(
        "FHIR server ready at %s in %.1f s (pid %d)",
        server.base_url,
        time.monotonic() - started,
        proc.pid,
    )
    return server
