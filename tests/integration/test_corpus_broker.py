"""The bad-input corpus through `python -m streamer` on a real broker: every record has its fate."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streamer.messages import encode_marker
from tests import corpus
from tests.dicom_factory import make_instance, series_uid, sop_uid, study_uid
from tests.hl7.validator import validate_all
from tests.integration.harness import (
    BrokerInfo,
    Spawn,
    Topics,
    bundles_by_study,
    create_topics,
    read_topic,
    streamer_env,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

TIMEOUT_S = 3


def _count(bundle: dict[str, Any]) -> int:
    [study] = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ImagingStudy"
    ]
    n: int = study["numberOfInstances"]
    return n


async def test_every_kind_of_bad_input_has_its_fate_on_a_real_broker(
    kafka_broker: BrokerInfo, spawn: Spawn
) -> None:
    topics = Topics.unique("corpus")
    await create_topics(kafka_broker.bootstrap, topics, partitions=1)
    proc = spawn(
        streamer_env(
            kafka_broker.bootstrap,
            kafka_broker.kind,
            topics,
            study_timeout_seconds=TIMEOUT_S,
            max_record_bytes=corpus.MAX_RECORD_BYTES,
            max_instances_per_study=corpus.MAX_INSTANCES_PER_STUDY,
        )
    )
    proc.wait_for_log("partition ready")
    # case index -> its study number, the offsets of its records, and the good study after it
    plan: list[tuple[corpus.Case, int, list[int], int]] = []
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, linger_ms=5)
    await producer.start()
    try:
        for i, case in enumerate(corpus.CASES):
            bad, good = 1000 + 2 * i, 1001 + 2 * i
            offsets = []
            for key, value in case.build(bad):
                meta = await (await producer.send(topics.input, value=value, key=key))
                offsets.append(meta.offset)
            if case.marker and case.bundle_instances is not None:
                uid = study_uid(bad).encode()
                await producer.send(
                    topics.input, value=encode_marker(study_uid(bad), None), key=uid
                )
            doc = make_instance(study_uid(good), series_uid(good), sop_uid(good, 0))
            await producer.send(topics.input, value=orjson.dumps(doc), key=study_uid(good).encode())
            await producer.send(
                topics.input, value=encode_marker(study_uid(good), 1), key=study_uid(good).encode()
            )
            plan.append((case, bad, offsets, good))
        await producer.flush()
    finally:
        await producer.stop()
    expected_dlq = sum(len(c.dlq) for c in corpus.CASES)
    goods = {study_uid(good) for _, _, _, good in plan}
    out = await read_topic(
        kafka_broker.bootstrap,
        topics.output,
        until=lambda r: goods <= set(bundles_by_study(r)),
        timeout=120,
        settle=TIMEOUT_S + 2,  # studies closed by their timeout come a little later
    )
    dlq = await read_topic(
        kafka_broker.bootstrap, topics.dlq, until=lambda r: len(r) >= expected_dlq, timeout=60
    )
    await asyncio.sleep(0)
    bundles = bundles_by_study(out)
    validate_all([b for published in bundles.values() for b in published])
    log_lines = [orjson.loads(line) for line in proc.log().splitlines() if line.startswith("{")]
    for case, bad, offsets, good in plan:
        assert _count(bundles[study_uid(good)][-1]) == 1, case.kind
        first, last = offsets[0], offsets[-1] + 1
        mine = [
            r
            for r in dlq
            if first <= int(r.headers["source-offset"]) < last or r.key == study_uid(bad).encode()
        ]
        assert [r.headers["error-type"].decode() for r in mine] == list(case.dlq), case.kind
        if case.bundle_instances is None:
            assert study_uid(bad) not in bundles, case.kind
        else:
            assert _count(bundles[study_uid(bad)][-1]) == case.bundle_instances, case.kind
        if case.warning is not None:
            texts = [
                f"{line.get('msg')} {line.get('warning', '')} {line.get('changed_tags', '')}"
                for line in log_lines
                if line.get("study_uid") == study_uid(bad)
            ]
            assert any(case.warning in t for t in texts), (case.kind, texts)
