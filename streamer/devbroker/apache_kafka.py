"""Apache Kafka 4.x as a single KRaft node (broker and controller in one JVM) on 127.0.0.1.

Runs the Maven Central jars (see :mod:`streamer.devbroker.kafka_jars`) with the local ``java``:
slower to start than Tansu, but the real thing, with idempotent and transactional producers.

With a :class:`BrokerSecurity` it also listens with ``SASL_PLAINTEXT`` (SCRAM-SHA-256 and -512
users, created when the storage is formatted) and/or ``SSL`` (PEM key and certificates made by the
caller, client certificates optional or required), besides ``PLAINTEXT``; the returned broker's
``listeners`` maps each security protocol to its ``host:port``.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from streamer.devbroker.kafka_jars import DEFAULT_KAFKA_VERSION, ensure_kafka_jars
from streamer.devbroker.process import (
    LocalBroker,
    free_port,
    kill,
    launch,
    log_tail,
    port_is_free,
    port_open,
)
from streamer.kafka.admin import broker_reachable

_log = logging.getLogger(__name__)

SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
# SCRAM user names and passwords go into the format tool's `[name=...,password=...]` syntax.
_SCRAM_SAFE = re.compile(r"^[A-Za-z0-9_.@+-]+$")


@dataclass(frozen=True)
class BrokerSecurity:
    """Listeners besides PLAINTEXT (which stays: the readiness probe and admin tools use it).

    * ``scram_users`` (name, password): a ``SASL_PLAINTEXT`` listener offering SCRAM-SHA-256 and
      SCRAM-SHA-512, with these users for both mechanisms.
    * ``ssl_keystore``: a PEM file holding the broker's private key (PKCS#8, not encrypted) and
      its certificate chain: an ``SSL`` listener. ``ssl_truststore`` (PEM CA certificates) makes
      it ask for client certificates signed by them, ``ssl_client_auth`` says how firmly.
    """

    scram_users: tuple[tuple[str, str], ...] = ()
    ssl_keystore: Path | None = None
    ssl_truststore: Path | None = None
    ssl_client_auth: str = "required"  # required | requested | none

    def __post_init__(self) -> None:
        for name, password in self.scram_users:
            if not (_SCRAM_SAFE.match(name) and _SCRAM_SAFE.match(password)):
                raise ValueError(f"SCRAM user {name!r}: use letters, digits and _.@+- only")
        if self.ssl_client_auth not in ("required", "requested", "none"):
            raise ValueError(f"ssl_client_auth {self.ssl_client_auth!r}")


@dataclass
class ApacheKafkaBroker(LocalBroker):
    """A started Apache Kafka; ``listeners`` maps each security protocol to its host:port."""

    listeners: dict[str, str] = field(default_factory=dict)


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


def start_apache_kafka(
    version: str = DEFAULT_KAFKA_VERSION,
    log_dir: Path | None = None,
    *,
    port: int | None = None,
    heap: str = "512m",
    quick_jit: bool = True,
    timeout: float = 90.0,
    security: BrokerSecurity | None = None,
) -> ApacheKafkaBroker:
    """Start a single-node KRaft Apache Kafka (broker+controller) on 127.0.0.1.

    Fetches the jars first if needed (see :func:`ensure_kafka_jars`). Data lives in a temp dir
    removed by ``stop()``; the log too, unless ``log_dir`` is given. ``quick_jit`` (C1 JIT
    only) halves the start time on 2 cores (~6 s -> ~3 s) at some cost in peak throughput;
    pass False for benchmarks. ``$STREAMER_KAFKA_JVM_OPTS`` adds JVM options. ``security``
    adds SASL_PLAINTEXT and/or SSL listeners (``bootstrap`` stays the PLAINTEXT one).
    """
    libs = ensure_kafka_jars(version)
    java = _java()
    if port is not None and not port_is_free(port):
        raise RuntimeError(f"cannot start Apache Kafka: 127.0.0.1:{port} is already in use")

    work = Path(tempfile.mkdtemp(prefix="streamer-kafka-"))
    log_path = (log_dir or work) / f"kafka-{os.getpid()}-{time.monotonic_ns()}.log"
    format_jvm, broker_jvm = _jvm_commands(java, libs, work, heap=heap, quick_jit=quick_jit)

    # A free port can be taken between our probe and Kafka's bind; only then is a retry useful.
    attempts = 1 if port is not None else 3
    failure = tail = ""
    for attempt in range(1, attempts + 1):
        p = port if port is not None else free_port()
        listeners = _listener_ports(p, security)
        props = _write_server_properties(work, attempt, listeners, security)
        try:
            _format_storage(format_jvm, props, security)
        except RuntimeError:
            shutil.rmtree(work, ignore_errors=True)
            raise
        broker = ApacheKafkaBroker(
            kind="apache-kafka",
            bootstrap=f"127.0.0.1:{p}",
            process=launch([*broker_jvm, "kafka.Kafka", str(props)], log_path),
            log_path=log_path,
            cleanup_dirs=[work],
            listeners={name: f"127.0.0.1:{port_}" for name, port_ in listeners.items()},
        )
        problem = _wait_until_ready(broker, p, timeout)
        if problem is None:
            return broker
        kill(broker.process)
        tail = log_tail(log_path)
        failure = f"attempt {attempt} on port {p}: {problem}"
        _log.warning("Apache Kafka failed to start (%s)", failure)
        # Only a lost race for the port is worth another try.
        if "BindException" not in tail and "Address already in use" not in tail:
            break

    shutil.rmtree(work, ignore_errors=True)
    raise RuntimeError(f"Apache Kafka {version} did not start ({failure}). Log tail:\n{tail}")


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise RuntimeError("java not found on PATH (Apache Kafka 4.x needs Java 17+)")
    return found


def _jvm_commands(
    java: str, libs: Path, work: Path, *, heap: str, quick_jit: bool
) -> tuple[list[str], list[str]]:
    """The JVM command prefixes of the storage format tool and of the broker."""
    log4j = work / "log4j2.properties"
    log4j.write_text(_LOG4J2_PROPERTIES)
    common = ["-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}/*"]
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
    return format_jvm, broker_jvm


def _distinct_free_port(taken: set[int]) -> int:
    port = free_port()
    while port in taken:
        port = free_port()
    return port


def _listener_ports(plaintext: int, security: BrokerSecurity | None) -> dict[str, int]:
    """Security protocol (= listener name) -> port: PLAINTEXT, plus what ``security`` asks for."""
    ports = {"PLAINTEXT": plaintext}
    if security is not None and security.scram_users:
        ports["SASL_PLAINTEXT"] = _distinct_free_port(set(ports.values()))
    if security is not None and security.ssl_keystore is not None:
        ports["SSL"] = _distinct_free_port(set(ports.values()))
    return ports


def _write_server_properties(
    work: Path, attempt: int, listeners: dict[str, int], security: BrokerSecurity | None
) -> Path:
    """server-<attempt>.properties in ``work``: clients on ``listeners``, the controller on another."""
    controller_port = _distinct_free_port(set(listeners.values()))
    props = work / f"server-{attempt}.properties"
    props.write_text(
        _server_properties(listeners, controller_port, work / f"data-{attempt}", security)
    )
    return props


def _security_properties(security: BrokerSecurity | None) -> dict[str, str]:
    """Per-listener settings of the SASL_PLAINTEXT and SSL listeners."""
    if security is None:
        return {}
    props: dict[str, str] = {}
    if security.scram_users:
        mechanisms = ",".join(SCRAM_MECHANISMS)
        props["sasl.enabled.mechanisms"] = mechanisms
        props["listener.name.sasl_plaintext.sasl.enabled.mechanisms"] = mechanisms
        for mechanism in SCRAM_MECHANISMS:
            props[f"listener.name.sasl_plaintext.{mechanism.lower()}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
    if security.ssl_keystore is not None:
        props["listener.name.ssl.ssl.keystore.type"] = "PEM"
        props["listener.name.ssl.ssl.keystore.location"] = str(security.ssl_keystore)
        if security.ssl_truststore is not None:
            props["listener.name.ssl.ssl.truststore.type"] = "PEM"
            props["listener.name.ssl.ssl.truststore.location"] = str(security.ssl_truststore)
            props["listener.name.ssl.ssl.client.auth"] = security.ssl_client_auth
    return props


def _server_properties(
    listeners: dict[str, int],
    controller_port: int,
    data_dir: Path,
    security: BrokerSecurity | None = None,
) -> str:
    addresses = ",".join(f"{name}://127.0.0.1:{port}" for name, port in listeners.items())
    protocol_map = ",".join(f"{name}:{name}" for name in listeners)
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"{addresses},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": addresses,
        "listener.security.protocol.map": f"{protocol_map},CONTROLLER:PLAINTEXT",
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
        **_security_properties(security),
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _format_storage(format_jvm: list[str], props: Path, security: BrokerSecurity | None) -> None:
    """Format the KRaft data dir with a fresh cluster id (Kafka refuses to start without).

    SCRAM users go into the cluster metadata here: KRaft has no other way before the first start.
    """
    scram = [
        arg
        for name, password in (security.scram_users if security is not None else ())
        for mechanism in SCRAM_MECHANISMS
        for arg in ("--add-scram", f"{mechanism}=[name={name},password={password}]")
    ]
    fmt = subprocess.run(
        [
            *format_jvm,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            _cluster_id(),
            "-c",
            str(props),
            *scram,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if fmt.returncode != 0:
        raise RuntimeError(
            f"kafka-storage format failed (exit {fmt.returncode}):\n"
            + "\n".join((fmt.stdout + fmt.stderr).splitlines()[-30:])
        )


def _cluster_id() -> str:
    # Kafka's own Uuid.randomUuid() rejects ids starting with "-": they read as CLI options.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _wait_until_ready(broker: LocalBroker, port: int, timeout: float) -> str | None:
    """None once the broker answers a metadata request; else why it is not ready."""
    deadline = time.monotonic() + timeout
    ready = False
    try:
        while not ready and broker.process.poll() is None and time.monotonic() < deadline:
            ready = port_open(port) and _reachable(broker.bootstrap)
            if not ready:
                time.sleep(0.25)
    except BaseException:  # e.g. Ctrl-C while waiting: leave no JVM behind
        broker.stop()
        raise
    rc = broker.process.poll()
    if rc is not None:
        return f"exit code {rc}"
    return None if ready else f"not ready after {timeout:.0f} s"


def _reachable(bootstrap: str) -> bool:
    # Callers may already be inside an event loop (async fixtures); never nest asyncio.run there.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(broker_reachable(bootstrap, timeout_s=5.0))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, broker_reachable(bootstrap, timeout_s=5.0)).result()
