"""`tail` and `publish` against a real broker (Tansu is enough): new records only, from the
beginning, the patient hidden unless asked, Ctrl-C, and publish's JSON inputs."""

from __future__ import annotations

import asyncio
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson
import pytest

from streamer.library import convert_instances
from tests.dicom_factory import make_instance, sop_uid, study_uid
from tests.integration.harness import REPO, BrokerInfo, Producer, Topics, read_topic, streamer_env

pytestmark = [pytest.mark.kafka]


async def bundle_of(n: int, count: int) -> bytes:
    docs = [
        make_instance(
            study_uid(n), f"{study_uid(n)}.1", sop_uid(n, i), number=i + 1, patient_id=f"P{n}"
        )
        for i in range(count)
    ]
    report = await convert_instances(docs)
    [result] = report.results
    return orjson.dumps(result.bundle)


class Tail:
    """A running `python -m streamer tail`, its stdout and stderr lines collected by threads."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamer", "tail", *args],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._ready = threading.Event()
        threading.Thread(target=self._pump, args=(self.proc.stdout, None), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True).start()

    def _pump(self, stream: IO[str], sink: list[str] | None) -> None:
        for line in stream:
            if sink is None:
                self.out.put(line.rstrip("\n"))
            else:
                sink.append(line)
                if line.startswith("tail: reading"):
                    self._ready.set()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            assert self.proc.poll() is None, f"tail exited {self.proc.returncode}: {self.err}"
            assert time.monotonic() < deadline, f"tail not ready: {self.err}"

    def line(self, timeout: float = 30) -> str:
        try:
            return self.out.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line from tail in {timeout} s: {self.err}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def tails() -> Iterator[list[Tail]]:
    started: list[Tail] = []
    yield started
    for tail in started:
        tail.close()


def env_for(broker: BrokerInfo, topics: Topics) -> dict[str, str]:
    return streamer_env(broker.bootstrap, broker.kind, topics)


async def send(broker: BrokerInfo, topic: str, key: str, value: bytes, reason: bytes) -> None:
    async with Producer(broker.bootstrap, topic) as producer:
        assert producer._producer is not None
        await producer._producer.send_and_wait(
            topic, key=key.encode(), value=value, headers=[("close-reason", reason)]
        )


async def test_tail_prints_only_new_bundles_and_hides_the_patient(
    kafka_broker: BrokerInfo, tails: list[Tail]
) -> None:
    topics = Topics.unique("tail-new")
    old, new = await bundle_of(1, 2), await bundle_of(2, 3)
    await send(kafka_broker, topics.output, study_uid(1), old, b"timeout")
    tail = Tail(env_for(kafka_broker, topics), "--max-bundles", "1")
    tails.append(tail)
    tail.wait_ready()
    await send(kafka_broker, topics.output, study_uid(2), new, b"marker")
    line = tail.line()
    assert f"study={study_uid(2)} modalities=CT series=1 instances=3 close-reason=marker" in line
    assert f"bytes={len(new)}" in line and "P2" not in line and "Doe" not in line
    assert await asyncio.to_thread(tail.proc.wait, 30) == 0


async def test_tail_from_the_beginning_with_patient_and_json(
    kafka_broker: BrokerInfo, tails: list[Tail]
) -> None:
    topics = Topics.unique("tail-begin")
    first, second = await bundle_of(3, 1), await bundle_of(4, 2)
    await send(kafka_broker, topics.output, study_uid(3), first, b"marker")
    await send(kafka_broker, topics.output, study_uid(4), second, b"marker")
    env = env_for(kafka_broker, topics)
    shown = Tail(env, "--from-beginning", "--show-patient", "-n", "2")
    as_json = Tail(env, "--from-beginning", "--json", "-n", "2")
    tails.extend([shown, as_json])
    lines = sorted([shown.line(), shown.line()])
    assert any(f"study={study_uid(3)} " in x and 'patient_id="P3"' in x for x in lines)
    assert any('patient_name="Doe^Jane"' in x for x in lines)
    bundles: list[dict[str, Any]] = [orjson.loads(as_json.line()) for _ in range(2)]
    assert sorted(orjson.dumps(b) for b in bundles) == sorted([first, second])
    for tail in (shown, as_json):
        assert await asyncio.to_thread(tail.proc.wait, 30) == 0


async def test_tail_stops_on_ctrl_c_with_exit_0(
    kafka_broker: BrokerInfo, tails: list[Tail]
) -> None:
    topics = Topics.unique("tail-int")
    await send(kafka_broker, topics.output, study_uid(5), await bundle_of(5, 1), b"marker")
    tail = Tail(env_for(kafka_broker, topics))
    tails.append(tail)
    tail.wait_ready()
    tail.proc.send_signal(signal.SIGINT)
    assert await asyncio.to_thread(tail.proc.wait, 15) == 0
    assert not any("Traceback" in line for line in tail.err), tail.err


def test_publish_takes_json_and_json_lines_files(kafka_broker: BrokerInfo, tmp_path: Path) -> None:
    topics = Topics.unique("publish-json")
    docs = [make_instance(study_uid(6), f"{study_uid(6)}.1", sop_uid(6, i)) for i in range(3)]
    (tmp_path / "list.json").write_bytes(orjson.dumps(docs[:2]))
    (tmp_path / "more.ndjson").write_bytes(orjson.dumps(docs[2]) + b"\n")
    result = subprocess.run(
        [sys.executable, "-m", "streamer", "publish", "--rate", "50", str(tmp_path)],
        env=env_for(kafka_broker, topics),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("published studies=1 instances=3 markers=1 ")
    assert "\r" not in result.stderr  # no progress bar when stderr is not a terminal
    records = asyncio.run(
        read_topic(kafka_broker.bootstrap, topics.input, until=lambda r: len(r) >= 4)
    )
    assert {r.key for r in records} == {study_uid(6).encode()}
    assert orjson.loads(records[-1].value or b"") == {
        "marker": "end-of-study",
        "study_instance_uid": study_uid(6),
        "instance_count": 3,
    }
