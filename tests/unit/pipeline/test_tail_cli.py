"""`python -m streamer tail`: the summary line of a Bundle record (no broker)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamer.cli import parsers
from streamer.cli.tail import summary_line
from streamer.kafka.reader import TopicRecord
from streamer.library import convert_instances
from tests.dicom_factory import make_instance, sop_uid, study_uid

README = Path(__file__).parents[3] / "README.md"


async def _bundle() -> dict[str, Any]:
    docs = [
        make_instance(study_uid(4), f"{study_uid(4)}.1", sop_uid(4, i), number=i + 1)
        for i in range(3)
    ]
    report = await convert_instances(docs)
    [result] = report.results
    return result.bundle


def _record(value: bytes | None, **headers: bytes) -> TopicRecord:
    return TopicRecord(
        topic="fhir.bundles",
        partition=1,
        offset=7,
        timestamp_ms=1_764_000_000_000,
        key=study_uid(4).encode(),
        value=value,
        headers=tuple(headers.items()),
    )


async def test_summary_line_hides_the_patient_unless_asked() -> None:
    value = orjson.dumps(await _bundle())
    record = _record(value, **{"close-reason": b"marker"})
    line = summary_line(record)
    assert line == (
        f"2025-11-24T16:00:00Z study={study_uid(4)} modalities=CT series=1 instances=3 "
        f"close-reason=marker bytes={len(value)}"
    )
    assert "Doe" not in line and "PAT-1" not in line
    shown = summary_line(record, show_patient=True)
    assert shown.startswith(line)
    assert shown.endswith(' patient_id="PAT-1" patient_name="Doe^Jane"')


def test_summary_line_of_odd_records() -> None:
    assert summary_line(_record(None)).endswith(f"study={study_uid(4)} deleted (tombstone)")
    assert summary_line(_record(b"{no json")).endswith("not a FHIR Bundle bytes=8")
    assert "close-reason=- " in summary_line(_record(b'{"resourceType": "Bundle"}'))


@pytest.mark.parametrize("command", ["publish", "tail", "convert"])
def test_readme_flags_exist_in_the_help(command: str) -> None:
    """Every --flag the README shows on a `python -m streamer <command>` line is a real option."""
    parser = parsers.PARSERS[command]()
    options = {opt for action in parser._actions for opt in action.option_strings}
    lines = [
        line for line in README.read_text().splitlines() if f"python -m streamer {command}" in line
    ]
    assert lines, f"README shows no `python -m streamer {command}` line"
    flags = {flag for line in lines for flag in re.findall(r"(?<![\w-])--?[a-z][a-z-]*", line)}
    assert flags - {"-m"} <= options, sorted(flags - options - {"-m"})
