"""The study store across restarts, rebalances and lost disks, with `python -m streamer` processes."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streamer.messages import encode_marker
from tests.dicom_factory import study_uid
from tests.integration.harness import (
    REPO,
    Producer,
    Spawn,
    Topics,
    bundles_by_study,
    check_bundle,
    committed_offsets,
    create_topics,
    doc,
    read_topic,
    streamer_env,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

TIMEOUT_S = 3


async def _send_study(bootstrap: str, topic: str, n: int, count: int) -> None:
    async with Producer(bootstrap, topic) as producer:
        for i in range(count):
            await producer.send_json(study_uid(n), doc(n, i))
        await producer.send(study_uid(n).encode(), encode_marker(study_uid(n), count))


async def _send_late(bootstrap: str, topic: str, n: int, i: int) -> None:
    async with Producer(bootstrap, topic) as producer:
        await producer.send_json(study_uid(n), doc(n, i))


def _env(kafka_broker: Any, topics: Topics, **settings: object) -> dict[str, str]:
    defaults: dict[str, object] = {"study_timeout_seconds": TIMEOUT_S, "topic_partitions": 1}
    return streamer_env(kafka_broker.bootstrap, kafka_broker.kind, topics, **defaults | settings)


async def _run_streamer(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``python -m streamer`` to its end (it is expected to stop by itself)."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "streamer"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("how", ["restart", "rebalance", "lost-disk"])
async def test_late_instance_never_publishes_a_fragment(
    kafka_broker: Any, spawn: Spawn, tmp_path: Path, how: str
) -> None:
    """A closed study, then a restart, rebalance or lost disk, then a late instance: whole study."""
    topics = Topics.unique(f"frag-{how}")
    env = _env(kafka_broker, topics)
    first = spawn(env, "first")
    first.wait_for_log("partition ready")
    await _send_study(kafka_broker.bootstrap, topics.input, 1, 3)
    for n in range(2, 5):  # other studies pass by
        await _send_study(kafka_broker.bootstrap, topics.input, n, 1)
    await read_topic(
        kafka_broker.bootstrap, topics.output, until=lambda r: len(bundles_by_study(r)) >= 4
    )
    if how == "rebalance":
        second = spawn(env, "second")  # joins the group; takes the partition when first leaves
        second.wait_for_log("partitions assigned")
        code, _ = first.terminate()
        assert code == 0
        second.wait_for_log("partition ready")
    else:
        code, _ = first.terminate()
        assert code == 0
        if how == "lost-disk":
            shutil.rmtree(tmp_path / "state-first")
        spawn(env, "second", disk="first").wait_for_log("partition ready")
    await _send_late(kafka_broker.bootstrap, topics.input, 1, 3)
    records = await read_topic(
        kafka_broker.bootstrap,
        topics.output,
        until=lambda r: len(bundles_by_study(r).get(study_uid(1), [])) >= 2,
        timeout=60,
    )
    first_bundle, latest = bundles_by_study(records)[study_uid(1)]
    check_bundle(first_bundle, 1, 3)
    check_bundle(latest, 1, 4)  # the whole study and the late instance, never the late one alone
    assert latest["id"] == first_bundle["id"]
    for n in range(2, 5):  # studies committed before the restart are not published again
        assert len(bundles_by_study(records)[study_uid(n)]) == 1


async def test_commit_is_not_held_back_by_open_studies(kafka_broker: Any, spawn: Spawn) -> None:
    topics = Topics.unique("commit")
    env = _env(kafka_broker, topics, study_timeout_seconds=600)
    proc = spawn(env)
    proc.wait_for_log("partition ready")
    async with Producer(kafka_broker.bootstrap, topics.input) as producer:
        for n in range(1, 4):
            for i in range(2):
                await producer.send_json(study_uid(n), doc(n, i))
    committed: dict[int, int] = {}
    for _ in range(50):
        committed = await committed_offsets(kafka_broker.bootstrap, topics.group, topics.input, 1)
        if committed.get(0) == 6:
            break
        await asyncio.sleep(0.2)
    assert committed == {0: 6}, "open studies held the commit back"


async def test_second_process_on_the_same_state_directory_stops(
    kafka_broker: Any, spawn: Spawn, tmp_path: Path
) -> None:
    topics = Topics.unique("lock")
    env = _env(kafka_broker, topics)
    spawn(env, "first").wait_for_log("partition ready")
    env = {**env, "STREAMER_STATE_DIR": str(tmp_path / "state-first")}
    result = await _run_streamer(env)
    assert result.returncode == 2
    assert "in use by another streamer process" in result.stderr
    assert "STREAMER_STATE_DIR" in result.stderr


async def _start_on_a_changelog_made_by_hand(
    kafka_broker: Any, tmp_path: Path, name: str, partitions: int, configs: dict[str, str]
) -> tuple[str, subprocess.CompletedProcess[str]]:
    """Input topics of 3 partitions and a changelog created beforehand as given; one start."""
    topics = Topics.unique(name)
    await create_topics(kafka_broker.bootstrap, topics, partitions=3)
    changelog = f"{topics.group}.study-state"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(changelog, partitions, 1, topic_configs=configs)])
    finally:
        await admin.close()
    env = {**_env(kafka_broker, topics), "STREAMER_STATE_DIR": str(tmp_path / "state")}
    return changelog, await _run_streamer(env)


async def test_changelog_with_other_partition_count_stops_the_start(
    kafka_broker: Any, tmp_path: Path
) -> None:
    changelog, result = await _start_on_a_changelog_made_by_hand(
        kafka_broker, tmp_path, "mismatch", 2, {"cleanup.policy": "compact"}
    )
    assert result.returncode == 2
    assert f"changelog topic {changelog} has 2 partitions" in result.stderr


async def test_a_changelog_that_is_not_compacted_stops_the_start(
    kafka_broker: Any, tmp_path: Path
) -> None:
    # Its records would go with the topic's retention: a lost disk would then lose studies.
    changelog, result = await _start_on_a_changelog_made_by_hand(
        kafka_broker, tmp_path, "delete-policy", 3, {"cleanup.policy": "delete"}
    )
    assert result.returncode == 2
    assert f"changelog topic {changelog} has cleanup.policy=delete" in result.stderr
    assert "set cleanup.policy=compact" in result.stderr


@pytest.mark.real_kafka
async def test_exactly_once_under_kill_loop(kafka_broker: Any, spawn: Spawn) -> None:
    """Exactly once: every study's Bundle appears once for read_committed readers, kills or not."""
    topics = Topics.unique("eos")
    env = _env(
        kafka_broker,
        topics,
        processing_guarantee="exactly_once",
        topic_partitions=2,
        commit_interval_seconds=0.3,
    )
    studies = list(range(1, 41))
    proc = spawn(env, "eos-0", disk="eos")
    proc.wait_for_log("partition ready")
    kills = 0
    async with Producer(kafka_broker.bootstrap, topics.input) as producer:
        for n in studies:
            for i in range(3):
                await producer.send_json(study_uid(n), doc(n, i))
            await producer.send(study_uid(n).encode(), encode_marker(study_uid(n), 3))
            if n % 10 == 5:  # kill mid-stream, restart on the same disk
                await producer.flush()
                await asyncio.sleep(0.4)
                proc.kill()
                kills += 1
                proc = spawn(env, f"eos-{kills}", disk="eos")
    records = await read_topic(
        kafka_broker.bootstrap,
        topics.output,
        until=lambda r: len(bundles_by_study(r)) >= len(studies),
        timeout=120,
        settle=3,
        isolation_level="read_committed",
    )
    got = bundles_by_study(records)
    assert kills == 4
    assert set(got) == {study_uid(n) for n in studies}
    for n in studies:
        [bundle] = got[study_uid(n)]  # exactly one for read_committed readers
        check_bundle(bundle, n, 3)


async def test_after_retention_late_instances_are_dead_lettered_even_after_restart(
    kafka_broker: Any, spawn: Spawn
) -> None:
    retention_s = 4.0
    topics = Topics.unique("retention")
    env = _env(kafka_broker, topics, state_retention_days=retention_s / 86_400)
    first = spawn(env, "first")
    first.wait_for_log("partition ready")
    await _send_study(kafka_broker.bootstrap, topics.input, 1, 2)
    await read_topic(kafka_broker.bootstrap, topics.output, until=lambda r: len(r) >= 1)
    first.wait_for_log("closed study past retention removed", timeout=retention_s + 30)
    code, _ = first.terminate()
    assert code == 0
    spawn(env, "second", disk="first").wait_for_log("partition ready")
    await _send_late(kafka_broker.bootstrap, topics.input, 1, 2)
    dlq = await read_topic(kafka_broker.bootstrap, topics.dlq, until=lambda r: len(r) >= 1)
    [dead] = dlq
    assert dead.key == study_uid(1).encode()
    assert dead.headers["error-type"] == b"LateInstanceError"
    await asyncio.sleep(TIMEOUT_S + 1)  # nothing may be published for the late instance
    records = await read_topic(kafka_broker.bootstrap, topics.output, until=lambda r: len(r) >= 1)
    [bundle] = bundles_by_study(records)[study_uid(1)]
    check_bundle(bundle, 1, 2)
