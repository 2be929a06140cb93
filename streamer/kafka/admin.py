"""Startup checks: the broker answers; the topics exist (created if allowed) and are co-partitioned."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from streamer.config import Settings
from streamer.errors import ConfigError
from streamer.kafka.security import client_kwargs, start_client

log = logging.getLogger(__name__)

_DESCRIBE_RETRIES = 50
_DESCRIBE_PAUSE_S = 0.2


async def ensure_topics(settings: Settings) -> dict[str, int]:
    """Make sure input, output, DLQ and changelog topics exist; returns their partition counts.

    Output and DLQ get the input topic's partition count, so a study's Bundle and dead letters land
    in the partition number its instances came from (same key, same murmur2 partitioner). The
    changelog must have exactly that count: partition N of it holds the state of input partition N.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-admin",
        **client_kwargs(settings),
    )
    # A broker that refuses us (TLS, SASL) or cannot be reached stops the start within a deadline.
    await start_client(admin.start, admin.close, settings)
    try:
        existing = await _partition_counts(admin)
        wanted = [
            settings.input_topic,
            settings.output_topic,
            settings.dlq_topic,
            settings.changelog,
        ]
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
        for _ in range(_DESCRIBE_RETRIES):
            # A topic just created may not be described yet.
            if all(t in counts for t in wanted):
                break
            await asyncio.sleep(_DESCRIBE_PAUSE_S)
            counts = await _partition_counts(admin)
        policies = await _cleanup_policies(admin, [settings.changelog, settings.output_topic])
    except KafkaError as exc:
        raise ConfigError(f"cannot check topics on {settings.bootstrap_servers}: {exc}") from exc
    finally:
        await admin.close()
    if counts.get(settings.changelog) != counts.get(settings.input_topic):
        raise ConfigError(
            f"changelog topic {settings.changelog} has {counts.get(settings.changelog)} partitions "
            f"but the input topic {settings.input_topic} has {counts.get(settings.input_topic)}: "
            "they must match (recreate the changelog, or set STREAMER_CHANGELOG_TOPIC)"
        )
    _check_compacted(settings, policies)
    for topic in (settings.output_topic, settings.dlq_topic):
        if counts.get(topic) not in (None, counts.get(settings.input_topic)):
            log.warning(
                "topic is not co-partitioned with the input topic",
                extra={"topic": topic, "partitions": counts.get(topic)},
            )
    return counts


async def broker_reachable(
    bootstrap: str, timeout_s: float, settings: Settings | None = None
) -> bool:
    """Whether a broker at ``bootstrap`` answers a cluster description listing at least one broker.

    For start-up probes (the local brokers of the demo and the tests): every failure, including a
    request slower than ``timeout_s``, just means "not (yet) reachable". ``settings`` gives the
    security settings (TLS, SASL) to connect with; without, plain text.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(timeout_s * 1000),
        **(client_kwargs(settings) if settings is not None else {}),
    )
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable yet"
        log.debug("broker at %s not reachable: %r", bootstrap, exc)
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def _topic_configs(settings: Settings, topic: str) -> dict[str, str]:
    if topic == settings.output_topic:
        # Latest Bundle per study is the contract; big studies make big Bundles.
        return {"max.message.bytes": str(settings.max_bundle_bytes), "cleanup.policy": "compact"}
    if topic == settings.changelog:
        # Latest record per key is the state. Tombstones are kept a day, so a restore that is
        # behind still sees deletions; a store older than that is rebuilt (state/restore.py).
        return {
            "cleanup.policy": "compact",
            "delete.retention.ms": str(24 * 3600 * 1000),
            "max.message.bytes": str(settings.max_bundle_bytes),
        }
    if topic == settings.input_topic:
        # Broker time stamps make inactivity deadlines independent of producers' clocks.
        return {"message.timestamp.type": "LogAppendTime"}
    return {"max.message.bytes": str(settings.max_bundle_bytes)}


async def _cleanup_policies(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, str | None]:
    """Each topic's ``cleanup.policy`` as the broker reports it; None where it does not say.

    Apache Kafka reports every topic config, defaults included; Tansu only those set at creation;
    a cluster may refuse DescribeConfigs to a client without that permission (then: all None).
    """
    resources = [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics]
    try:
        responses = await admin.describe_configs(resources)
    except KafkaError as exc:
        log.warning("cannot read topic configs", extra={"topics": topics, "error": repr(exc)})
        return dict.fromkeys(topics)
    found: dict[str, str | None] = dict.fromkeys(topics)
    for response in responses:
        for error_code, _, _, name, entries in response.resources:
            if error_code == 0 and name in found:
                found[name] = next((e[1] for e in entries if e[0] == "cleanup.policy"), None)
    return found


def _check_compacted(settings: Settings, policies: dict[str, str | None]) -> None:
    """The changelog must be compacted (or its state is deleted with the topic's retention, and a
    lost disk loses studies): a start on another policy stops. The output topic should be (its
    latest record per study is the study): a warning."""
    changelog = policies.get(settings.changelog)
    if changelog is not None and "compact" not in changelog.split(","):
        raise ConfigError(
            f"changelog topic {settings.changelog} has cleanup.policy={changelog}: the study state "
            "would be deleted after the topic's retention; set cleanup.policy=compact on it (or "
            "let the streamer create it: STREAMER_CREATE_TOPICS)"
        )
    output = policies.get(settings.output_topic)
    if output is not None and "compact" not in output.split(","):
        log.warning(
            "output topic is not compacted: its latest Bundle per study is not kept for good",
            extra={"topic": settings.output_topic, "cleanup_policy": output},
        )
    for topic, policy in policies.items():
        if policy is None:
            log.info("topic's cleanup.policy not reported by the broker", extra={"topic": topic})


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
