"""`python -m streamer publish PATH...`: instances -> one DICOM JSON message each, plus markers.

Inputs, by file name: ``*.json`` holds one DICOM JSON instance or a list of them, ``*.jsonl`` and
``*.ndjson`` one instance per line; every other file is read as a DICOM file (folders are searched
recursively). Each instance is sent keyed by its StudyInstanceUID, then one end-of-study marker
per study with its instance count. ``--rate N`` paces the messages (instances and markers) to at
most N per second. A progress bar goes to stderr when it is a terminal (not with ``--quiet``); the
last line on stdout is the summary.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from streamer.cli.parsers import publish as parser
from streamer.config import Settings, load_log_level, load_settings
from streamer.dicom.files import list_files, read_file
from streamer.errors import InvalidInstanceError
from streamer.fhir import check_instance
from streamer.kafka.publisher import Publisher
from streamer.log import configure_logging
from streamer.messages import encode_marker

log = logging.getLogger(__name__)

JSON_SUFFIXES = frozenset({".json"})
JSON_LINES_SUFFIXES = frozenset({".jsonl", ".ndjson"})

SKIP_NOT_INSTANCE = "not an instance (missing UIDs)"
SKIP_BAD_JSON_FILE = "not valid JSON"
SKIP_BAD_JSON_LINE = "JSON line not valid JSON"
SKIP_NOT_OBJECT = "JSON value not an object"
SKIP_UNREADABLE = "unreadable file"

# Wait for the broker's acks every so many messages: pending sends are held in memory until then.
_FLUSH_EVERY = 5_000


@dataclass
class PublishReport:
    """What was sent: instances per study; files and JSON records skipped, with their reason."""

    instances: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)  # files, by reason
    skipped_records: Counter[str] = field(default_factory=Counter)  # JSON values and lines
    markers: int = 0
    seconds: float = 0.0

    @property
    def studies(self) -> int:
        return len(self.instances)

    def summary(self) -> str:
        reasons = self.skipped + self.skipped_records
        skipped = ", ".join(f"{reason}={n}" for reason, n in sorted(reasons.items()))
        return (
            f"published studies={self.studies} instances={sum(self.instances.values())} "
            f"markers={self.markers} skipped_files={sum(self.skipped.values())} "
            f"skipped_records={sum(self.skipped_records.values())} seconds={self.seconds:.1f}"
            + (f" ({skipped})" if skipped else "")
        )


def iter_instances(
    paths: Sequence[Path],
    report: PublishReport,
    on_file: Callable[[], None] | None = None,
    files: Sequence[Path] | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(StudyInstanceUID, DICOM JSON) for every instance under ``paths``; skips are counted.

    ``files`` is ``list_files(paths)`` when the caller has it already; ``on_file()`` is called
    after each file.
    """
    for path in list_files(list(paths)) if files is None else files:
        suffix = path.suffix.lower()
        if suffix in JSON_SUFFIXES:
            docs = _json_file(path, report)
        elif suffix in JSON_LINES_SUFFIXES:
            docs = _json_lines_file(path, report)
        else:
            docs = _dicom_file(path, report)
        for doc in docs:
            try:
                key = check_instance(doc)
            except InvalidInstanceError:
                report.skipped_records[SKIP_NOT_INSTANCE] += 1
                continue
            yield key.study_uid, doc
        if on_file is not None:
            on_file()


def _dicom_file(path: Path, report: PublishReport) -> Iterator[dict[str, Any]]:
    outcome = read_file(path)
    if isinstance(outcome, str):
        report.skipped[outcome] += 1
        return
    doc, _dropped = outcome
    yield doc


def _json_file(path: Path, report: PublishReport) -> Iterator[dict[str, Any]]:
    """One DICOM JSON instance (an object) or a list of them (as a QIDO/WADO metadata reply)."""
    try:
        value = orjson.loads(path.read_bytes())
    except OSError:
        report.skipped[SKIP_UNREADABLE] += 1
        return
    except orjson.JSONDecodeError:
        report.skipped[SKIP_BAD_JSON_FILE] += 1
        return
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict):
            yield item
        else:
            report.skipped_records[SKIP_NOT_OBJECT] += 1


def _json_lines_file(path: Path, report: PublishReport) -> Iterator[dict[str, Any]]:
    """One DICOM JSON instance per line; blank lines are ignored."""
    try:
        with path.open("rb") as lines:
            for line in lines:
                if not line.strip():
                    continue
                try:
                    item = orjson.loads(line)
                except orjson.JSONDecodeError:
                    report.skipped_records[SKIP_BAD_JSON_LINE] += 1
                    continue
                if isinstance(item, dict):
                    yield item
                else:
                    report.skipped_records[SKIP_NOT_OBJECT] += 1
    except OSError:
        report.skipped[SKIP_UNREADABLE] += 1


class RateLimiter:
    """A token bucket: ``await acquire()`` at most ``rate`` times per second on average.

    The bucket holds a tenth of a second's tokens (at least one), so bursts stay short. ``clock``
    and ``sleep`` are for tests.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = max(1.0, rate / 10)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    async def acquire(self) -> None:
        self._refill()
        if self._tokens < 1:
            await self._sleep((1 - self._tokens) / self.rate)
            self._refill()
        self._tokens -= 1


def _progress_bar(total: int, enabled: bool) -> tqdm[Any]:
    """A bar on stderr over the input files; off unless ``enabled`` and stderr is a terminal."""
    return tqdm(
        total=total,
        unit="file",
        desc="publishing",
        file=sys.stderr,
        disable=not (enabled and sys.stderr.isatty()),
        leave=False,
        dynamic_ncols=True,
    )


async def publish(
    paths: Sequence[Path],
    settings: Settings,
    *,
    markers: bool = True,
    rate: float | None = None,
    progress: bool = False,
) -> PublishReport:
    """Send every instance keyed by StudyInstanceUID, then one marker per study with its count."""
    report = PublishReport()
    limiter = RateLimiter(rate) if rate else None
    started = time.monotonic()
    files = list_files(list(paths))
    sent = 0
    # While the bar shows, log lines are written above it.
    with _progress_bar(len(files), progress) as bar, logging_redirect_tqdm():

        def file_done() -> None:
            bar.update()
            bar.set_postfix(
                studies=report.studies, instances=sum(report.instances.values()), refresh=False
            )

        async with Publisher(settings) as out:

            async def send(key: str, value: bytes) -> None:
                nonlocal sent
                if limiter is not None:
                    await limiter.acquire()
                await out.send(settings.input_topic, key.encode(), value)
                sent += 1
                if sent % _FLUSH_EVERY == 0:
                    await out.flush()

            for study_uid, doc in iter_instances(paths, report, file_done, files):
                await send(study_uid, orjson.dumps(doc))
                report.instances[study_uid] += 1
            if markers:
                # Markers go last: same key, same partition, so each follows its study's instances.
                bar.set_description("markers")
                for study_uid, count in report.instances.items():
                    await send(study_uid, encode_marker(study_uid, count))
                    report.markers += 1
            await out.flush()
    report.seconds = time.monotonic() - started
    return report


def main(argv: Sequence[str]) -> int:
    """CLI entry point for the `publish` subcommand; logs at STREAMER_LOG_LEVEL (default WARNING)."""
    configure_logging(load_log_level("WARNING"), "text")
    args = parser().parse_args(argv)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(  # noqa: T201
            f"streamer publish: no such file or directory: {', '.join(missing)}", file=sys.stderr
        )
        return 2
    settings = load_settings()
    report = asyncio.run(
        publish(
            args.paths,
            settings,
            markers=not args.no_markers,
            rate=args.rate,
            progress=not args.quiet,
        )
    )
    print(report.summary())  # noqa: T201 - the CLI's output
    return 0 if report.studies else 1
