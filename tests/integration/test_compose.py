"""`docker-compose.yml` without Docker: its topics, its settings and its commands, on a real broker.

No Docker engine runs here, so the images are not built; what the compose file promises is checked
with the same parts: the topics its `topics` service creates (read from its script: partitions and
configs) are created on the test's Apache Kafka, and `python -m streamer` (the image's entry point)
runs with the `streamer` service's environment, topic creation off, so the start-up checks judge
those topics. The topic names are made unique per run (the broker is shared); that they are the
defaults is checked on its own. The sink service's command line goes through the sink's parser.
"""

from __future__ import annotations

import os
import re
import shlex
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fhir.resources.R4B.bundle import Bundle

from streamer.cli import parsers
from streamer.config import load_settings
from streamer.config.sink import load_sink_settings
from streamer.messages import encode_marker
from tests.dicom_factory import study_uid
from tests.hl7.validator import validate_all
from tests.integration.harness import (
    REPO,
    BrokerInfo,
    Producer,
    Spawn,
    bundles_by_study,
    doc,
    imaging_study,
    read_topic,
)

pytestmark = [pytest.mark.kafka, pytest.mark.real_kafka]

COMPOSE = REPO / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _topics_script(compose: dict[str, Any]) -> dict[str, tuple[int, dict[str, str]]]:
    """Each topic the `topics` service creates: (partitions, configs)."""
    script = "\n".join(compose["services"]["topics"]["command"])
    out: dict[str, tuple[int, dict[str, str]]] = {}
    for line in script.splitlines():
        words = shlex.split(line)
        if "--create" not in words:
            continue
        topic = words[words.index("--topic") + 1]
        partitions = int(words[words.index("--partitions") + 1])
        configs = dict(
            words[i + 1].split("=", 1) for i, word in enumerate(words) if word == "--config"
        )
        out[topic] = (partitions, configs)
    return out


def test_the_compose_topics_are_the_default_topic_names() -> None:
    topics = _topics_script(_compose())
    settings = load_settings()
    sink = load_sink_settings()
    assert set(topics) == {
        settings.input_topic,
        settings.output_topic,
        settings.dlq_topic,
        settings.changelog,  # '<group id>.study-state', the default group being "streamer"
        sink.sink_dlq_topic,
    }
    # The processor's start-up checks want the changelog and the output compacted, and every
    # topic of one partition count (the changelog's partitions follow the input's).
    assert {p for p, _ in topics.values()} == {6}
    assert topics[settings.changelog][1]["cleanup.policy"] == "compact"
    assert topics[settings.output_topic][1]["cleanup.policy"] == "compact"


def test_the_sink_command_parses() -> None:
    command = _compose()["services"]["sink"]["command"]
    assert command[0] == "sink"
    args = parsers.sink().parse_args(command[1:])
    assert args.fhir_base_url == "http://fhir:8080/fhir"


async def test_the_streamer_service_runs_on_the_compose_topics(
    kafka_broker: BrokerInfo, spawn: Spawn, tmp_path: Path
) -> None:
    compose = _compose()
    settings = load_settings()
    tag = uuid.uuid4().hex[:8]
    names = {name: f"compose-{tag}-{name}" for name in _topics_script(compose)}
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(names[name], partitions, 1, topic_configs=configs)
                for name, (partitions, configs) in _topics_script(compose).items()
            ]
        )
    finally:
        await admin.close()

    service: dict[str, str] = {
        k: str(v) for k, v in compose["services"]["streamer"]["environment"].items()
    }
    assert service["STREAMER_CREATE_TOPICS"] == "false"  # so the checks below judge the topics
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMER_")}
    env |= service | {
        "STREAMER_BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
        "STREAMER_HTTP_PORT": "0",
        "STREAMER_GROUP_ID": f"compose-{tag}",
        "STREAMER_INPUT_TOPIC": names[settings.input_topic],
        "STREAMER_OUTPUT_TOPIC": names[settings.output_topic],
        "STREAMER_DLQ_TOPIC": names[settings.dlq_topic],
        "STREAMER_CHANGELOG_TOPIC": names[settings.changelog],
    }
    proc = spawn(env, "compose")
    proc.wait_for_log("partition ready", timeout=60)

    n, count = 7, 3
    async with Producer(kafka_broker.bootstrap, names[settings.input_topic]) as producer:
        for i in range(count):
            await producer.send_json(study_uid(n), doc(n, i))
        await producer.send(study_uid(n).encode(), encode_marker(study_uid(n), count))
    records = await read_topic(
        kafka_broker.bootstrap,
        names[settings.output_topic],
        until=lambda rs: len(rs) >= 1,
        timeout=60,
    )
    [bundle] = bundles_by_study(records)[study_uid(n)]
    Bundle.model_validate(bundle)
    validate_all([bundle])  # the HL7 validator: no errors
    assert bundle["type"] == "transaction"
    assert imaging_study(bundle)["numberOfInstances"] == count
    # The service's settings took effect: its timezone (the study time is in Europe/Berlin).
    started = imaging_study(bundle)["started"]
    assert re.search(r"\+0[12]:00$", started), started
    code, _ = proc.terminate()
    assert code == 0, proc.log()[-2000:]
