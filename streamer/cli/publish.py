"""`python -m streamer publish PATH...`: DICOM files -> one DICOM JSON message per instance + markers."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from streamer.config import Settings, load_log_level, load_settings
from streamer.dicom.files import list_files, read_file
from streamer.errors import InvalidInstanceError
from streamer.fhir import check_instance
from streamer.kafka.publisher import Publisher
from streamer.log import configure_logging
from streamer.messages import encode_marker

log = logging.getLogger(__name__)


@dataclass
class PublishReport:
    """What was sent: instances per study, and files skipped with their reason."""

    instances: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def studies(self) -> int:
        return len(self.instances)

    def summary(self) -> str:
        skipped = ", ".join(f"{reason}={n}" for reason, n in sorted(self.skipped.items()))
        return (
            f"published studies={self.studies} instances={sum(self.instances.values())} "
            f"skipped_files={sum(self.skipped.values())}" + (f" ({skipped})" if skipped else "")
        )


def iter_instances(
    paths: Sequence[Path], report: PublishReport
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(StudyInstanceUID, DICOM JSON) for every DICOM instance file under paths; skips are counted."""
    for path in list_files(list(paths)):
        outcome = read_file(path)
        if isinstance(outcome, str):
            report.skipped[outcome] += 1
            continue
        doc, _dropped = outcome
        try:
            key = check_instance(doc)
        except InvalidInstanceError:
            report.skipped["not an instance (missing UIDs)"] += 1
            continue
        yield key.study_uid, doc


async def publish(
    paths: Sequence[Path], settings: Settings, *, markers: bool = True
) -> PublishReport:
    """Send every instance keyed by StudyInstanceUID, then one marker per study with its count."""
    report = PublishReport()
    async with Publisher(settings) as out:
        for study_uid, doc in iter_instances(paths, report):
            await out.send(settings.input_topic, study_uid.encode(), orjson.dumps(doc))
            report.instances[study_uid] += 1
        if markers:
            # Markers go last: same key, same partition, so each follows its study's instances.
            for study_uid, count in report.instances.items():
                await out.send(
                    settings.input_topic, study_uid.encode(), encode_marker(study_uid, count)
                )
        await out.flush()
    return report


def main(argv: Sequence[str]) -> int:
    """CLI entry point for the `publish` subcommand; logs at STREAMER_LOG_LEVEL (default WARNING)."""
    configure_logging(load_log_level("WARNING"), "text")
    parser = argparse.ArgumentParser(
        prog="python -m streamer publish",
        description="Publish DICOM files as DICOM JSON instance messages plus end-of-study markers. "
        "Broker and topic come from STREAMER_BOOTSTRAP_SERVERS / STREAMER_INPUT_TOPIC.",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="DICOM files or folders (recursive)")
    parser.add_argument(
        "--no-markers", action="store_true", help="do not send end-of-study markers"
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    report = asyncio.run(publish(args.paths, settings, markers=not args.no_markers))
    print(report.summary())  # noqa: T201 - the CLI's output
    return 0 if report.studies else 1
