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


def _processes(key: str) -> str:
    """A throughput configuration ("1", "2", "1 all") in words."""
    n, _, mode = key.partition(" ")
    words = f"{n} process{'es' if n != '1' else ''}"
    return words + (" with STREAMER_PARTITION_ASSIGNMENT=all (both sides)" if mode else "")


def throughput(doc: dict[str, Any]) -> Iterator[Row]:
    for res in doc["results"]:
        for n, s in res["summary"].items():
            yield Row(
                "through a broker",
                f"{_broker(res)}, {_processes(n)}: streamer / pass-through rate",
                f"{s['ratio']:.0%} ({s['rate']['streamer']:,.0f} vs {s['rate']['passthrough']:,.0f} instances/s)",
                "≥ 80%",
                s["ratio"] >= 0.8,
            )
            fv = s.get("first_version")
            if fv is not None:  # the code issue 12 measured, on this bench's yardstick
                commit = doc["info"].get("old_commit", "first version")
                yield Row(
                    "through a broker",
                    f"{_broker(res)}, {_processes(n)}: the first version ({commit}) / "
                    "pass-through rate, same runs",
                    f"{fv['ratio']:.0%} ({fv['rate']:,.0f} instances/s; the streamer now "
                    f"{fv['speedup']:.2f}× that)",
                    "",
                    None,
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


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def startup(doc: dict[str, Any]) -> Iterator[Row]:
    for kind, res in doc["startup"].items():
        ready = _median([r["exec_to_ready_s"] for r in res["runs"] if r.get("exec_to_ready_s")])
        name = "Apache Kafka" if kind.startswith("apache-kafka") else "Tansu"
        if res.get("mode", "group") != "group":
            name += f" (STREAMER_PARTITION_ASSIGNMENT={res['mode']})"
        yield Row(
            "startup", f"{name}: exec → ready, empty state", f"{ready:.2f} s", "< 1 s", ready < 1
        )
    restore = doc.get("restore") or {}
    for kind in ("warm", "cold"):
        runs = [r["start_to_ready_s"] for r in restore.get(kind, []) if r.get("start_to_ready_s")]
        if runs:
            yield Row(
                "startup",
                f"restart with {restore['instances']:,} held instances ({kind} store)",
                f"{_median(runs):.2f} s to ready",
                "",
                None,
            )
    for command, res in doc["imports"].items():
        yield Row(
            "startup",
            f"import time: `{command}`",
            f"{_median(res['wall_s']) * 1000:.0f} ms",
            "",
            None,
        )


def memory(doc: dict[str, Any]) -> Iterator[Row]:
    sizes = [step["instances"] for step in doc["runs"][0]["new"]["steps"]]
    for i, n in enumerate(sizes):
        per = _median([run["new"]["steps"][i]["per_instance_b"] for run in doc["runs"]])
        trimmed = _median([run["new"]["steps"][i]["trimmed_per_instance_b"] for run in doc["runs"]])
        yield Row(
            "memory",
            f"RAM per open instance at {n:,} open instances",
            f"{per:,.0f} B ({trimmed:,.0f} B after malloc_trim)",
            "≤ 1 KB",
            per <= 1024,
        )


def soak(doc: dict[str, Any]) -> Iterator[Row]:
    a = doc["analysis"]
    yield Row(
        "soak",
        f"RSS over {doc['info']['instances']:,} instances (start → end, while instances flow)",
        f"{a['start_mib']:.0f} → {a['end_mib']:.0f} MiB ({a['growth_mib']:+.0f}; "
        f"{a['slope_mib_per_100k']:+.1f} MiB per 100k in the second half)",
        f"flat: ≤ +{a['tolerance_mib']:.0f} MiB, slope ≤ +{a.get('slope_max', 2.0):.0f} per 100k",
        bool(a["flat"]),
    )


SOURCES: dict[str, Callable[[dict[str, Any]], Iterator[Row]]] = {
    "library": library,
    "throughput": throughput,
    "latency": latency,
    "startup": startup,
    "memory": memory,
    "soak": soak,
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
    machine = _machine()
    note = (
        f"\nWritten by `bench/headline.py` from `bench/results/<name>.json`; each benchmark's own table below "
        f"gives its settings and load. Machine: {machine}."
    )
    return "\n".join(lines) + "\n" + note + "\n"


def _machine() -> str:
    for name in SOURCES:
        path = RESULTS / f"{name}.json"
        if path.exists():
            info = json.loads(path.read_text()).get("info")
            if info:
                return f"{info['nproc']} CPUs ({info['cpu']}), {info['mem_gib']} GiB RAM, Python {info['python']}"
    return "unknown"


def main() -> None:
    from bench.readme import write_block

    text = table()
    print(text)
    write_block("headline", text)


if __name__ == "__main__":
    main()
