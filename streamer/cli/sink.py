"""``python -m streamer sink --fhir-base-url URL``: the Bundles topic into a FHIR server.

Consumes ``STREAMER_OUTPUT_TOPIC`` (``fhir.bundles``) in its own consumer group and POSTs each
transaction Bundle to the FHIR server's base URL; see ``streamer/sink/`` for what happens to each
answer. Kafka settings are the processor's STREAMER_* variables; the sink's own are
``SinkSettings`` (STREAMER_FHIR_*, STREAMER_SINK_*). /metrics, /healthz and /readyz are served on
STREAMER_HTTP_HOST:STREAMER_HTTP_PORT as for the processor.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from streamer.cli.parsers import sink as _parser
from streamer.config import (
    Settings,
    SinkSettings,
    load_settings,
    load_sink_settings,
    unknown_env_vars,
)
from streamer.errors import ConfigError
from streamer.log import configure_logging

if TYPE_CHECKING:
    from streamer.http import StatusServer
    from streamer.sink.loop import FhirSink

log = logging.getLogger("streamer.sink")

_TOPIC_CHECK_S = 5.0


def main(argv: Sequence[str]) -> int:
    """Entry point of ``sink``. Settings errors raise ConfigError (exit 2); a crash exits 1."""
    args = _parser().parse_args(argv)
    settings = load_settings()
    overrides: dict[str, object] = {}
    if args.fhir_base_url is not None:
        overrides["fhir_base_url"] = args.fhir_base_url
    if args.group is not None:
        overrides["sink_group_id"] = args.group
    sink_settings = load_sink_settings(**overrides)
    if sink_settings.fhir_base_url is None:
        raise ConfigError("no FHIR server: give --fhir-base-url or STREAMER_FHIR_BASE_URL")
    configure_logging(settings.log_level, settings.log_format)
    # httpx logs every request at INFO; the sink logs each Bundle's fate itself.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    for name in unknown_env_vars():
        log.warning("unknown setting ignored", extra={"variable": name})
    try:
        return asyncio.run(run_sink(settings, sink_settings))
    except ConfigError:
        raise
    except Exception:
        log.exception("fatal error, exiting")
        return 1


async def run_sink(settings: Settings, sink_settings: SinkSettings) -> int:
    """Run the sink until SIGTERM/SIGINT."""
    from streamer.kafka.sink_io import (
        BundleConsumer,
        DeadLetterProducer,
        ensure_sink_topics,
        wait_for_topic,
    )
    from streamer.sink.client import FhirClient
    from streamer.sink.loop import FhirSink
    from streamer.sink.retry import Backoff

    assert sink_settings.fhir_base_url is not None
    group = sink_settings.group_for(settings)
    bundles_topic_exists = await ensure_sink_topics(settings, sink_settings.sink_dlq_topic)
    client = FhirClient(
        sink_settings.fhir_base_url,
        token=_secret(sink_settings.fhir_token),
        username=sink_settings.fhir_username,
        password=_secret(sink_settings.fhir_password),
        ca_file=sink_settings.fhir_ca_file,
        timeout_s=sink_settings.fhir_timeout_seconds,
    )
    consumer = BundleConsumer(settings, group)
    producer = DeadLetterProducer(settings, sink_settings.sink_dlq_topic)
    sink = FhirSink(
        consumer,
        client,
        producer,
        Backoff(sink_settings.fhir_retry_initial_seconds, sink_settings.fhir_retry_max_seconds),
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, sink.stop)
    log.info(
        "starting sink",
        extra={
            "topic": settings.output_topic,
            "dlq_topic": sink_settings.sink_dlq_topic,
            "group_id": group,
            "fhir_base_url": sink_settings.fhir_base_url,
            "auth": "bearer"
            if sink_settings.fhir_token
            else "basic"
            if sink_settings.fhir_username
            else "none",
        },
    )
    if not await client.metadata_ok():
        log.warning(
            "FHIR server does not answer /metadata yet; Bundles wait for it",
            extra={"fhir_base_url": sink_settings.fhir_base_url},
        )
    server = await _serve_http(settings, sink, sink_settings.fhir_timeout_seconds)
    try:
        if not bundles_topic_exists:
            log.warning("waiting for the Bundles topic", extra={"topic": settings.output_topic})
            while not sink.stopping:
                if await wait_for_topic(settings, settings.output_topic, _TOPIC_CHECK_S):
                    break
        if sink.stopping:
            return 0
        await producer.start()
        try:
            await consumer.start(sink.on_revoked)
            try:
                await sink.run()
            finally:
                await consumer.stop()
        finally:
            await producer.stop()
    finally:
        await client.aclose()
        if server is not None:
            await server.stop()
    return 0


def _secret(value: object) -> str | None:
    """The plain text of a SecretStr (None stays None)."""
    get = getattr(value, "get_secret_value", None)
    return None if get is None else str(get())


async def _serve_http(
    settings: Settings, sink: FhirSink, post_timeout_s: float
) -> StatusServer | None:
    """/metrics, /healthz and /readyz of the sink on STREAMER_HTTP_PORT (0: none).

    /healthz turns red when the loop made no progress (a poll, a POST, a wait between retries)
    for longer than two POST timeouts; /readyz is green while partitions are assigned and the
    FHIR server takes Bundles. A port that cannot be used is logged and the sink runs without it.
    """
    if not settings.http_port:
        return None
    from streamer.http import MIN_STALL_SECONDS, Observed, StatusServer

    server = StatusServer(
        # The endpoints read metrics.exposition(), last_progress, assigned, ready and
        # restoring_partitions(); the sink has each of them (its own metrics registry).
        cast(Observed, sink),
        settings.http_host,
        settings.http_port,
        stall_limit=max(MIN_STALL_SECONDS, 2 * post_timeout_s + 5),
    )
    where = {"host": settings.http_host, "port": settings.http_port}
    try:
        await server.start()
    except OSError as exc:
        log.error(
            "http server not started (STREAMER_HTTP_HOST/STREAMER_HTTP_PORT)",
            extra={**where, "reason": exc.strerror or str(exc)},
        )
        return None
    log.info("http server listening", extra=where)
    return server
