"""The README's performance headline: one table made from the latest result of every benchmark.

    .venv/bin/python bench/headline.py      # reads bench/results/*.json, writes the README block

Each benchmark writes its own table (bench/results/<name>.md, and its README block); this collects the
figure each target is about, with the date it was measured, so the README's first performance table is
never typed. A benchmark without results yet is listed as "not run".
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
if str(BENCH.parent) not in sys.path:
    sys.path.insert(0, str(BENCH.parent))


@dataclass(frozen=True)
class Row:
    benchmark: str
    measure: str
    result: str
    target: str
    met: bool | None  # None: no target, a figure to know


def _broker(result: dict[str, Any]) -> str:
    return "Apache Kafka" if result["broker"]["kind"] == "apache-kafka" else "Tansu"


def library(doc: dict[str, Any]) -> Iterator[Row]:
    for key, sc in doc["scenarios"].items():
        paths = sc["paths"]
        seed = paths["seed.gen_dump"]["instances_per_s"]
        for path, what, target in (
            ("gen", "`from_generator` → Bundle", 10.0),
            ("gen_json", "`from_generator_json` → JSON bytes", 20.0),
            ("core", "`build_study_bundle` + `bundle_json`", None),
        ):
            ratio = paths[f"streamer.{path}"]["instances_per_s"] / seed
            yield Row(
                "library vs seed",
                f"{key} ({sc['label']}): {what}",
                f"{ratio:.1f}× the seed",
                f"≥ {target:g}×" if target else "",
                ratio >= target if target else None,
            )


def throughput(doc: dict[str, Any]) -> Iterator[Row]:
    for res in doc["results"]:
        for n, s in res["summary"].items():
            yield Row(
                "through a broker",
                f"{_broker(res)}, {n} process{'es' if n != '1' else ''}: streamer / pass-through rate",
                f"{s['ratio']:.0%} ({s['rate']['streamer']:,.0f} vs {s['rate']['passthrough']:,.0f} instances/s)",
                "≥ 80%",
                s["ratio"] >= 0.8,
            )


def latency(doc: dict[str, Any]) -> Iterator[Row]:
    for res in doc["results"]:
        m, idle = res["marker"], res["idle"]
        yield Row(
            "latency",
            f"{_broker(res)}: marker → Bundle at {res['paced_rate']:,.0f} instances/s (half the max)",
            f"p50 {m['p50'] * 1000:.0f} / p95 {m['p95'] * 1000:.0f} / p99 {m['p99'] * 1000:.0f} ms",
            "p99 < 50 ms",
            m["p99"] < 0.05,
        )
        limit = idle["timeout_s"] + 1
        yield Row(
            "latency",
            f"{_broker(res)}: inactivity close, timeout {idle['timeout_s']:g} s",
            f"max {idle['max']:.2f} s",
            f"≤ {limit:g} s",
            idle["max"] <= limit,
        )


SOURCES: dict[str, Callable[[dict[str, Any]], Iterator[Row]]] = {
    "library": library,
    "throughput": throughput,
    "latency": latency,
}


def _date(doc: dict[str, Any]) -> str:
    info = doc.get("info", doc)
    return str(info.get("date", "?"))[:10]


def table() -> str:
    lines = ["| benchmark | measured | what | result | target | |", "|---|---|---|---|---|---|"]
    for name, rows in SOURCES.items():
        path = RESULTS / f"{name}.json"
        if not path.exists():
            lines.append(f"| {name} | – | not run yet (`bench/{name}.py`) | | | |")
            continue
        doc = json.loads(path.read_text())
        for row in rows(doc):
            mark = "" if row.met is None else ("met" if row.met else "**missed**")
            lines.append(
                f"| {row.benchmark} | {_date(doc)} | {row.measure} | {row.result} | {row.target} | {mark} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    from bench.readme import write_block

    text = table()
    print(text)
    write_block("headline", text)


if __name__ == "__main__":
    main()
