"""`python -m streamer publish`: its inputs (DICOM, .json, .jsonl), --rate, and the summary (no broker)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from types import TracebackType

import orjson
import pytest

from streamer.cli import parsers
from streamer.cli import publish as publish_cli
from streamer.cli.publish import PublishReport, RateLimiter, iter_instances, publish
from streamer.config import Settings, load_settings
from tests.dicom_factory import make_instance, sop_uid, study_uid
from tests.unit.library._api_helpers import pydicom_test_dir


def _doc(n: int, i: int) -> dict[str, object]:
    return make_instance(study_uid(n), f"{study_uid(n)}.1", sop_uid(n, i), number=i + 1)


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    shutil.copy(pydicom_test_dir() / "CT_small.dcm", root / "ct.dcm")
    (root / "one.json").write_bytes(orjson.dumps(_doc(1, 0)))
    (root / "list.json").write_bytes(orjson.dumps([_doc(2, 0), _doc(2, 1), 42]))
    (root / "broken.json").write_text("{not json")
    (root / "sub" / "lines.jsonl").write_bytes(
        orjson.dumps(_doc(3, 0)) + b"\n\n" + b"{oops\n" + orjson.dumps(_doc(3, 1)) + b"\n[1]\n"
    )
    (root / "sub" / "more.NDJSON").write_bytes(orjson.dumps({"no": "uids"}) + b"\n")
    (root / "readme.txt").write_text("hello")
    return root


def test_iter_instances_reads_dicom_json_and_json_lines(inputs: Path) -> None:
    report = PublishReport()
    got = list(iter_instances([inputs], report))
    keys = [key for key, _ in got]
    assert sorted(set(keys)) == sorted(
        {study_uid(1), study_uid(2), study_uid(3), "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"}
    )
    assert keys.count(study_uid(2)) == 2 and keys.count(study_uid(3)) == 2
    assert report.skipped == {"not valid JSON": 1, "not a DICOM file": 1}
    assert report.skipped_records == {
        "JSON value not an object": 2,
        "JSON line not valid JSON": 1,
        "not an instance (missing UIDs)": 1,
    }


class FakePublisher:
    """Stands in for streamer.kafka.publisher.Publisher: records what was sent, and when."""

    sent: list[tuple[str, bytes, bytes, float]]

    def __init__(self, settings: Settings) -> None:
        FakePublisher.sent = []

    async def __aenter__(self) -> FakePublisher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        FakePublisher.sent.append((topic, key, value, time.monotonic()))

    async def flush(self) -> None:
        return None


@pytest.fixture
def fake_publisher(monkeypatch: pytest.MonkeyPatch) -> type[FakePublisher]:
    monkeypatch.setattr(publish_cli, "Publisher", FakePublisher)
    return FakePublisher


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in list(os.environ):
        if key.startswith("STREAMER_"):
            monkeypatch.delenv(key)
    return load_settings(input_topic="in")


async def test_publish_sends_instances_then_one_marker_per_study(
    inputs: Path, fake_publisher: type[FakePublisher], settings: Settings
) -> None:
    report = await publish([inputs], settings)
    sent = fake_publisher.sent
    assert len(sent) == 6 + 4
    assert all(topic == "in" for topic, *_ in sent)
    markers = [orjson.loads(value) for _, _, value, _ in sent[6:]]
    assert {m["study_instance_uid"]: m["instance_count"] for m in markers}[study_uid(2)] == 2
    for _, key, value, _ in sent[6:]:
        assert orjson.loads(value)["study_instance_uid"] == key.decode()
    summary = report.summary()
    assert summary.startswith("published studies=4 instances=6 markers=4 skipped_files=2 ")
    assert "skipped_records=4" in summary and "(JSON line not valid JSON=1" in summary


async def test_rate_limits_messages_per_second(
    tmp_path: Path, fake_publisher: type[FakePublisher], settings: Settings
) -> None:
    lines = tmp_path / "study.jsonl"
    lines.write_bytes(b"".join(orjson.dumps(_doc(5, i)) + b"\n" for i in range(19)))
    started = time.monotonic()
    report = await publish([lines], settings, rate=10)
    took = time.monotonic() - started
    assert len(fake_publisher.sent) == 20  # 19 instances + 1 marker
    assert report.markers == 1
    assert took >= 1.5, f"20 messages at 10/s took only {took:.2f} s"


async def test_rate_limiter_paces_with_a_fake_clock() -> None:
    now = [100.0]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(100, clock=lambda: now[0], sleep=sleep)
    for _ in range(110):
        await limiter.acquire()
    # A burst of a tenth of a second's worth (10), then one message every 10 ms.
    assert now[0] - 100.0 == pytest.approx(1.0, abs=0.011)
    assert len(sleeps) == 100
    now[0] += 60  # idle for a minute: the bucket refills only to its capacity
    for _ in range(10):
        await limiter.acquire()
    assert len(sleeps) == 100
    await limiter.acquire()
    assert len(sleeps) == 101


def test_rate_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parsers.publish().parse_args(["x", "--rate", "0"])
    assert info.value.code == 2
    assert "--rate" in capsys.readouterr().err


def test_missing_path_exits_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("STREAMER_LOG_LEVEL", raising=False)
    assert publish_cli.main([str(tmp_path / "nope")]) == 2
