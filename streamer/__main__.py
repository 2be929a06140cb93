"""`python -m streamer [run|publish|convert|demo]`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from streamer.config import Settings, load_settings, unknown_env_vars
from streamer.errors import ConfigError
from streamer.log import configure_logging

log = logging.getLogger("streamer")

USAGE = """usage: python -m streamer [COMMAND] [ARGS]

commands:
  run                  consume dicom.instances, publish fhir.bundles (default; STREAMER_* settings)
  publish PATH...      publish DICOM files as instance messages plus end-of-study markers
  convert PATH... [-o OUTDIR]
                       convert DICOM files to one Bundle file per study (no broker)
  demo                 start a local broker, the streamer and sample studies; print the Bundles
"""


async def run(settings: Settings) -> int:
    """Run the stream processor until SIGTERM/SIGINT."""
    from streamer.app import Processor
    from streamer.kafka.admin import ensure_topics
    from streamer.kafka.consumer import KafkaSource
    from streamer.kafka.producer import KafkaSink

    counts = await ensure_topics(settings)
    log.info(
        "starting",
        extra={
            "input_topic": settings.input_topic,
            "output_topic": settings.output_topic,
            "dlq_topic": settings.dlq_topic,
            "group_id": settings.group_id,
            "partitions": counts.get(settings.input_topic),
        },
    )
    processor = Processor(settings, KafkaSource(settings), KafkaSink(settings))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, processor.stop)
    await processor.run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch the subcommand; settings errors exit 2 with a message naming the setting."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args.pop(0) if args and not args[0].startswith("-") else "run"
    if command in {"-h", "--help", "help"} or (
        command == "run" and args[:1] in (["-h"], ["--help"])
    ):
        print(USAGE)  # noqa: T201
        return 0
    try:
        if command in {"publish", "convert", "demo"}:
            from streamer.dicom.files import quiet_pydicom

            quiet_pydicom()
        if command == "publish":
            from streamer.publish import main as publish_main

            configure_logging(os.environ.get("STREAMER_LOG_LEVEL", "WARNING").upper(), "text")
            return publish_main(args)
        if command == "convert":
            from streamer.convert import main as convert_main

            return convert_main(args)
        if command == "demo":
            from streamer.demo import main as demo_main

            return demo_main(args)
        if command != "run":
            print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)  # noqa: T201
            return 2
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format)
        for name in unknown_env_vars(dict(os.environ)):
            log.warning("unknown setting ignored", extra={"variable": name})
        try:
            return asyncio.run(run(settings))
        except ConfigError:
            raise
        except Exception:  # exit non-zero so the orchestrator restarts us; nothing was committed past un-acked output
            log.exception("fatal error, exiting")
            return 1
    except ConfigError as exc:
        print(f"streamer: {exc}", file=sys.stderr)  # noqa: T201
        return 2


if __name__ == "__main__":
    sys.exit(main())
