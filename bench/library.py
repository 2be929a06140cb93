"""Library API benchmark: what a seed user who switches to streamer's library gets, side by side with the seed.

    .venv/bin/python bench/library.py [--repeat N] [--scenarios a,b] [--profile core|mii]

``make bench`` runs it after bench/run.py. The seed (dicom2fhir 0.1.25, bench/.seed-venv, made by
bench/setup_seed.sh) and streamer run as long-lived driver processes (``--serve``, see harness.py); every
timed pass converts a workload neither side has seen (seed + pass number), one library call per study in
one event loop per pass, and the passes alternate between all paths of both sides (order reversed every
round). Paths (instances/s; ratios against the seed's ``from_generator`` + ``model_dump_json``, the call
the seed's users make, and for the directory paths against the seed's ``from_directory`` + JSON):

- seed ``gen_dump``: ``await dicom2fhir.from_generator(agen, config)`` + ``bundle.model_dump_json()``
- seed ``gen``: the same without the JSON (a like-for-like view of a Bundle-returning call)
- seed ``dir_dump``: ``await dicom2fhir.from_directory(study_dir, config)`` + ``model_dump_json()``
- (i) ``gen``: ``await streamer.library.from_generator(agen, config)`` -> fhir.resources ``Bundle``
- (ii) ``gen_dump``: the same + ``bundle.model_dump_json()``
- (iii) ``gen_json``: ``await from_generator_json(agen, config)`` -> JSON bytes (same Bundle, orjson)
- (iv) ``dir`` / ``dir_dump`` / ``dir_json``: ``from_directory`` (+ JSON) / ``from_directory_json`` on the
  same workload written as DICOM files (pydicom, once per workload seed, cached under
  ``~/.cache/streamer/bench/library/``, outside the timed region)
- (v) ``core``: ``bundle_json(build_study_bundle(...))``, what bench/run.py times

Targets: (i) >= 10x and (iii) >= 20x the seed's ``gen_dump`` in each scenario. Writes
bench/results/library.{md,json,png} and the README block ``<!-- bench:library:start/end -->``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(1, str(BENCH.parent))

import workload  # noqa: E402
from charts import bar_chart  # noqa: E402
from readme import write_block  # noqa: E402
from run import RESULTS, SEED_PY, Driver, _machine, _project_python  # noqa: E402

CACHE = Path.home() / ".cache" / "streamer" / "bench" / "library"
FILES_FORMAT = "v1"  # bump when the way files are written changes

# (side, path, what it is, baseline (seed path) it is compared with, target ratio or None)
PATHS: list[tuple[str, str, str, str, float | None]] = [
    ("seed", "gen_dump", "seed `from_generator` + `model_dump_json()`", "gen_dump", None),
    ("seed", "gen", "seed `from_generator` (Bundle only)", "gen_dump", None),
    ("seed", "dir_dump", "seed `from_directory` + `model_dump_json()`", "dir_dump", None),
    ("streamer", "gen", "(i) `from_generator` -> Bundle", "gen_dump", 10.0),
    ("streamer", "gen_dump", "(ii) `from_generator` + `model_dump_json()`", "gen_dump", None),
    ("streamer", "gen_json", "(iii) `from_generator_json` -> bytes", "gen_dump", 20.0),
    ("streamer", "dir", "(iv) `from_directory` -> Bundle", "dir_dump", None),
    ("streamer", "dir_dump", "(iv) `from_directory` + `model_dump_json()`", "dir_dump", None),
    ("streamer", "dir_json", "(iv) `from_directory_json` -> bytes", "dir_dump", None),
    ("streamer", "core", "(v) core: `build_study_bundle` + `bundle_json`", "gen_dump", None),
]
# like-for-like: our path -> the seed path doing the same thing
SAME_CALL = {"gen": "gen", "gen_dump": "gen_dump", "dir_dump": "dir_dump"}


def log(message: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f} s] {message}", file=sys.stderr, flush=True)


T0 = time.perf_counter()


def write_files(key: str, seed: int, cache: Path) -> Path:
    """The workload (scenario ``key``, ``seed``) as DICOM files, one directory per study (cached)."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    out = cache / f"{key}-{seed}-{FILES_FORMAT}"
    if (out / ".complete").exists():
        return out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for i, study in enumerate(workload.generate(key, seed)):
        study_dir = tmp / f"study-{i:04d}"
        study_dir.mkdir(parents=True)
        for j, instance in enumerate(study):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom's VR length notes on synthetic values
                ds = Dataset.from_json(instance)
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = ds.SOPClassUID
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta = meta
            ds.save_as(study_dir / f"{j:04d}.dcm", enforce_file_format=True)
    (tmp / ".complete").write_text(f"pydicom {pydicom.__version__}\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def measure(args: argparse.Namespace, cache: Path) -> dict[str, Any]:
    seed = Driver(SEED_PY, "seed_driver.py", "seed", [], log_name="library-seed")
    ours = Driver(
        _project_python(),
        "streamer_driver.py",
        "streamer",
        ["--profile", args.profile],
        log_name="library-streamer",
    )
    drivers = {"seed": seed, "streamer": ours}
    out: dict[str, Any] = {"scenarios": {}}
    try:
        for key in args.scenarios.split(","):
            sc = workload.SCENARIOS[key]

            def load(wseed: int, key: str = key) -> Path:
                digests = {
                    s: d.ask("load", key, wseed)["workload_sha256"] for s, d in drivers.items()
                }
                if len(set(digests.values())) != 1:
                    sys.exit(f"workload differs between the two processes for {key}: {digests}")
                return write_files(key, wseed, cache)

            log(f"{key}: warm-up")
            files = load(args.seed - 1)
            for side, path, *_ in PATHS:
                where = [files] if path.startswith("dir") else []
                drivers[side].ask("path", key, path, "warm", *where)
            runs: dict[str, list[dict[str, Any]]] = {f"{s}.{p}": [] for s, p, *_ in PATHS}
            for r in range(args.repeat):
                files = load(args.seed + r)
                order = PATHS if r % 2 == 0 else PATHS[::-1]
                for side, path, *_ in order:
                    where = [files] if path.startswith("dir") else []
                    runs[f"{side}.{path}"].append(
                        drivers[side].ask("path", key, path, "pass", *where)
                    )
                log(f"{key}: pass {r + 1}/{args.repeat}")
            out["scenarios"][key] = {
                "label": sc.label,
                "instances": sc.instances,
                "studies": sc.studies,
                "add_instances": sc.add_instances,
                "paths": {
                    name: {
                        "times_s": [p["time_s"] for p in passes],
                        "json_bytes": passes[-1]["json_bytes"],
                        "instances_per_s": sc.instances
                        / statistics.median(p["time_s"] for p in passes),
                    }
                    for name, passes in runs.items()
                },
            }
        for side, d in drivers.items():
            out[side] = d.ask("info")
            d.close()
    except BaseException:  # a failure or Ctrl-C: no driver process is left behind
        for d in drivers.values():
            d.kill()
        raise
    return out


def _rate(x: float) -> str:
    return f"{x:,.0f}"


def render(doc: dict[str, Any]) -> tuple[str, str, list[str]]:
    """(the whole Markdown for bench/results/library.md, the README block, verdict lines)."""
    verdicts: list[str] = []
    table = [
        "| scenario | path | instances/s | × seed (median) | × seed (best passes) | same call × seed |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for key, sc in doc["scenarios"].items():
        paths = sc["paths"]
        for side, path, what, base, target in PATHS:
            row = paths[f"{side}.{path}"]
            ref = paths[f"seed.{base}"]
            ratio = row["instances_per_s"] / ref["instances_per_s"]
            best = min(ref["times_s"]) / min(row["times_s"])
            same = ""
            if side == "streamer" and path in SAME_CALL:
                like = paths[f"seed.{SAME_CALL[path]}"]
                same = f"{row['instances_per_s'] / like['instances_per_s']:.1f}×"
            mark = ""
            if target is not None:
                met = ratio >= target
                mark = f" (target ≥ {target:g}×: **{'met' if met else 'missed'}**)"
                verdicts.append(
                    f"{key} {what}: {ratio:.1f}x the seed, target >= {target:g}x "
                    f"{'met' if met else 'MISSED'}"
                )
            ratio_text = "1.0× (baseline)" if side == "seed" and path == base else f"{ratio:.1f}×"
            table.append(
                f"| {key}: {sc['label']} | {what} | {_rate(row['instances_per_s'])} | "
                f"{ratio_text}{mark} | {best:.1f}× | {same} |"
            )
    m, s, o = doc["machine"], doc["seed"], doc["streamer"]
    notes = [
        f"Measured {doc['date']} by `bench/library.py` (median of {doc['repeat']} timed passes per path, "
        "all paths of both sides alternating, each pass on a workload neither side has seen; one library "
        f"call per study; streamer profile `{o['profile']}`, the seed always adds its MII extensions). "
        "× seed: against the seed's `from_generator` + `model_dump_json()` (directory paths: against the "
        "seed's `from_directory` + `model_dump_json()` on the same files); same call: against the seed "
        "doing the same thing (Bundle only, or Bundle + JSON).",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), 1-min load average "
        f"{m['loadavg_at_start'][0]:.2f} at start, {m['loadavg_at_end'][0]:.2f} at end. "
        f"Seed: CPython {s['python']}, "
        + ", ".join(f"{k} {v}" for k, v in s["versions"].items())
        + f". streamer: CPython {o['python']}, "
        + ", ".join(f"{k} {v}" for k, v in o["versions"].items() if k != "streamer")
        + ".",
    ]
    block = "\n".join(table) + "\n\n" + "\n\n".join(notes) + "\n"
    full = (
        "# Library API vs the seed (bench/library.py)\n\n"
        + block
        + "\nTargets: "
        + "; ".join(verdicts)
        + ".\n"
    )
    return full, block, verdicts


def chart(doc: dict[str, Any]) -> Path:
    labels = [
        f"{k}: {sc['studies']}×{sc['instances'] // sc['studies']}"
        for k, sc in doc["scenarios"].items()
    ]
    series = {
        f"{'seed' if side == 'seed' else 'ours'} {path}": [
            sc["paths"][f"{side}.{path}"]["instances_per_s"] for sc in doc["scenarios"].values()
        ]
        for side, path, *_ in PATHS
    }
    return bar_chart(
        "library",
        "Library API vs the seed (instances/s, log scale)",
        labels,
        series,
        "instances/s",
        log_scale=True,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeat", type=int, default=5, help="timed passes per path and scenario")
    p.add_argument("--scenarios", default="a,b", help="comma-separated keys of bench/workload.py")
    p.add_argument("--seed", type=int, default=workload.DEFAULT_SEED, help="workload RNG seed")
    p.add_argument("--profile", choices=("core", "mii"), default="core")
    p.add_argument(
        "--cache-dir", type=Path, default=CACHE, help="where the DICOM files are written"
    )
    p.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    args = p.parse_args()

    RESULTS.mkdir(parents=True, exist_ok=True)
    subprocess.run(["bash", str(BENCH / "setup_seed.sh")], check=True, stdout=sys.stderr)
    machine = _machine()
    doc = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "repeat": args.repeat,
        "seed": args.seed,
        "machine": machine,
    }
    doc |= measure(args, args.cache_dir)
    machine["loadavg_at_end"] = os.getloadavg()
    doc["wall_s"] = time.perf_counter() - T0
    full, block, verdicts = render(doc)
    print(full)
    (RESULTS / "library.md").write_text(full, encoding="utf-8")
    (RESULTS / "library.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    log(f"wrote bench/results/library.md, .json and {chart(doc).name}")
    if not args.no_readme:
        write_block("library", block)
    for line in verdicts:
        log(line)


if __name__ == "__main__":
    main()
