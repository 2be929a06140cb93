"""Our side of the benchmark: streamer.fhir, run with the project venv's python.

Each study is one ``build_study_bundle(instances, MappingOptions(...))`` call, which builds and validates
the Bundle (see README "What is measured"), and each result is serialised with ``bundle_json(result)``
(bytes). Imports and workload generation happen before timing (see harness.py).
"""

from __future__ import annotations

import importlib.metadata as md
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # the working tree's streamer

import harness
import orjson
import workload

import streamer
from streamer.dicom.instance import slim_instance
from streamer.fhir import MappingOptions, build_study_bundle, bundle_json

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


def main() -> None:
    global PROFILE
    args = harness.parse_args()
    PROFILE = args.profile
    versions = {p: _version(p) for p in ("fhir.resources", "pydantic", "orjson")}
    versions["streamer"] = f"{getattr(streamer, '__version__', '?')} (working tree {BENCH.parent})"
    side = harness.Side("streamer", versions, convert_all, write_sample, memory, args.profile)
    harness.main(side, args)


if __name__ == "__main__":
    main()
