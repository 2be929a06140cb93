"""`python -m streamer tail`: print the Bundles of the output topic as they arrive.

One line per Bundle (one per study)::

    2026-11-25T10:31:02Z study=1.2.3 modalities=CT,PT series=2 instances=170 close-reason=marker bytes=48211

The patient is left out unless ``--show-patient`` (then ``patient_id=... patient_name=...`` end the
line); ``--json`` prints each Bundle's JSON on one line instead. Starts at the end of the topic
(only new Bundles) unless ``--from-beginning``; reads outside any consumer group, so nothing is
committed and the processor is not disturbed. Ctrl-C stops it (exit 0). Broker, topic and security
come from the STREAMER_* settings (STREAMER_OUTPUT_TOPIC, STREAMER_BOOTSTRAP_SERVERS, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from streamer.cli.parsers import tail as parser
from streamer.config import Settings, load_log_level, load_settings
from streamer.kafka.reader import TopicRecord, follow
from streamer.log import configure_logging


def _resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [
        resource
        for entry in bundle.get("entry") or []
        if isinstance(entry, dict)
        and isinstance(resource := entry.get("resource"), dict)
        and resource.get("resourceType") == kind
    ]


def _quote(text: str) -> str:
    return orjson.dumps(text).decode()


def _patient(bundle: dict[str, Any]) -> str:
    patients = _resources(bundle, "Patient")
    if not patients:
        return "patient_id=- patient_name=-"
    patient = patients[0]
    identifiers = [i for i in patient.get("identifier") or [] if isinstance(i, dict)]
    patient_id = next((str(i["value"]) for i in identifiers if i.get("value")), "-")
    names = [n for n in patient.get("name") or [] if isinstance(n, dict)]
    name = "-"
    if names:
        first = names[0]
        name = first.get("text") or "^".join(
            [first.get("family") or "", " ".join(first.get("given") or [])]
        ).rstrip("^")
    return f"patient_id={_quote(patient_id)} patient_name={_quote(name or '-')}"


def _header(record: TopicRecord, name: str) -> str:
    for key, value in record.headers:
        if key == name:
            return value.decode("utf-8", "replace")
    return "-"


def summary_line(record: TopicRecord, *, show_patient: bool = False) -> str:
    """The one-line summary of a Bundle record (never the patient unless ``show_patient``)."""
    when = datetime.datetime.fromtimestamp(record.timestamp_ms / 1000, datetime.UTC)
    key = record.key.decode("utf-8", "replace") if record.key is not None else "-"
    head = f"{when:%Y-%m-%dT%H:%M:%SZ} study={key}"
    if record.value is None:
        return f"{head} deleted (tombstone)"
    try:
        bundle = orjson.loads(record.value)
    except orjson.JSONDecodeError:
        bundle = None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return f"{head} not a FHIR Bundle bytes={len(record.value)}"
    studies = _resources(bundle, "ImagingStudy")
    study = studies[0] if studies else {}
    modalities = sorted(
        {str(m["code"]) for m in study.get("modality") or [] if isinstance(m, dict) and "code" in m}
    )
    line = (
        f"{head} modalities={','.join(modalities) or '-'} "
        f"series={study.get('numberOfSeries', 0)} instances={study.get('numberOfInstances', 0)} "
        f"close-reason={_header(record, 'close-reason')} bytes={len(record.value)}"
    )
    return f"{line} {_patient(bundle)}" if show_patient else line


async def tail(
    settings: Settings,
    *,
    from_beginning: bool = False,
    as_json: bool = False,
    show_patient: bool = False,
    max_bundles: int | None = None,
) -> int:
    """Print the output topic's records until cancelled or ``max_bundles`` are printed."""
    topic = settings.output_topic

    def ready(partitions: int) -> None:
        start = "the beginning" if from_beginning else "the end"
        print(  # noqa: T201
            f"tail: reading {topic} ({partitions} partitions) from {start}; Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )

    def waiting() -> None:
        print(f"tail: waiting for topic {topic} to exist", file=sys.stderr, flush=True)  # noqa: T201

    printed = 0
    if max_bundles is not None and max_bundles <= 0:
        return 0
    async for record in follow(
        settings, topic, from_beginning=from_beginning, on_ready=ready, on_waiting=waiting
    ):
        if as_json:
            if record.value is None:
                continue
            line = record.value.decode("utf-8", "replace")
        else:
            line = summary_line(record, show_patient=show_patient)
        print(line, flush=True)  # noqa: T201 - the CLI's output
        printed += 1
        if max_bundles is not None and printed >= max_bundles:
            break
    return 0


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    """``tail`` until it ends, or until SIGINT/SIGTERM cancels it (then exit 0)."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        return await tail(
            settings,
            from_beginning=args.from_beginning,
            as_json=args.json,
            show_patient=args.show_patient,
            max_bundles=args.max_bundles,
        )
    except asyncio.CancelledError:
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def main(argv: Sequence[str]) -> int:
    """CLI entry point for the `tail` subcommand; logs at STREAMER_LOG_LEVEL (default WARNING)."""
    configure_logging(load_log_level("WARNING"), "text")
    args = parser().parse_args(argv)
    settings = load_settings()
    try:
        return asyncio.run(_run(args, settings))
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # The reader went away (`tail | head`): not an error. Keep Python's exit flush quiet.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
