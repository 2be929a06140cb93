"""Our side of the benchmark: streamer.fhir, run with the project venv's python.

Each study is one ``build_study_bundle(instances, MappingOptions(...))`` call, which builds and validates
the Bundle (see README "What is measured"), and each result is serialised with ``bundle_json(result)``
(bytes). Imports and workload generation happen before timing (see harness.py). ``PATHS`` are the library
calls bench/library.py times (``from_generator``, ``from_generator_json``, ``from_directory``, ...).
``--cpu`` prints the CPU time of each pass instead (``time.process_time``; see ``cpu_passes``).
"""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata as md
import json
import statistics
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # the working tree's streamer

import harness
import orjson
import workload

import streamer
from streamer.dicom.instance import slim_instance
from streamer.fhir import MappingOptions, build_study_bundle, bundle_json
from streamer.library import (
    from_directory,
    from_directory_json,
    from_generator,
    from_generator_json,
)

BENCH = Path(__file__).resolve().parent


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


PROFILE = "core"  # set from --profile in main()


def _options(add_instances: bool) -> MappingOptions:
    return MappingOptions(
        dicom_timezone="Europe/Berlin", add_instances=add_instances, profile=PROFILE
    )


def convert_all(studies: list[workload.Study], add_instances: bool) -> int:
    opts = _options(add_instances)
    size = 0
    for study in studies:
        size += len(bundle_json(build_study_bundle(study, opts)))
    return size


LibraryPath = Callable[
    [list[Any], bool], int
]  # harness.Side.paths: (studies or dirs, add_instances) -> bytes


def _config(add_instances: bool) -> dict[str, Any]:
    """The seed driver's config (library.py): the same keys, read by streamer's seed-compatible parser."""
    return {
        "dicom_timezone": "Europe/Berlin",
        "generator": {
            "imaging_study": {"add_instances": add_instances},
            "observation": {"add_vital_signs": True},
        },
        "profile": PROFILE,
    }


async def _agen(study: workload.Study) -> AsyncGenerator[dict[str, Any], None]:
    for inst in study:
        yield inst


def _library_path(call: Callable[[Any, dict[str, Any]], Awaitable[Any]], out: str) -> LibraryPath:
    """One library call per study (an async generator of its dicts, or its directory), one event loop per
    pass as on the seed side; ``out``: what is done with the result ("model", "dump" or "bytes")."""

    def convert(items: list[Any], add_instances: bool) -> int:
        async def run() -> int:
            size = 0
            for item in items:
                source = item if isinstance(item, Path) else _agen(item)
                result = await call(source, _config(add_instances))
                if out == "dump":
                    size += len(result.model_dump_json().encode())
                elif out == "bytes":
                    size += len(result)
            return size

        return asyncio.run(run())

    return convert


PATHS: dict[str, LibraryPath] = {
    "core": convert_all,
    "gen": _library_path(from_generator, "model"),
    "gen_dump": _library_path(from_generator, "dump"),
    "gen_json": _library_path(from_generator_json, "bytes"),
    "dir": _library_path(from_directory, "model"),
    "dir_dump": _library_path(from_directory, "dump"),
    "dir_json": _library_path(from_directory_json, "bytes"),
}


def write_sample(studies: list[workload.Study], add_instances: bool, path: Path) -> None:
    raw = bundle_json(build_study_bundle(studies[0], _options(add_instances)))
    path.write_bytes(orjson.dumps(orjson.loads(raw), option=orjson.OPT_INDENT_2))


def memory(seed: int) -> dict[str, float]:
    """Per-instance state when holding slim instances (what an open study keeps per instance)."""
    held, per_instance = harness.retained(lambda study: [slim_instance(ds) for ds in study], seed)
    assert isinstance(held, list)
    sizes = [len(orjson.dumps(s)) for s in held]
    return {
        "slim_orjson_bytes_per_instance": sum(sizes) / len(sizes),
        "tracemalloc_bytes_per_instance": per_instance,
    }


def cpu_passes(args: Any) -> dict[str, Any]:
    """``--cpu``: CPU time (``time.process_time``) of each pass of ``convert_all`` per scenario, in this
    process alone: steadier than wall time on a loaded machine (bench/README.md "Mapping speed")."""
    out: dict[str, Any] = {"profile": args.profile, "repeat": args.repeat, "scenarios": {}}
    for key in args.scenarios.split(","):
        sc = workload.SCENARIOS[key]
        studies = workload.generate(sc, args.seed)
        convert_all(studies[:1], sc.add_instances)  # warm-up
        cpu: list[float] = []
        for _ in range(args.repeat):
            gc.collect()
            t0 = time.process_time()
            nbytes = convert_all(studies, sc.add_instances)
            cpu.append(time.process_time() - t0)
        out["scenarios"][key] = {
            "label": sc.label,
            "instances": sc.instances,
            "cpu_s": [round(c, 4) for c in cpu],
            "median_cpu_s": round(statistics.median(cpu), 4),
            "instances_per_cpu_s": round(sc.instances / statistics.median(cpu)),
            "json_bytes": nbytes,
        }
    return out


def main() -> None:
    global PROFILE
    cpu = "--cpu" in sys.argv[1:]
    args = harness.parse_args([a for a in sys.argv[1:] if a != "--cpu"])
    PROFILE = args.profile
    versions = {p: _version(p) for p in ("fhir.resources", "pydantic", "orjson")}
    versions["streamer"] = f"{getattr(streamer, '__version__', '?')} (working tree {BENCH.parent})"
    if cpu:
        print(json.dumps(cpu_passes(args)))
        return
    side = harness.Side(
        "streamer", versions, convert_all, write_sample, memory, args.profile, PATHS
    )
    harness.main(side, args)


if __name__ == "__main__":
    main()
