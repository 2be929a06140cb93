"""`python -m streamer sink` against a real HAPI FHIR JPA server (R4B) and a real broker.

The session starts the server once (``streamer.devfhir``, ≈ 20 s); the module runs the processor
(``python -m streamer``) and the sink (``python -m streamer sink``) as processes, publishes the demo
studies, and reads back from the server's REST API what the sink posted. Then: the same Bundles
again change nothing on the server; a late instance bumps the ImagingStudy's version and nothing
else; a Bundle the server rejects lands in the sink's DLQ with the OperationOutcome.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
import pytest
import pytest_asyncio

from streamer.cli.demo import sample_paths
from streamer.cli.publish import publish
from streamer.config import load_settings
from streamer.devbroker.process import free_port
from streamer.devfhir import LocalFhirServer, fhir_cache_dir, start_fhir_server
from streamer.devfhir.hapi_jpa import jars_complete
from streamer.dicom.files import read_file
from streamer.messages import encode_marker
from tests.integration.conftest import BrokerInfo
from tests.integration.harness import (
    REPO,
    OutRecord,
    Producer,
    StreamerProcess,
    Topics,
    committed_offsets,
    create_topics,
    imaging_study,
    read_topic,
    streamer_env,
)

pytestmark = [pytest.mark.kafka, pytest.mark.fhir_server, pytest.mark.slow]

WADO = "https://pacs.example/dicomweb"
PARTITIONS = 3
TYPES = ("ImagingStudy", "Patient", "Device", "Endpoint", "Observation")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"the HAPI FHIR server is needed in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFhirServer]:
    """One HAPI FHIR JPA server (R4B, in memory) for the session; skipped without java/mvn."""
    if shutil.which("java") is None or shutil.which("javac") is None:
        _unavailable("java and javac (JDK 17+) are not on PATH")
    if shutil.which("mvn") is None and not jars_complete(fhir_cache_dir() / "libs"):
        _unavailable("mvn is not on PATH and the HAPI FHIR jars are not cached")
    log_path = tmp_path_factory.mktemp("fhir-server") / "fhir-server.log"
    try:
        server = start_fhir_server(log_path=log_path)
    except Exception as exc:
        _unavailable(f"the HAPI FHIR server did not start: {exc}")
        raise
    try:
        yield server
    finally:
        server.stop()


# ---- the FHIR server's REST API ---------------------------------------------------------------


def fhir_get(base: str, path: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{base}/{path}", headers={"Accept": "application/fhir+json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        doc: dict[str, Any] = orjson.loads(response.read())
    return doc


def fhir_status(base: str, path: str) -> int:
    try:
        with urllib.request.urlopen(f"{base}/{path}", timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def count(base: str, resource_type: str) -> int:
    return int(fhir_get(base, f"{resource_type}?_summary=count")["total"])


def resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"]]


def as_stored(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``Type/id`` -> the resource as the server should return it, minus ``meta``.

    The server turns the Bundle's ``urn:uuid:`` references into ``Type/id``.
    """
    refs = {
        e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle["entry"]
    }

    def norm(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items() if k != "meta"}
        if isinstance(value, list):
            return [norm(v) for v in value]
        return refs.get(value, value) if isinstance(value, str) else value

    return {refs[e["fullUrl"]]: norm(e["resource"]) for e in bundle["entry"]}


def versions(base: str, refs: set[str]) -> dict[str, str]:
    return {ref: fhir_get(base, ref)["meta"]["versionId"] for ref in sorted(refs)}


# ---- the sink process -------------------------------------------------------------------------


@dataclass
class SinkProcess:
    """`python -m streamer sink` with its log file and its /metrics port."""

    env: dict[str, str]
    args: list[str]
    log_path: Path
    http_port: int
    proc: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> SinkProcess:
        self.log_file = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamer", "sink", *self.args],
            env=self.env,
            cwd=REPO,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.http_port}{path}", timeout=5
            ) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()

    def counter(self, name: str, **labels: str) -> float:
        """A counter of the sink's /metrics (summed over other labels); 0 before it answers."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"sink exited {self.proc.returncode}:\n{self.log()[-4000:]}")
        try:
            _, text = self.get("/metrics")
        except OSError:
            return 0.0
        total = 0.0
        for line in text.decode().splitlines():
            m = re.match(rf"^streamer_sink_{name}_total(?:\{{(.*)\}})? (\S+)$", line)
            if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
                total += float(m.group(2))
        return total

    async def wait_for(self, name: str, at_least: float, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.counter(name) < at_least:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"sink {name} < {at_least} after {timeout}s:\n{self.log()[-4000:]}"
                )
            await asyncio.sleep(0.2)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.log_file is not None:
            self.log_file.close()


# ---- the pipeline: processor + sink, the demo studies published --------------------------------


@dataclass
class Pipeline:
    broker: BrokerInfo
    fhir: LocalFhirServer
    topics: Topics
    sink_dlq: str
    sink_group: str
    processor: StreamerProcess
    sink: SinkProcess
    bundles: dict[str, dict[str, Any]]  # study UID -> its latest Bundle
    records: list[OutRecord]  # the Bundle records the sink read so far

    def stored(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for bundle in self.bundles.values():
            out.update(as_stored(bundle))
        return out

    async def read_bundles(self, done: Callable[[list[OutRecord]], bool]) -> list[OutRecord]:
        records = await read_topic(self.broker.bootstrap, self.topics.output, until=done)
        assert done(records), f"processor output incomplete:\n{self.processor.log()[-4000:]}"
        return records


@pytest_asyncio.fixture(scope="module")
async def pipeline(
    kafka_broker: BrokerInfo,
    fhir_server: LocalFhirServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Pipeline]:
    tmp = tmp_path_factory.mktemp("fhir-sink")
    tag = uuid.uuid4().hex[:8]
    topics = Topics.unique("fhir-sink")
    sink_dlq, sink_group = f"sink-dlq-{tag}", f"sink-group-{tag}"
    await create_topics(kafka_broker.bootstrap, topics, PARTITIONS)
    env = streamer_env(
        kafka_broker.bootstrap,
        kafka_broker.kind,
        topics,
        wado_base_url=WADO,
        study_timeout_seconds=60,
        state_dir=str(tmp / "state"),
        http_port=0,
    )
    processor = StreamerProcess(env, tmp / "processor.log").start()
    http_port = free_port()
    sink_env = {
        **env,
        "STREAMER_HTTP_PORT": str(http_port),
        "STREAMER_HTTP_HOST": "127.0.0.1",
        "STREAMER_SINK_DLQ_TOPIC": sink_dlq,
        "STREAMER_FHIR_RETRY_MAX_SECONDS": "2",
    }
    args = ["--fhir-base-url", fhir_server.base_url, "--group", sink_group]
    sink = SinkProcess(sink_env, args, tmp / "sink.log", http_port).start()
    try:
        settings = load_settings(
            bootstrap_servers=kafka_broker.bootstrap,
            input_topic=topics.input,
            idempotent_producer=kafka_broker.kind != "tansu",
        )
        report = await publish(sample_paths(), settings)
        studies = report.studies
        assert studies == 9
        pipe = Pipeline(
            kafka_broker, fhir_server, topics, sink_dlq, sink_group, processor, sink, {}, []
        )
        pipe.records = await pipe.read_bundles(lambda rs: len({r.key for r in rs}) >= studies)
        for r in pipe.records:
            assert r.key is not None and r.value is not None
            pipe.bundles[r.key.decode()] = orjson.loads(r.value)
        await sink.wait_for("bundles_posted", len(pipe.records))
        yield pipe
    finally:
        sink.close()
        processor.close()


# ---- the tests ------------------------------------------------------------------------------


async def test_every_resource_of_every_bundle_is_on_the_server(pipeline: Pipeline) -> None:
    base = pipeline.fhir.base_url
    stored = pipeline.stored()
    kinds = {ref.split("/")[0] for ref in stored}
    assert set(TYPES) <= kinds, kinds
    for ref, expected in stored.items():
        got = fhir_get(base, ref)
        assert got["meta"]["versionId"] == "1", ref
        got.pop("meta")
        assert got == expected, ref
    # Each resource once: as many on the server as distinct ids in the Bundles.
    for kind in TYPES:
        assert count(base, kind) == sum(1 for ref in stored if ref.startswith(f"{kind}/")), kind
    # Searching works on what the sink stored: the studies of each patient.
    for ref in (r for r in stored if r.startswith("Patient/")):
        found = fhir_get(base, f"ImagingStudy?subject={ref}&_summary=count")["total"]
        studies = sum(
            1
            for r, res in stored.items()
            if r.startswith("ImagingStudy/") and res["subject"]["reference"] == ref
        )
        assert found == studies
    # The sink committed every record it posted, in its own group.
    ends: dict[int, int] = {}
    for record in pipeline.records:
        ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
    committed = await committed_offsets(
        pipeline.broker.bootstrap, pipeline.sink_group, pipeline.topics.output, PARTITIONS
    )
    assert {p: off for p, off in committed.items() if p in ends} == ends
    # Health, readiness and metrics like the processor's.
    assert pipeline.sink.get("/healthz")[0] == 200
    assert pipeline.sink.get("/readyz")[0] == 200
    entries = sum(len(b["entry"]) for b in pipeline.bundles.values())
    created = pipeline.sink.counter("entries", outcome="created")
    unchanged = pipeline.sink.counter("entries", outcome="unchanged")
    assert created + unchanged == entries  # shared Patients/Devices/Endpoint: created once
    assert created == len(stored)


async def test_the_same_bundles_again_change_nothing(pipeline: Pipeline) -> None:
    base = pipeline.fhir.base_url
    stored = pipeline.stored()
    before = versions(base, set(stored))
    counts = {kind: count(base, kind) for kind in TYPES}
    posted = pipeline.sink.counter("bundles_posted")
    unchanged = pipeline.sink.counter("entries", outcome="unchanged")
    async with Producer(pipeline.broker.bootstrap, pipeline.topics.output) as out:
        for uid, bundle in pipeline.bundles.items():
            await out.send(uid.encode(), orjson.dumps(bundle))
    await pipeline.sink.wait_for("bundles_posted", posted + len(pipeline.bundles))
    assert versions(base, set(stored)) == before
    assert {kind: count(base, kind) for kind in TYPES} == counts
    entries = sum(len(b["entry"]) for b in pipeline.bundles.values())
    assert pipeline.sink.counter("entries", outcome="unchanged") == unchanged + entries
    assert pipeline.sink.counter("entries", outcome="updated") == 0


async def test_a_late_instance_bumps_the_study_version_and_nothing_else(
    pipeline: Pipeline,
) -> None:
    base = pipeline.fhir.base_url
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    outcome = read_file(Path(path))
    assert not isinstance(outcome, str)
    doc = outcome[0]
    study_uid = doc["0020000D"]["Value"][0]
    bundle = pipeline.bundles[study_uid]
    stored = as_stored(bundle)
    before = versions(base, set(stored))
    [study_ref] = [ref for ref in stored if ref.startswith("ImagingStudy/")]
    assert stored[study_ref]["numberOfInstances"] == 1
    late = {
        **doc,
        "00080018": {"vr": "UI", "Value": [doc["00080018"]["Value"][0] + ".9"]},
        "00200013": {"vr": "IS", "Value": [2]},
    }
    posted = pipeline.sink.counter("bundles_posted")
    async with Producer(pipeline.broker.bootstrap, pipeline.topics.input) as out:
        await out.send_json(study_uid, late)
        await out.send(study_uid.encode(), encode_marker(study_uid, 2))
    key = study_uid.encode()

    def updated(record: OutRecord) -> bool:
        if record.key != key or record.value is None:
            return False
        return bool(imaging_study(orjson.loads(record.value))["numberOfInstances"] == 2)

    records = await pipeline.read_bundles(lambda rs: any(updated(r) for r in rs))
    newest = next(r for r in records if updated(r))
    assert newest.value is not None
    await pipeline.sink.wait_for("bundles_posted", posted + 1)
    new_stored = as_stored(orjson.loads(newest.value))
    assert set(new_stored) == set(stored)  # the same ids
    got = fhir_get(base, study_ref)
    assert got["meta"]["versionId"] == str(int(before[study_ref]) + 1)
    assert got["numberOfInstances"] == 2
    got.pop("meta")
    assert got == new_stored[study_ref]
    after = versions(base, set(stored))
    assert {r: v for r, v in after.items() if r != study_ref} == {
        r: v for r, v in before.items() if r != study_ref
    }
    assert count(base, "ImagingStudy") == sum(
        1 for ref in pipeline.stored() if ref.startswith("ImagingStudy/")
    )


async def test_a_bundle_the_server_rejects_lands_in_the_sink_dlq(pipeline: Pipeline) -> None:
    base = pipeline.fhir.base_url
    obs_id = str(uuid.uuid4())
    rejected = orjson.dumps(
        {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{obs_id}",
                    "resource": {
                        "resourceType": "Observation",
                        "id": obs_id,
                        "status": "final",
                        "code": {"text": "body weight"},
                        "subject": {"reference": f"Patient/{uuid.uuid4()}"},  # not on the server
                    },
                    "request": {"method": "PUT", "url": f"Observation/{obs_id}"},
                }
            ],
        }
    )
    posted = pipeline.sink.counter("bundles_posted")
    [good_uid, good] = next(iter(pipeline.bundles.items()))
    async with Producer(pipeline.broker.bootstrap, pipeline.topics.output) as out:
        await out.send(b"1.2.3.4.reject", rejected)
        await out.send(b"1.2.3.4.garbage", b"not a bundle")
        await out.send(good_uid.encode(), orjson.dumps(good))  # the stream goes on after them
    await pipeline.sink.wait_for("bundles_rejected", 2)
    await pipeline.sink.wait_for("bundles_posted", posted + 1)
    dead = await read_topic(
        pipeline.broker.bootstrap, pipeline.sink_dlq, until=lambda rs: len(rs) >= 2, timeout=30
    )
    by_key = {r.key: r for r in dead}
    letter = by_key[b"1.2.3.4.reject"]
    assert letter.value == rejected
    headers = letter.headers
    assert headers["error-type"] == b"FhirRejectedError"
    assert headers["http-status"] == b"400"
    assert headers["error-message"].startswith(b"400 Bad Request: ")
    assert b"HAPI-1094" in headers["error-message"]
    oo = orjson.loads(headers["operation-outcome"])
    assert oo["resourceType"] == "OperationOutcome"
    assert oo["issue"][0]["severity"] == "error"
    assert headers["source-topic"] == pipeline.topics.output.encode()
    assert int(headers["source-offset"]) >= 0
    garbage = by_key[b"1.2.3.4.garbage"]
    assert garbage.value == b"not a bundle"
    assert garbage.headers["error-type"] == b"InvalidBundleError"
    assert fhir_status(base, f"Observation/{obs_id}") == 404  # the transaction left nothing


async def test_nothing_is_committed_until_the_server_takes_the_bundles(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """A sink whose server is down retries and commits nothing; SIGTERM stops it at once; the next
    sink of the group (server up) starts from the beginning and posts everything."""
    group = f"sink-group-late-{uuid.uuid4().hex[:8]}"
    down = f"http://127.0.0.1:{free_port()}/fhir"  # nobody listens there
    env = {**pipeline.sink.env, "STREAMER_FHIR_RETRY_MAX_SECONDS": "0.5"}
    port = free_port()
    first = SinkProcess(
        {**env, "STREAMER_HTTP_PORT": str(port)},
        ["--fhir-base-url", down, "--group", group],
        tmp_path / "sink-down.log",
        port,
    ).start()
    try:
        deadline = time.monotonic() + 60
        while first.counter("post_retries", reason="connection") < 3:
            assert time.monotonic() < deadline, first.log()[-4000:]
            await asyncio.sleep(0.2)
        assert first.get("/readyz")[0] == 503  # not ready while the server fails
        assert first.get("/healthz")[0] == 200  # but alive: restarting would not help
        assert first.counter("bundles_posted") == 0
        assert first.proc is not None
        started = time.monotonic()
        first.proc.terminate()
        assert first.proc.wait(20) == 0
        assert time.monotonic() - started < 10
    finally:
        first.close()
    assert (
        await committed_offsets(
            pipeline.broker.bootstrap, group, pipeline.topics.output, PARTITIONS
        )
        == {}
    )

    records = await read_topic(
        pipeline.broker.bootstrap, pipeline.topics.output, timeout=3, until=lambda rs: False
    )
    port = free_port()
    second = SinkProcess(
        {**env, "STREAMER_HTTP_PORT": str(port)},
        ["--fhir-base-url", pipeline.fhir.base_url, "--group", group],
        tmp_path / "sink-up.log",
        port,
    ).start()
    try:
        await second.wait_for("records_consumed", len(records))
        # The last record may be consumed while its POST is still in flight: wait for its outcome.
        for _ in range(300):  # at most 60 s
            if second.counter("bundles_posted") + second.counter("bundles_rejected") >= len(
                records
            ):
                break
            await asyncio.sleep(0.2)
        assert second.counter("bundles_posted") + second.counter("bundles_rejected") == len(records)
        ends: dict[int, int] = {}
        for record in records:
            ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
        deadline = time.monotonic() + 30
        while True:
            committed = await committed_offsets(
                pipeline.broker.bootstrap, group, pipeline.topics.output, PARTITIONS
            )
            if {p: off for p, off in committed.items() if p in ends} == ends:
                break
            assert time.monotonic() < deadline, (committed, ends)
            await asyncio.sleep(0.5)
    finally:
        second.close()
