"""``python -m streamer [run]``: the stream processor, configured by STREAMER_* variables.

Consumes the input topic and publishes Bundles and dead letters until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from streamer.config import Settings, load_settings, unknown_env_vars
from streamer.errors import ConfigError
from streamer.log import configure_logging

if TYPE_CHECKING:
    from streamer.app import Processor
    from streamer.http import StatusServer
    from streamer.state.study_store import StudyStores

log = logging.getLogger("streamer")


def open_state(settings: Settings) -> StudyStores:
    """Lock this process's state directory; another process on it stops the start (exit 2)."""
    from streamer.state.directory import StateDirectory
    from streamer.state.errors import StoreLockedError
    from streamer.state.study_store import StudyStores

    try:
        directory = StateDirectory(Path(settings.state_dir), settings.group_id)
    except StoreLockedError as exc:
        raise ConfigError(str(exc)) from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot use STREAMER_STATE_DIR {settings.state_dir!r}: {exc.strerror or exc}"
        ) from exc
    return StudyStores(directory, settings.input_topic, settings.state_engine)


def build_processor(settings: Settings, stores: StudyStores) -> Processor:
    """The processor wired to Kafka; the one place that does it, for `run` and for `demo`."""
    # Imported here: a settings error should exit before the mapping code is loaded.
    from streamer.app import Processor
    from streamer.kafka.changelog import KafkaChangelogReader
    from streamer.kafka.consumer import KafkaSource
    from streamer.kafka.outage import BrokerWatch
    from streamer.kafka.producer import KafkaSink

    watch = BrokerWatch()
    watch.install()
    return Processor(
        settings,
        KafkaSource(settings, watch),
        KafkaSink(settings),
        KafkaChangelogReader(settings),
        stores.open,
    )


async def run(settings: Settings) -> int:
    """Run the stream processor until SIGTERM/SIGINT."""
    from streamer.compiled import extensions, stale_sources
    from streamer.kafka.admin import ensure_topics

    counts = await ensure_topics(settings)
    log.info(
        "starting",
        extra={
            "input_topic": settings.input_topic,
            "output_topic": settings.output_topic,
            "dlq_topic": settings.dlq_topic,
            "group_id": settings.group_id,
            "partitions": counts.get(settings.input_topic),
            "compiled_modules": len(extensions()),
        },
    )
    if stale := stale_sources():
        log.warning(
            "compiled modules older than their sources run instead of them (`make compile`)",
            extra={"sources": stale},
        )
    stores = open_state(settings)
    try:
        processor = build_processor(settings, stores)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, processor.stop)
        server = await serve_http(settings, processor)
        try:
            await processor.run()
        finally:
            if server is not None:
                await server.stop()
    finally:
        stores.close()
    return 0


async def serve_http(settings: Settings, processor: Processor) -> StatusServer | None:
    """/metrics, /healthz and /readyz on STREAMER_HTTP_PORT (0: none).

    A port that cannot be used is logged as an error and the stream keeps running without it: the
    failing probes show it, and the data keeps flowing meanwhile.
    """
    if not settings.http_port:
        return None
    from streamer.http import StatusServer, stall_limit

    server = StatusServer(
        processor,
        settings.http_host,
        settings.http_port,
        stall_limit=stall_limit(settings.timer_interval_seconds),
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


def main(argv: Sequence[str]) -> int:
    """Entry point of ``run``; takes no arguments (settings come from the environment).

    A settings problem raises ConfigError (the caller exits 2); any other failure exits 1 so the
    orchestrator restarts us: nothing was committed past output the broker had not acknowledged.
    """
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    for name in unknown_env_vars():
        log.warning("unknown setting ignored", extra={"variable": name})
    from streamer.memory import set_mmap_threshold

    if settings.malloc_mmap_threshold_bytes and not set_mmap_threshold(
        settings.malloc_mmap_threshold_bytes
    ):
        log.info("STREAMER_MALLOC_MMAP_THRESHOLD_BYTES not applied (not glibc)")
    try:
        return asyncio.run(run(settings))
    except ConfigError:
        raise
    except Exception:
        log.exception("fatal error, exiting")
        return 1
