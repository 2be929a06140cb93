"""Run `python -m streamer` as a real process against a real broker, and read what it publishes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fhir.resources.R4B.bundle import Bundle

from tests.dicom_factory import make_instance, series_uid, sop_uid, study_uid
from tests.hl7.validator import validate_all

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class BrokerInfo:
    """The broker the ``kafka_broker`` fixture started (or found)."""

    bootstrap: str
    kind: str  # "external" | "testcontainers" | "apache-kafka" | "tansu"


@dataclass
class Topics:
    """A unique set of topic names and group id for one test."""

    input: str
    output: str
    dlq: str
    group: str

    @classmethod
    def unique(cls, name: str) -> Topics:
        tag = f"{name}-{uuid.uuid4().hex[:8]}"
        return cls(f"in-{tag}", f"out-{tag}", f"dlq-{tag}", f"group-{tag}")


def streamer_env(bootstrap: str, kind: str, topics: Topics, **settings: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMER_")}
    env.update(
        {
            "STREAMER_BOOTSTRAP_SERVERS": bootstrap,
            "STREAMER_INPUT_TOPIC": topics.input,
            "STREAMER_OUTPUT_TOPIC": topics.output,
            "STREAMER_DLQ_TOPIC": topics.dlq,
            "STREAMER_GROUP_ID": topics.group,
            "STREAMER_IDEMPOTENT_PRODUCER": "false" if kind == "tansu" else "true",
            "STREAMER_SESSION_TIMEOUT_MS": "6000",
            "STREAMER_HEARTBEAT_INTERVAL_MS": "500",
            "STREAMER_COMMIT_INTERVAL_SECONDS": "0.5",
            "STREAMER_TIMER_INTERVAL_SECONDS": "0.2",
            "STREAMER_TOPIC_PARTITIONS": "3",
            "STREAMER_DICOM_TIMEZONE": "Europe/Berlin",
            "STREAMER_ADD_INSTANCES": "true",
            "STREAMER_LOG_LEVEL": "INFO",
            "STREAMER_HTTP_PORT": "0",  # several processes per test: no port clashes
        }
    )
    env.update(
        {
            f"STREAMER_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in settings.items()
        }
    )
    return env


@dataclass
class StreamerProcess:
    """A `python -m streamer` child process with its log file."""

    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None

    def start(self) -> StreamerProcess:
        self.log_file = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamer"],
            env=self.env,
            cwd=REPO,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log():
                return
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"streamer exited {self.proc.returncode}:\n{self.log()[-4000:]}"
                )
            time.sleep(0.1)
        raise AssertionError(
            f"{needle!r} not in streamer log after {timeout}s:\n{self.log()[-4000:]}"
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 15.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds until exit)."""
        assert self.proc is not None
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - start

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.log_file is not None:
            self.log_file.close()


async def create_topics(bootstrap: str, topics: Topics, partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(t, partitions, 1) for t in (topics.input, topics.output, topics.dlq)]
        )
    finally:
        await admin.close()


@dataclass
class Producer:
    """Sends input messages (DICOM JSON instances, markers, raw bytes)."""

    bootstrap: str
    topic: str
    _producer: AIOKafkaProducer | None = None
    _futures: list[asyncio.Future[object]] = field(default_factory=list)

    async def __aenter__(self) -> Producer:
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=2)
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.flush()
        assert self._producer is not None
        await self._producer.stop()

    async def send(
        self, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        assert self._producer is not None
        self._futures.append(
            await self._producer.send(self.topic, value=value, key=key, partition=partition)
        )

    async def send_json(self, key: str, doc: object) -> None:
        await self.send(key.encode(), orjson.dumps(doc))

    async def flush(self) -> None:
        if self._futures:
            await asyncio.gather(*self._futures)
            self._futures.clear()


@dataclass
class OutRecord:
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    partition: int
    offset: int


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[OutRecord]], bool] | None = None,
    timeout: float = 60.0,
    settle: float = 0.0,
    isolation_level: str = "read_uncommitted",
) -> list[OutRecord]:
    """Read a topic from the beginning until `until(records)` is true (or timeout), then `settle` s more."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level=isolation_level,
    )
    await consumer.start()
    records: list[OutRecord] = []
    try:
        deadline = time.monotonic() + timeout
        partitions: set[int] | None = None
        while not partitions and time.monotonic() < deadline:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                await asyncio.sleep(0.2)
        assert partitions, f"topic {topic} has no partitions"
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        await consumer.seek_to_beginning()
        settle_until: float | None = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for tp, msgs in batch.items():
                for m in msgs:
                    records.append(
                        OutRecord(m.key, m.value, dict(m.headers), tp.partition, m.offset)
                    )
            if until is not None and settle_until is None and until(records):
                settle_until = time.monotonic() + settle
            if settle_until is not None and time.monotonic() >= settle_until:
                break
        return records
    finally:
        await consumer.stop()


def bundles_by_study(records: Iterable[OutRecord]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        assert r.key is not None and r.value is not None
        out.setdefault(r.key.decode(), []).append(orjson.loads(r.value))
    return out


def imaging_study(bundle: dict[str, Any]) -> dict[str, Any]:
    studies: list[dict[str, Any]] = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ImagingStudy"
    ]
    [study] = studies
    return study


def instance_uids(bundle: dict[str, Any]) -> set[str]:
    return {i["uid"] for s in imaging_study(bundle)["series"] for i in s.get("instance", [])}


async def committed_offsets(
    bootstrap: str, group: str, topic: str, partitions: int
) -> dict[int, int]:
    """The group's committed offsets (partitions without a commit are left out)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        out: dict[int, int] = {}
        for p in range(partitions):
            offset = await consumer.committed(TopicPartition(topic, p))
            if offset is not None:
                out[p] = offset
        return out
    finally:
        await consumer.stop()


class Spawn(Protocol):
    """The ``spawn`` fixture: start a streamer process on the machine (state directory) ``disk``."""

    def __call__(
        self, env: dict[str, str], name: str = "streamer", disk: str | None = None
    ) -> StreamerProcess: ...


def doc(n: int, i: int) -> dict[str, Any]:
    """Instance i of synthetic study n (patient P<n>)."""
    return make_instance(
        study_uid(n), series_uid(n), sop_uid(n, i), number=i + 1, patient_id=f"P{n}"
    )


def check_bundle(bundle: dict[str, Any], n: int, count: int) -> None:
    """A valid transaction Bundle of study n holding exactly its instances 0..count-1.

    Valid twice: fhir.resources R4B, and the HL7 validator with 0 errors (plus our consistency check).
    """
    Bundle.model_validate(bundle)
    validate_all([bundle])
    assert bundle["type"] == "transaction"
    assert instance_uids(bundle) == {sop_uid(n, i) for i in range(count)}
    study = imaging_study(bundle)
    assert study["numberOfInstances"] == count
    assert any(
        i.get("system") == "urn:dicom:uid" and i["value"] == f"urn:oid:{study_uid(n)}"
        for i in study["identifier"]
    )
    for entry in bundle["entry"]:
        assert entry["request"]["method"] == "PUT"
        assert (
            entry["request"]["url"]
            == f"{entry['resource']['resourceType']}/{entry['resource']['id']}"
        )
