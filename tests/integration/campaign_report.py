"""The fault campaign's figures: one JSON of rows, rendered to a Markdown table (bench + README).

Each scenario test calls :func:`record` once with what it measured; the row replaces that
scenario's previous row (other rows keep theirs, with their own date), then the table is rendered
again into ``bench/results/fault_campaign.md`` and between the README markers. Adding a scenario
(say 7, exactly-once) needs nothing here: its test takes the ``row`` fixture of
``test_fault_campaign.py`` (``row.begin("7", title, broker)`` ... ``row.finish(**figures)``), or
calls ``record(CampaignRow("7", ...))`` itself; rows are keyed and sorted by their scenario id.
A test that stops before its figures gets a row without figures (``not_measured``), never the
stale row of an earlier run.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS_JSON = REPO / "bench" / "results" / "fault_campaign.json"
RESULTS_MD = REPO / "bench" / "results" / "fault_campaign.md"
README = REPO / "README.md"

START = "<!-- fault-campaign:start -->"
END = "<!-- fault-campaign:end -->"
HEADING = "### Fault campaign (written by the test suite)"
SECTION = "## Tests"

COLUMNS = (
    "scenario",
    "kills/faults",
    "studies",
    "instances",
    "lost",
    "wrong",
    "duplicates (re-emissions)",
    "restore s median/max",
    "run s",
    "result",
    "date + broker",
)


@dataclass
class CampaignRow:
    """What one scenario measured in one run (every figure comes from that run)."""

    scenario: str  # "1", "2", ... (the numbering); the row's key
    title: str
    faults: str  # e.g. "24 x SIGKILL"
    studies: int | None  # None: not measured (the test stopped before)
    instances: int | None
    lost: int | None
    wrong: int | None
    duplicates: int | None
    restore_seconds: list[float]
    run_seconds: float
    broker: str
    problems: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    date: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))

    @property
    def result(self) -> str:
        return "pass" if not self.problems else f"FAIL ({len(self.problems)})"


def _sort_key(scenario: str) -> tuple[int, str]:
    match = re.match(r"\d+", scenario)
    return (int(match.group()) if match else 1_000_000, scenario)


def load_rows(path: Path = RESULTS_JSON) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    rows: dict[str, dict[str, Any]] = data.get("scenarios", {})
    return rows


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        # mkstemp makes the file 0600: keep the mode the file had (or the usual 0644).
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _restore_cell(values: list[float]) -> str:
    if not values:
        return "–"
    return f"{statistics.median(values):.2f} / {max(values):.2f} (n={len(values)})"


def render_table(rows: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for key in sorted(rows, key=_sort_key):
        r = rows[key]
        problems = r.get("problems", [])
        cells = [
            f"{r['scenario']}. {r['title']}",
            r["faults"],
            *(
                "–" if r[k] is None else str(r[k])
                for k in ("studies", "instances", "lost", "wrong", "duplicates")
            ),
            _restore_cell(r.get("restore_seconds", [])),
            f"{r['run_seconds']:.0f}",
            "pass" if not problems else f"FAIL ({len(problems)})",
            f"{r['date']}, {r['broker']}",
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _block(rows: dict[str, dict[str, Any]]) -> str:
    return (
        "`.venv/bin/python -m pytest -m fault` (tests/integration/test_fault_campaign.py) writes "
        "this table; each row is from the run on its date. *lost*: expected studies without a "
        "Bundle; *wrong*: studies whose latest Bundle is not exactly their instances or not "
        "valid, or whose Bundles of one instance set differ in bytes, or that were published in "
        "parts; *duplicates*: Bundles beyond one per (study, instance set). Restore time: the "
        '`restore_seconds` of every "partition ready" line of the scenario\'s processes.\n\n'
        + render_table(rows)
    )


def _markdown(rows: dict[str, dict[str, Any]]) -> str:
    out = [
        "# Fault campaign on real Apache Kafka\n\n",
        "Written by `tests/integration/test_fault_campaign.py` (`pytest -m fault`); do not edit.\n\n",
        _block(rows),
    ]
    for key in sorted(rows, key=_sort_key):
        r = rows[key]
        out.append(f"\n## {r['scenario']}. {r['title']}\n\n")
        for name, value in r.get("details", {}).items():
            out.append(f"- {name}: {value}\n")
        for problem in r.get("problems", []):
            out.append(f"- **problem**: {problem}\n")
    return "".join(out)


def update_readme(block: str, path: Path = README) -> None:
    """Replace what is between the markers; add heading and markers at the end of "## Tests"."""
    text = path.read_text()
    inner = f"{START}\n{block}{END}"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        new = head + inner + tail
    else:
        section = text.find(f"\n{SECTION}\n")
        if section < 0:
            raise RuntimeError(f"README has no {SECTION!r} section to put the fault table in")
        following = re.search(r"\n## ", text[section + len(SECTION) + 2 :])
        cut = len(text) if following is None else section + len(SECTION) + 2 + following.start()
        before = text[:cut].rstrip("\n")
        new = f"{before}\n\n{HEADING}\n\n{inner}\n" + (
            "\n" + text[cut:].lstrip("\n") if cut < len(text) else ""
        )
    if new != text:
        _atomic_write(path, new)


def not_measured(
    scenario: str, title: str, broker: str, run_seconds: float, why: str
) -> CampaignRow:
    """The row of a scenario that stopped before it measured anything (no figures, one problem)."""
    return CampaignRow(
        scenario=scenario,
        title=title,
        faults="–",
        studies=None,
        instances=None,
        lost=None,
        wrong=None,
        duplicates=None,
        restore_seconds=[],
        run_seconds=run_seconds,
        broker=broker,
        problems=[why],
    )


def record(row: CampaignRow) -> None:
    """Store the row (replacing the scenario's previous one) and render the tables again."""
    rows = load_rows()
    doc = asdict(row)
    doc["result"] = row.result
    rows[row.scenario] = doc
    ordered = {k: rows[k] for k in sorted(rows, key=_sort_key)}
    _atomic_write(RESULTS_JSON, json.dumps({"scenarios": ordered}, indent=2) + "\n")
    _atomic_write(RESULTS_MD, _markdown(ordered))
    update_readme(_block(ordered))
