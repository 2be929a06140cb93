"""Timing harness shared by both drivers (stdlib only: the seed's venv imports it too).

A driver supplies a ``Side``: ``convert_all(studies, add_instances) -> int`` converts every study of the
list, one conversion call per study, serialises each Bundle to JSON and returns the total output size
(UTF-8 bytes); ``write_sample`` and ``memory`` are the extras. One timed pass is
``gc.collect()``, then ``time.perf_counter()`` around one ``convert_all`` over the whole scenario; the
garbage collector stays enabled during the pass, as it would for a user. Workload generation, imports and
the warm-up (one untimed conversion of the first study) are outside the timed region.

Two modes:

* ``--serve`` (what run.py and library.py use): a line protocol on stdin/stdout, one JSON reply per
  command, so the caller can alternate the two sides pass by pass. Commands: ``load KEY SEED``,
  ``warmup KEY``, ``pass KEY``, ``sample KEY DIR``, ``memory SEED``, ``info``, ``quit``, and for the
  library benchmark ``path KEY NAME warm|pass [DIR]``: one of the side's named ``paths`` (one call per
  study) over the loaded workload, or over the study directories under DIR (written by library.py).
* standalone: ``python bench/<side>_driver.py [--repeat N] [--scenarios a,b]`` times the scenarios in
  this process alone and prints one JSON document.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import statistics
import sys
import time
import traceback
import tracemalloc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workload  # bench/ is not a package; both venvs import it by path


@dataclass(frozen=True, slots=True)
class Side:
    name: str
    versions: dict[str, str]
    convert_all: Callable[[list[workload.Study], bool], int]
    write_sample: Callable[[list[workload.Study], bool, Path], None]
    memory: Callable[[int], dict[str, float]]  # workload seed -> retained bytes per instance
    profile: str
    # library.py: name -> (studies, or one directory per study; add_instances) -> output bytes
    paths: Mapping[str, Callable[[list[Any], bool], int]] = field(default_factory=dict)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--serve", action="store_true", help="line protocol on stdin/stdout (run.py)")
    p.add_argument("--scenarios", default=",".join(workload.SCENARIOS), help="comma-separated keys")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--seed", type=int, default=workload.DEFAULT_SEED)
    p.add_argument("--profile", default="core", help="streamer only: MappingOptions.profile")
    return p.parse_args(argv)


def retained(build: Callable[[workload.Study], object], seed: int) -> tuple[object, float]:
    """Python heap (tracemalloc) still held per instance by ``build(study)``'s result once the input
    instances of the 1,000-instance study are dropped; returns (result, bytes per instance)."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    study = workload.generate("b", seed)[0]
    n = len(study)
    held = build(study)
    del study
    gc.collect()
    per_instance = (tracemalloc.get_traced_memory()[0] - base) / n
    tracemalloc.stop()
    return held, per_instance


def one_pass(side: Side, studies: list[workload.Study], add_instances: bool) -> tuple[float, int]:
    gc.collect()
    t0 = time.perf_counter()
    nbytes = side.convert_all(studies, add_instances)
    return time.perf_counter() - t0, nbytes


def info(side: Side) -> dict[str, Any]:
    return {
        "side": side.name,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "versions": side.versions,
        "profile": side.profile,
        "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def summarize(
    sc: workload.Scenario, digest: str, times: list[float], nbytes: int
) -> dict[str, Any]:
    med = statistics.median(times)
    return {
        "label": sc.label,
        "add_instances": sc.add_instances,
        "studies": sc.studies,
        "instances": sc.instances,
        "workload_sha256": digest,
        "times_s": times,
        "median_s": med,
        "instances_per_s": sc.instances / med,
        "json_bytes": nbytes,
    }


def standalone(side: Side, args: argparse.Namespace) -> dict[str, Any]:
    out = info(side) | {"repeat": args.repeat, "seed": args.seed, "scenarios": {}}
    for key in args.scenarios.split(","):
        sc = workload.SCENARIOS[key]
        studies = workload.generate(sc, args.seed)
        side.convert_all(studies[:1], sc.add_instances)  # warm-up
        runs = [one_pass(side, studies, sc.add_instances) for _ in range(args.repeat)]
        out["scenarios"][key] = summarize(
            sc, workload.digest(studies), [t for t, _ in runs], runs[-1][1]
        )
    out["max_rss_kb"] = info(side)["max_rss_kb"]
    return out


def serve(side: Side, proto: TextIO) -> None:
    loaded: dict[str, list[workload.Study]] = {}
    for line in sys.stdin:
        cmd, *arg = line.split()
        try:
            reply: dict[str, Any]
            if cmd == "quit":
                break
            if cmd == "info":
                reply = info(side)
            elif cmd == "load":
                loaded[arg[0]] = workload.generate(arg[0], int(arg[1]))
                reply = {"workload_sha256": workload.digest(loaded[arg[0]])}
            elif cmd == "warmup":
                side.convert_all(loaded[arg[0]][:1], workload.SCENARIOS[arg[0]].add_instances)
                reply = {}
            elif cmd == "pass":
                t, nbytes = one_pass(side, loaded[arg[0]], workload.SCENARIOS[arg[0]].add_instances)
                reply = {"time_s": t, "json_bytes": nbytes}
            elif cmd == "sample":
                sc = workload.SCENARIOS[arg[0]]
                path = Path(arg[1]) / f"sample-{side.name}-{sc.key}.json"
                side.write_sample(loaded[arg[0]], sc.add_instances, path)
                reply = {"path": str(path)}
            elif cmd == "path":
                key, name, mode, *where = arg
                items: list[Any] = (
                    sorted(p for p in Path(where[0]).iterdir() if p.is_dir())
                    if where
                    else loaded[key]
                )
                convert = side.paths[name]
                add = workload.SCENARIOS[key].add_instances
                if mode == "warm":
                    convert(items[:1], add)
                    reply = {}
                else:
                    gc.collect()
                    t0 = time.perf_counter()
                    nbytes = convert(items, add)
                    reply = {"time_s": time.perf_counter() - t0, "json_bytes": nbytes}
            elif cmd == "memory":
                reply = side.memory(int(arg[0]))
            else:
                reply = {"error": f"unknown command {cmd!r}"}
        except Exception as exc:  # noqa: BLE001 - reported to run.py, which stops the run
            reply = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        proto.write(json.dumps(reply) + "\n")
        proto.flush()


def main(side: Side, args: argparse.Namespace) -> None:
    # stdout carries only the protocol / result; anything a library prints goes to stderr
    proto, sys.stdout = sys.stdout, sys.stderr
    if args.serve:
        serve(side, proto)
    else:
        proto.write(json.dumps(standalone(side, args)) + "\n")
        proto.flush()
