"""Tools of the fault campaign: known studies, feeding them, reading Bundles back, judging them.

Studies are synthetic (``tests/dicom_factory.py``) or real: pydicom's own test files (the
``dicomdirtests`` studies shipped in the wheel, read with the same code as ``streamer publish``),
as they are and as copies under new UIDs. Every study knows its instance UIDs and how it ends:
a marker with the count, a marker without it, or no marker (closed by the inactivity timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fhir.resources.R4B.bundle import Bundle

from streamer.devbroker import LocalBroker
from streamer.devbroker.process import launch, log_tail, port_open
from streamer.dicom.files import read_file
from streamer.fhir import check_instance
from streamer.kafka.admin import broker_reachable
from streamer.messages import encode_marker
from tests.dicom_factory import make_instance
from tests.integration.harness import StreamerProcess, imaging_study, instance_uids

# ---- studies ------------------------------------------------------------------------------------


class Ending(StrEnum):
    COUNT = "marker with count"
    PLAIN = "marker without count"
    TIMEOUT = "no marker (timeout)"


@dataclass(frozen=True)
class Study:
    uid: str
    docs: tuple[dict[str, Any], ...]
    ending: Ending
    source: str  # "synthetic" | "pydicom" | "pydicom copy"
    resend: int = 0  # instances sent twice (a producer retry): must change nothing

    @property
    def sops(self) -> frozenset[str]:
        return frozenset(str(d["00080018"]["Value"][0]) for d in self.docs)


def _uid(rng: random.Random) -> str:
    return f"2.25.{rng.getrandbits(124)}"


def synthetic_study(rng: random.Random, count: int, ending: Ending) -> Study:
    """A study of ``count`` CT instances in one or two series, under fresh 2.25 UIDs."""
    study = _uid(rng)
    series = [_uid(rng), _uid(rng)]
    two = rng.random() < 0.3
    docs = tuple(
        make_instance(
            study,
            series[1 if two and i % 2 else 0],
            _uid(rng),
            number=i + 1,
            patient_id=f"P{rng.randrange(10**6)}",
        )
        for i in range(count)
    )
    # One patient per study (the factory draws the id per call): keep the first.
    patient = docs[0]["00100020"]
    for d in docs:
        d["00100020"] = patient
    return Study(study, docs, ending, "synthetic")


@cache
def _pydicom_templates() -> tuple[tuple[str, tuple[dict[str, Any], ...]], ...]:
    """The real studies of 3–8 instances among pydicom's bundled test files (one file per SOP)."""
    from pydicom.data import get_testdata_file

    ct = get_testdata_file("CT_small.dcm", download=False)
    assert isinstance(ct, str), "pydicom's bundled test files are missing"
    root = Path(ct).parent / "dicomdirtests"
    studies: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        outcome = read_file(path)
        if isinstance(outcome, str):
            continue
        doc, _ = outcome
        key = check_instance(doc)
        studies.setdefault(key.study_uid, {}).setdefault(key.sop_uid, doc)
    found = tuple(
        (uid, tuple(sops[s] for s in sorted(sops)))
        for uid, sops in sorted(studies.items())
        if 3 <= len(sops) <= 8
    )
    assert len(found) >= 3, f"expected real pydicom studies of 3-8 instances, found {len(found)}"
    return found


def pydicom_studies(ending: Callable[[], Ending]) -> list[Study]:
    """pydicom's real studies of 3–8 instances, unchanged."""
    return [
        Study(uid, copy.deepcopy(docs), ending(), "pydicom") for uid, docs in _pydicom_templates()
    ]


def _renamed(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _renamed(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, names) for v in value]
    if isinstance(value, str):
        return names.get(value, value)
    return value


def pydicom_copy(rng: random.Random, ending: Ending) -> Study:
    """One of pydicom's real studies under new study, series and SOP instance UIDs."""
    _, docs = rng.choice(_pydicom_templates())
    names: dict[str, str] = {}
    for d in docs:
        for tag in ("0020000D", "0020000E", "00080018"):
            old = str(d[tag]["Value"][0])
            names.setdefault(old, _uid(rng))
    renamed = tuple(_renamed(d, names) for d in docs)
    return Study(str(renamed[0]["0020000D"]["Value"][0]), renamed, ending, "pydicom copy")


def mixed_studies(
    rng: random.Random,
    n: int,
    *,
    endings: dict[Ending, float],
    originals: bool = True,
    real_share: float = 0.15,
    resend_share: float = 0.05,
) -> list[Study]:
    """``n`` studies of 3–8 instances: pydicom's real ones (``originals``), copies under new
    UIDs (``real_share`` of the rest) and synthetic ones."""

    def ending() -> Ending:
        return rng.choices(list(endings), weights=list(endings.values()))[0]

    out = pydicom_studies(ending) if originals else []
    while len(out) < n:
        if rng.random() < real_share:
            out.append(pydicom_copy(rng, ending()))
        else:
            out.append(synthetic_study(rng, rng.randint(3, 8), ending()))
    out = out[:n]
    rng.shuffle(out)
    return [
        Study(s.uid, s.docs, s.ending, s.source, resend=1) if rng.random() < resend_share else s
        for s in out
    ]


def with_late_instances(
    study: Study, rng: random.Random, extra: int
) -> tuple[Study, list[dict[str, Any]]]:
    """The study grown by ``extra`` late instances (copies of its first one under new SOP UIDs)."""
    late = []
    for k in range(extra):
        d = copy.deepcopy(study.docs[0])
        d["00080018"] = {"vr": "UI", "Value": [_uid(rng)]}
        d["00200013"] = {"vr": "IS", "Value": [len(study.docs) + k + 1]}
        late.append(d)
    return Study(study.uid, (*study.docs, *late), Ending.COUNT, study.source), late


def late_records_of(grown: Study, late: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    """Late instances of a closed study, then a marker with its new count (it closes again)."""
    key = grown.uid.encode()
    return [(key, orjson.dumps(d)) for d in late] + [
        (key, encode_marker(grown.uid, len(grown.docs)))
    ]


def study_records(study: Study, rng: random.Random) -> list[tuple[bytes, bytes]]:
    """A study's input records in a producer's order: instances (shuffled, maybe one resent), marker."""
    key = study.uid.encode()
    docs = list(study.docs)
    rng.shuffle(docs)
    docs.extend(rng.sample(study.docs, study.resend))
    out = [(key, orjson.dumps(d)) for d in docs]
    if study.ending is Ending.COUNT:
        out.append((key, encode_marker(study.uid, len(study.docs))))
    elif study.ending is Ending.PLAIN:
        out.append((key, encode_marker(study.uid, None)))
    return out


def interleave(studies: Iterable[Study], rng: random.Random) -> list[tuple[bytes, bytes]]:
    """The studies' records merged at random (each study keeps its own order)."""
    queues = [study_records(s, rng) for s in studies]
    out: list[tuple[bytes, bytes]] = []
    while queues:
        q = rng.choice(queues)
        out.append(q.pop(0))
        if not q:
            queues.remove(q)
    return out


# ---- feeding ------------------------------------------------------------------------------------


@dataclass
class Feeder:
    """Sends input records (optionally with their record timestamp) and waits for the acks."""

    bootstrap: str
    topic: str
    _producer: AIOKafkaProducer | None = None
    _pending: list[asyncio.Future[Any]] = field(default_factory=list)
    sent: int = 0

    async def __aenter__(self) -> Feeder:
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5, acks="all")
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                await self.flush()
        finally:
            assert self._producer is not None
            await self._producer.stop()

    async def send(self, key: bytes, value: bytes, timestamp_ms: int | None = None) -> None:
        assert self._producer is not None
        self._pending.append(
            await self._producer.send(self.topic, value=value, key=key, timestamp_ms=timestamp_ms)
        )
        self.sent += 1

    async def send_all(self, records: Iterable[tuple[bytes, bytes]]) -> None:
        for key, value in records:
            await self.send(key, value)
        await self.flush()

    async def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            await asyncio.gather(*pending)


# ---- reading back -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutRecord:
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    partition: int
    offset: int
    timestamp_ms: int


class TopicReader:
    """Reads a topic from the beginning and keeps everything read; ``until`` polls for more."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.records: list[OutRecord] = []
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> TopicReader:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        await consumer.start()
        self._consumer = consumer
        deadline = time.monotonic() + 60
        partitions: set[int] | None = None
        while not partitions and time.monotonic() < deadline:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                await asyncio.sleep(0.2)
        assert partitions, f"topic {self.topic} has no partitions"
        consumer.assign([TopicPartition(self.topic, p) for p in sorted(partitions)])
        await consumer.seek_to_beginning()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._consumer is not None
        await self._consumer.stop()

    async def poll(self, seconds: float) -> None:
        assert self._consumer is not None
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            batch = await self._consumer.getmany(
                timeout_ms=int(max(0.0, min(remaining, 0.2)) * 1000)
            )
            for tp, msgs in batch.items():
                self.records.extend(
                    OutRecord(m.key, m.value, dict(m.headers), tp.partition, m.offset, m.timestamp)
                    for m in msgs
                )
            if remaining <= 0:
                return

    async def until(
        self, done: Callable[[list[OutRecord]], bool], timeout: float, settle: float = 0.0
    ) -> bool:
        """Read until ``done(records)`` (then ``settle`` s more) or ``timeout``; True if done."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self.poll(0.5)
            if done(self.records):
                await self.poll(settle)
                return True
        return done(self.records)


async def read_all(bootstrap: str, topic: str, seconds: float = 3.0) -> list[OutRecord]:
    """Everything in the topic now (read for ``seconds``)."""
    async with TopicReader(bootstrap, topic) as reader:
        await reader.poll(seconds)
        return reader.records


async def wait_committed(bootstrap: str, group: str, topic: str, timeout: float = 30.0) -> bool:
    """Wait until the group has committed every partition of the topic up to its end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            committed = {tp: await consumer.committed(tp) for tp in tps}
            if all((committed[tp] or 0) >= ends[tp] for tp in tps):
                return True
            await asyncio.sleep(0.2)
        return False
    finally:
        await consumer.stop()


# ---- judging ------------------------------------------------------------------------------------


def bundle_problem(bundle: dict[str, Any], study_uid: str, sops: frozenset[str]) -> str | None:
    """Why the Bundle is not a valid transaction Bundle of exactly these instances (None: it is)."""
    try:
        Bundle.model_validate(bundle)
    except ValueError as exc:
        return f"invalid Bundle: {str(exc)[:300]}"
    if bundle.get("type") != "transaction":
        return f"type {bundle.get('type')!r}"
    got = instance_uids(bundle)
    if got != sops:
        return f"{len(got)} instances ({len(got - sops)} unknown, {len(sops - got)} missing)"
    study = imaging_study(bundle)
    if study.get("numberOfInstances") != len(sops):
        return f"numberOfInstances {study.get('numberOfInstances')} != {len(sops)}"
    if not any(i.get("value") == f"urn:oid:{study_uid}" for i in study.get("identifier", [])):
        return "ImagingStudy lacks the StudyInstanceUID identifier"
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if entry["request"] != {
            "method": "PUT",
            "url": f"{resource['resourceType']}/{resource['id']}",
        }:
            return f"entry request {entry['request']}"
    return None


@dataclass
class Verdict:
    """Per-study judgement of everything a topic holds against the expected studies."""

    studies: int
    instances: int
    bundles: int
    lost: list[str]
    wrong: dict[str, str]
    duplicates: int
    fragments: int  # Bundles of a study holding another instance set than its final one
    unexpected: list[str]
    close_reasons: dict[str, int]

    def summary(self) -> dict[str, Any]:
        return {
            "studies": self.studies,
            "instances": self.instances,
            "bundles": self.bundles,
            "lost": len(self.lost),
            "wrong": len(self.wrong),
            "duplicates": self.duplicates,
            "fragments": self.fragments,
            "unexpected keys": len(self.unexpected),
            "close reasons": self.close_reasons,
        }

    def problems(self) -> list[str]:
        out = []
        if self.lost:
            out.append(f"{len(self.lost)} studies lost, e.g. {self.lost[:3]}")
        out.extend(f"study {uid}: {why}" for uid, why in list(self.wrong.items())[:10])
        if len(self.wrong) > 10:
            out.append(f"... {len(self.wrong) - 10} more wrong studies")
        if self.unexpected:
            out.append(f"Bundles of unknown studies: {self.unexpected[:3]}")
        return out


def judge(
    expected: dict[str, frozenset[str]],
    records: Iterable[OutRecord],
    *,
    fragments_allowed: bool = False,
) -> Verdict:
    """Latest Bundle = exactly the expected instances and valid; one instance set, one byte string.

    ``fragments_allowed``: Bundles of a study with fewer instances before its whole one are no
    error (a study closed by timeout that got more instances later); otherwise they are ("split").
    """
    per_study: dict[str, list[OutRecord]] = {}
    reasons: dict[str, int] = {}
    for r in records:
        assert r.key is not None and r.value is not None, "a record without key or value"
        per_study.setdefault(r.key.decode(), []).append(r)
        reason = r.headers.get("close-reason", b"?").decode()
        reasons[reason] = reasons.get(reason, 0) + 1
    wrong: dict[str, str] = {}
    duplicates = fragments = bundles = 0
    for uid, recs in per_study.items():
        recs.sort(key=lambda r: (r.partition, r.offset))
        if len({r.partition for r in recs}) > 1:
            wrong[uid] = "Bundles in more than one partition"
        bundles += len(recs)
        sops = expected.get(uid)
        if sops is None:
            continue
        by_set: dict[frozenset[str], set[bytes]] = {}
        for r in recs:
            assert r.value is not None
            by_set.setdefault(frozenset(instance_uids(orjson.loads(r.value))), set()).add(r.value)
        duplicates += len(recs) - len(by_set)
        fragments += sum(1 for r in recs if r.value not in by_set.get(sops, set()))
        latest = recs[-1].value
        assert latest is not None
        problem = bundle_problem(orjson.loads(latest), uid, sops)
        if problem is not None:
            wrong[uid] = f"latest Bundle: {problem}"
            continue
        differing = [len(values) for s, values in by_set.items() if len(values) > 1]
        if differing:
            wrong[uid] = f"Bundles of one instance set differ in bytes ({differing} versions)"
            continue
        extra = [s for s in by_set if s != sops]
        if extra and not fragments_allowed:
            wrong[uid] = (
                f"published in parts: {len(extra)} other instance sets "
                f"({sorted(len(s) for s in extra)} of {len(sops)} instances)"
            )
            continue
        for s, values in by_set.items():
            if s != sops and (p := bundle_problem(orjson.loads(next(iter(values))), uid, s)):
                wrong[uid] = f"earlier Bundle: {p}"
    return Verdict(
        studies=len(expected),
        instances=sum(len(s) for s in expected.values()),
        bundles=bundles,
        lost=sorted(uid for uid in expected if uid not in per_study),
        wrong=wrong,
        duplicates=duplicates,
        fragments=fragments,
        unexpected=sorted(uid for uid in per_study if uid not in expected),
        close_reasons=reasons,
    )


def all_latest_complete(expected: dict[str, frozenset[str]]) -> Callable[[list[OutRecord]], bool]:
    """A ``TopicReader.until`` condition: every study's latest Bundle holds all its instances."""

    def done(records: list[OutRecord]) -> bool:
        latest: dict[str, bytes] = {}
        for r in records:
            if r.key is not None and r.value is not None:
                latest[r.key.decode()] = r.value
        if not set(expected) <= set(latest):
            return False
        return all(
            frozenset(instance_uids(orjson.loads(latest[uid]))) == sops
            for uid, sops in expected.items()
        )

    return done


# ---- process logs -------------------------------------------------------------------------------


def log_events(proc: StreamerProcess) -> Iterator[dict[str, Any]]:
    """The JSON lines of a process log (other lines, e.g. a traceback, are skipped)."""
    for line in proc.log().splitlines():
        if line.startswith("{"):
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict):
                yield event


def event_time(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["ts"])).timestamp()


def restore_seconds(procs: Iterable[StreamerProcess]) -> list[float]:
    return [
        float(e["restore_seconds"])
        for p in procs
        for e in log_events(p)
        if e.get("msg") == "partition ready"
    ]


def restore_details(procs: Iterable[StreamerProcess]) -> dict[str, Any]:
    ready = [e for p in procs for e in log_events(p) if e.get("msg") == "partition ready"]
    if not ready:
        return {"partition restores": 0}
    return {
        "partition restores": len(ready),
        "restore seconds median/max": (
            f"{statistics.median(float(e['restore_seconds']) for e in ready):.3f} / "
            f"{max(float(e['restore_seconds']) for e in ready):.3f}"
        ),
        "changelog records per restore median/max": (
            f"{statistics.median(int(e['changelog_records']) for e in ready):.0f} / "
            f"{max(int(e['changelog_records']) for e in ready)}"
        ),
        "rebuilt stores": sum(1 for e in ready if e.get("rebuilt")),
    }


def error_lines(procs: Iterable[StreamerProcess], limit: int = 5) -> list[str]:
    """ERROR lines of the processes' logs (shortened), for the report."""
    out = []
    for p in procs:
        for e in log_events(p):
            if e.get("level") in ("ERROR", "CRITICAL"):
                exc = str(e.get("exc", "")).strip().splitlines()
                out.append(
                    f"{p.log_path.name}: {e.get('msg')} {exc[-1] if exc else ''}".strip()[:400]
                )
    return out[:limit]


def level_counts(procs: Iterable[StreamerProcess]) -> dict[str, int]:
    """Log lines per level over the processes (lines that are not JSON count as "raw")."""
    out: dict[str, int] = {}
    for p in procs:
        for line in p.log().splitlines():
            level = "raw"
            if line.startswith("{"):
                with contextlib.suppress(orjson.JSONDecodeError):
                    level = str(orjson.loads(line).get("level", "raw"))
            out[level] = out.get(level, 0) + 1
    return out


def wait_for_event(
    proc: StreamerProcess, msg: str, timeout: float, *, after: int = 0
) -> dict[str, Any] | None:
    """The ``after``-th (0 = first) log event with this message, or None (timeout or exit)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in log_events(proc) if e.get("msg") == msg]
        if len(found) > after:
            return found[after]
        assert proc.proc is not None
        if proc.proc.poll() is not None:
            return None
        time.sleep(0.05)
    return None


async def await_event(
    proc: StreamerProcess, msg: str, timeout: float, *, after: int = 0
) -> dict[str, Any] | None:
    return await asyncio.to_thread(wait_for_event, proc, msg, timeout, after=after)


def sigkill(proc: StreamerProcess) -> int:
    assert proc.proc is not None
    if proc.proc.poll() is None:
        proc.proc.send_signal(signal.SIGKILL)
    return proc.proc.wait(10)


def sigterm(proc: StreamerProcess, timeout: float = 30.0) -> int:
    assert proc.proc is not None
    if proc.proc.poll() is None:
        proc.proc.send_signal(signal.SIGTERM)
    return proc.proc.wait(timeout)


# ---- a broker of our own, restarted on its data ----------------------------------------------------


def _reachable(bootstrap: str) -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(broker_reachable(bootstrap, timeout_s=5.0))
    raise RuntimeError("call from a thread without an event loop (asyncio.to_thread)")


def stop_broker_keep_data(broker: LocalBroker, timeout: float = 60.0) -> float:
    """SIGTERM the broker's JVM (a controlled shutdown) and keep its data dir; seconds taken.

    ``LocalBroker.stop()`` cannot be used for a restart: it removes the data directory.
    """
    started = time.monotonic()
    broker.process.terminate()
    try:
        broker.process.wait(timeout)
    except subprocess.TimeoutExpired:
        broker.process.kill()
        broker.process.wait(10)
    return time.monotonic() - started


def start_broker_again(broker: LocalBroker, timeout: float = 90.0) -> float:
    """Start the same JVM command again: same server.properties, so same ports and data dir.

    ``start_apache_kafka`` formats a fresh data directory every time and has no restart; the
    command line of the first start (``Popen.args``) is all a restart needs. Returns seconds until
    the broker answered a metadata request.
    """
    port = int(broker.bootstrap.rsplit(":", 1)[1])
    args = broker.process.args
    assert isinstance(args, list)
    started = time.monotonic()
    deadline = started + timeout
    # The old sockets may linger in TIME_WAIT (Kafka binds with SO_REUSEADDR, so that is no
    # obstacle); only if the JVM still fails to bind is another try worth it.
    for _ in range(5):
        broker.process = launch([str(a) for a in args], broker.log_path)
        while time.monotonic() < deadline and broker.process.poll() is None:
            if port_open(port) and _reachable(broker.bootstrap):
                return time.monotonic() - started
            time.sleep(0.25)
        if broker.process.poll() is None:
            break
        if "BindException" not in log_tail(broker.log_path) or time.monotonic() >= deadline:
            raise RuntimeError(f"restarted broker exited {broker.process.returncode}")
        time.sleep(1.0)
    raise RuntimeError(f"restarted broker not ready after {timeout:.0f} s")
