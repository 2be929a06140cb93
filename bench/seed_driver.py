"""Seed side of the benchmark: dicom2fhir 0.1.25, run with bench/.seed-venv/bin/python.

Each study is one ``await dicom2fhir.from_generator(async_generator_of_dicts, config)`` call (the seed only
accepts a real async generator), and each Bundle is serialised with ``bundle.model_dump_json()``, as the
seed's README does. One event loop (``asyncio.run``) per timed pass rather than per study, so loop start-up
is not charged to the seed. The config is a fresh dict per call because the seed mutates the one it gets. Imports
and workload generation happen before timing (see harness.py).
"""

from __future__ import annotations

import asyncio
import importlib.metadata as md
import logging
import sys
import warnings
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import workload
from dicom2fhir import dicom2fhir, helpers
from dicom2fhir.dicom2fhirbundle import Dicom2FHIRBundle
from dicom2fhir.dicom_json_proxy import DicomJsonProxy

# The seed's model_dump_json emits a pydantic UserWarning for every Bundle with IssuerOfPatientID;
# printing them must not enter the timing.
warnings.simplefilter("ignore")


def _config(add_instances: bool) -> dict[str, Any]:
    return {
        "dicom_timezone": "Europe/Berlin",
        "generator": {
            "imaging_study": {"add_instances": add_instances},
            "observation": {"add_vital_signs": True},
        },
    }


async def _agen(study: workload.Study) -> AsyncGenerator[dict[str, Any], None]:
    for inst in study:
        yield inst


async def _convert_all(studies: list[workload.Study], add_instances: bool) -> int:
    size = 0
    for study in studies:
        bundle = await dicom2fhir.from_generator(_agen(study), _config(add_instances))
        size += len(bundle.model_dump_json().encode())  # bytes, as they would be sent or written
    return size


def convert_all(studies: list[workload.Study], add_instances: bool) -> int:
    return asyncio.run(_convert_all(studies, add_instances))


def _gen_model(studies: list[workload.Study], add_instances: bool) -> int:
    """library.py's ``gen``: the Bundle only (no JSON), for a like-for-like view of from_generator."""

    async def run() -> int:
        for study in studies:
            await dicom2fhir.from_generator(_agen(study), _config(add_instances))
        return 0

    return asyncio.run(run())


def _dir_dump(dirs: list[Path], add_instances: bool) -> int:
    """library.py's ``dir_dump``: ``from_directory`` on one study directory per call, then JSON."""

    async def run() -> int:
        size = 0
        for d in dirs:
            bundle = await dicom2fhir.from_directory(str(d), _config(add_instances))
            size += len(bundle.model_dump_json().encode())
        return size

    return asyncio.run(run())


PATHS = {"gen_dump": convert_all, "gen": _gen_model, "dir_dump": _dir_dump}


def write_sample(studies: list[workload.Study], add_instances: bool, path: Path) -> None:
    async def one() -> str:
        bundle = await dicom2fhir.from_generator(_agen(studies[0]), _config(add_instances))
        return bundle.model_dump_json(indent=2)

    path.write_text(asyncio.run(one()), encoding="utf-8")


def memory(seed: int) -> dict[str, float]:
    """Heap the seed's Dicom2FHIRBundle holds per added instance until create_bundle()."""
    config = _config(True)
    config["id_function"] = helpers.default_id_function()

    def build(study: workload.Study) -> Dicom2FHIRBundle:
        b = Dicom2FHIRBundle(config)
        for inst in study:
            b.add(DicomJsonProxy(inst))
        return b

    _, per_instance = harness.retained(build, seed)
    return {"tracemalloc_bytes_per_instance": per_instance}


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    args = harness.parse_args()
    versions = {p: md.version(p) for p in ("dicom2fhir", "fhir.resources", "fhir_core", "pydantic")}
    side = harness.Side(
        "seed", versions, convert_all, write_sample, memory, "seed default (MII extensions)", PATHS
    )
    harness.main(side, args)


if __name__ == "__main__":
    main()
