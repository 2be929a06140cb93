"""Startup checks: the topics exist (created when allowed), co-partitioned with the input."""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from streamer.config import Settings
from streamer.errors import ConfigError

log = logging.getLogger(__name__)


async def ensure_topics(settings: Settings) -> dict[str, int]:
    """Make sure input, output and DLQ topics exist; returns their partition counts.

    Output and DLQ get the input topic's partition count, so a study's Bundle and dead letters land
    in the partition number its instances came from (same key, same murmur2 partitioner).
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, client_id=f"{settings.client_id}-admin"
    )
    try:
        await admin.start()
    except KafkaError as exc:
        raise ConfigError(
            f"cannot reach Kafka at {settings.bootstrap_servers} (STREAMER_BOOTSTRAP_SERVERS): {exc}"
        ) from exc
    try:
        existing = await _partition_counts(admin)
        wanted = [settings.input_topic, settings.output_topic, settings.dlq_topic]
        missing = [t for t in wanted if t not in existing]
        if missing and not settings.create_topics:
            raise ConfigError(
                f"topic(s) {', '.join(missing)} do not exist and STREAMER_CREATE_TOPICS is false"
            )
        partitions = existing.get(settings.input_topic, settings.topic_partitions)
        new = [
            NewTopic(
                name=topic,
                num_partitions=partitions,
                replication_factor=settings.topic_replication_factor,
                topic_configs=_topic_configs(settings, topic),
            )
            for topic in missing
        ]
        if new:
            # Another streamer process may have created it first.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
            log.info("created topics", extra={"topics": missing, "partitions": partitions})
        counts = await _partition_counts(admin)
    except KafkaError as exc:
        raise ConfigError(f"cannot check topics on {settings.bootstrap_servers}: {exc}") from exc
    finally:
        await admin.close()
    for topic in (settings.output_topic, settings.dlq_topic):
        if counts.get(topic) not in (None, counts.get(settings.input_topic)):
            log.warning(
                "topic is not co-partitioned with the input topic",
                extra={"topic": topic, "partitions": counts.get(topic)},
            )
    return counts


def _topic_configs(settings: Settings, topic: str) -> dict[str, str]:
    if topic == settings.output_topic:
        # Latest Bundle per study is the contract; big studies make big Bundles.
        return {"max.message.bytes": str(settings.max_bundle_bytes), "cleanup.policy": "compact"}
    if topic == settings.input_topic:
        # Broker time stamps make inactivity deadlines independent of producers' clocks.
        return {"message.timestamp.type": "LogAppendTime"}
    return {"max.message.bytes": str(settings.max_bundle_bytes)}


async def _partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    # list_topics + describe only existing topics: describing a missing one auto-creates it on
    # some brokers (Tansu), which would hide a missing topic.
    names = await admin.list_topics()
    if not names:
        return {}
    described = await admin.describe_topics(list(names))
    return {
        d["topic"]: len(d["partitions"])
        for d in described
        if not d.get("error_code") and d.get("partitions") is not None
    }
