"""State store benchmark: RocksDB (rocksdict) vs SQLite through streamer.state, side by side.

    .venv/bin/python bench/state_store.py      # 10k, 100k, 300k instances, 3 runs each (~100 s)
    .venv/bin/python bench/state_store.py --sizes 10000,100000 --repeat 1

Each (engine, size, run) is a fresh worker process (`--worker`), so the engines share no RSS and no
RocksDB cache. Workers run alternately (rocksdb, sqlite, rocksdb, ...), so load from elsewhere on the
machine hits both alike. The workload: ~1 KB DICOM-JSON-like values under `i|<study>|<sop>` keys,
5 instances per study, random 2.25 UIDs (keys arrive in random order), checkpoints of 500 records
through `PartitionStore.put` + `flush`. Output: bench/results/state_store.{md,json}.

`rebuild(store, records)` is the restore loop without Kafka, reusable with records read from a broker.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib.metadata as md
import json
import os
import platform
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the working tree's streamer

import orjson

from bench.readme import write_block
from streamer.state import (
    BytesCodec,
    KVStore,
    PartitionStore,
    RocksConfig,
    RocksStore,
    SqliteConfig,
    SqliteStore,
    instance_key,
    instance_prefix,
    shared_resources,
)

BENCH = Path(__file__).resolve().parent
PER_STUDY = 5
BATCH = 500  # records per checkpoint / restore batch
READS, SCANS, DELETES, DELETES_PER_FLUSH = 20_000, 5_000, 1_000, 100

_WORDS = [
    *("axial", "contrast", "arterial", "venous", "phase", "thorax", "abdomen", "pelvis", "head"),
    *("neck", "spine", "knee", "follow-up", "baseline", "routine", "urgent", "kernel", "soft"),
    *("bone", "lung", "window", "slice", "thickness", "mm", "kv", "mas", "dose", "pitch"),
    *("helical", "scout", "localizer", "coronal", "sagittal", "oblique", "series"),
]
_COMMENTS = [" ".join(random.Random(n).choices(_WORDS, k=60)) for n in range(1024)]


def uid(*parts: int) -> str:
    """A 2.25 UID from a hash: random order, reproducible without keeping a list."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=16).digest()
    return f"2.25.{int.from_bytes(digest, 'big')}"


def key_of(n: int) -> bytes:
    return instance_key(uid(n // PER_STUDY), uid(n // PER_STUDY, n % PER_STUDY))


def t(vr: str, value: str) -> dict[str, Any]:
    return {"vr": vr, "Value": [value]}


def value_of(n: int) -> bytes:
    """~1.1 KB of DICOM JSON, like a slim instance; the comment text varies the compressibility."""
    study, j = divmod(n, PER_STUDY)
    return orjson.dumps(
        {
            "0020000E": t("UI", uid(study, 99)),
            "00200011": t("IS", str(1 + study % 7)),
            "00080060": t("CS", ("CT", "MR", "CR", "US")[study % 4]),
            "0008103E": t("LO", "Thorax arterial phase 1.0 mm"),
            "00180015": t("CS", "CHEST"),
            "00200060": t("CS", "L"),
            "00080016": t("UI", "1.2.840.10008.5.1.4.1.1.2"),
            "00080018": t("UI", uid(study, j)),
            "00200013": t("IS", str(j + 1)),
            "00080070": t("LO", "SIEMENS"),
            "00081090": t("LO", "SOMATOM Definition AS+"),
            "00181000": t("LO", str(10_000 + study % 977)),
            "00101030": t("DS", f"{50 + study % 50}.5"),
            "00204000": t("LT", _COMMENTS[(n * 7919) % len(_COMMENTS)][: 500 + n % 100]),
            "offset": n,
        }
    )


def records(n: int) -> Iterator[tuple[int, bytes, bytes | None]]:
    """(changelog offset, key, value) of instances 0..n-1, as a full changelog would hold them."""
    for i in range(n):
        yield i, key_of(i), value_of(i)


class RebuildStats(NamedTuple):
    records: int
    batches: int
    store_seconds: float  # inside apply_restored only, without producing the records


def rebuild(
    store: PartitionStore[Any],
    records: Iterable[tuple[int, bytes, bytes | None]],
    batch: int = BATCH,
) -> RebuildStats:
    """Apply changelog records in batches, each written with its last offset in one atomic batch."""
    count = batches = 0
    spent = 0.0
    chunk: list[tuple[bytes, bytes | None]] = []
    offset = -1
    for offset, key, value in records:
        chunk.append((key, value))
        if len(chunk) >= batch:
            t0 = time.perf_counter()
            count += store.apply_restored(chunk, offset)
            spent += time.perf_counter() - t0
            batches += 1
            chunk = []
    if chunk:
        t0 = time.perf_counter()
        count += store.apply_restored(chunk, offset)
        spent += time.perf_counter() - t0
        batches += 1
    return RebuildStats(count, batches, spent)


def status(field: str) -> int:
    """VmRSS/VmHWM of this process in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def rss() -> int:
    gc.collect()
    return status("VmRSS")


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def open_kv(engine: str, base: Path) -> KVStore:
    if engine == "rocksdb":
        return RocksStore(base / "db")
    return SqliteStore(base / "state.sqlite")


def worker(engine: str, n: int, base: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"engine": engine, "instances": n}
    rng = random.Random(42)
    warm = PartitionStore(open_kv(engine, base / "warm"), BytesCodec())
    # Touch every code path once in a scratch store, so the baseline has the engine's code pages.
    for i in range(BATCH):
        warm.put(key_of(i), value_of(i))
    warm.flush(0, 0)
    list(warm.scan_prefix(instance_prefix(uid(0))))
    warm.delete_prefix(instance_prefix(uid(1)))
    warm.flush(None, 0)
    warm.kv.destroy()
    store = PartitionStore(open_kv(engine, base / "p0"), BytesCodec())
    out["rss_base"] = rss()

    spent = 0.0
    for start in range(0, n, BATCH):
        batch = [(key_of(i), value_of(i)) for i in range(start, min(n, start + BATCH))]
        t0 = time.perf_counter()
        for key, value in batch:
            store.put(key, value)
        store.flush(start // BATCH, int(time.time() * 1000))
        spent += time.perf_counter() - t0
    out["write_us"] = spent / n * 1e6
    out["value_bytes"] = sum(len(value_of(i)) for i in range(0, n, 97)) / len(range(0, n, 97))
    out["key_bytes"] = len(key_of(0))
    out["rss_written"] = rss()

    keys = [key_of(rng.randrange(n)) for _ in range(READS)]
    t0 = time.perf_counter()
    found = sum(store.get(k) is not None for k in keys)
    out["read_us"] = (time.perf_counter() - t0) / READS * 1e6
    assert found == READS, found
    prefixes = [instance_prefix(uid(rng.randrange(n // PER_STUDY))) for _ in range(SCANS)]
    t0 = time.perf_counter()
    scanned = sum(len(list(store.scan_prefix(p))) for p in prefixes)
    out["scan_us"] = (time.perf_counter() - t0) / SCANS * 1e6
    assert scanned == SCANS * PER_STUDY, scanned
    del keys, prefixes
    out["rss_read"] = rss()
    if engine == "rocksdb":
        out["rocks_usage"] = shared_resources().usage()

    victims = rng.sample(range(n // PER_STUDY), min(DELETES, n // PER_STUDY // 2))
    t0 = time.perf_counter()
    for i, study in enumerate(victims, 1):
        assert store.delete_prefix(instance_prefix(uid(study))) == PER_STUDY
        if i % DELETES_PER_FLUSH == 0 or i == len(victims):
            store.flush(None, int(time.time() * 1000))
    out["delete_study_us"] = (time.perf_counter() - t0) / len(victims) * 1e6

    gone = set(victims)
    survivor = next(s for s in range(n // PER_STUDY) if s not in gone) * PER_STUDY
    store.close()
    t0 = time.perf_counter()
    store = PartitionStore(open_kv(engine, base / "p0"), BytesCodec())
    assert store.get(key_of(survivor)) is not None
    out["reopen_ms"] = (time.perf_counter() - t0) * 1e3
    out["disk_per_instance"] = disk_bytes(base / "p0") / (n - len(victims) * PER_STUDY)
    out["rss_peak"] = status("VmHWM")
    store.close()

    fresh = PartitionStore(open_kv(engine, base / "p1"), BytesCodec())
    t0 = time.perf_counter()
    stats = rebuild(fresh, records(n))
    out["rebuild_s"] = time.perf_counter() - t0
    out["rebuild_store_s"] = stats.store_seconds
    assert fresh.metadata().changelog_offset == n - 1
    fresh.close()
    if engine == "rocksdb":
        log = (base / "p1" / "db" / "LOG").read_text(errors="replace")
        found_version = re.search(r"RocksDB version: (\S+)", log)
        out["rocksdb_version"] = found_version.group(1) if found_version else "?"
    return out


# -- the parent: run workers, aggregate, write the table ------------------------------------------


def machine() -> dict[str, Any]:
    def first(path: str, prefix: str) -> str:
        lines = Path(path).read_text().splitlines()
        return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(prefix)), "?")

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": first("/proc/cpuinfo", "model name"),
        "mem_gib": round(int(first("/proc/meminfo", "MemTotal").split()[0]) / 2**20, 1),
        "loadavg": os.getloadavg()[0],
        "python": platform.python_version(),
        "rocksdict": md.version("rocksdict"),
        "sqlite": sqlite3.sqlite_version,
        "orjson": md.version("orjson"),
    }


def fs_type(path: Path) -> str:
    best, kind = "", "?"
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fstype, *_ = line.split()
        if str(path.resolve()).startswith(mount) and len(mount) > len(best):
            best, kind = mount, fstype
    return kind


def run_worker(engine: str, n: int, root: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=root, prefix=f"{engine}-{n}-") as tmp:
        cmd = [sys.executable, __file__, "--worker", engine, str(n), tmp]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"worker {engine} {n} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def timing(runs: list[dict[str, Any]], field: str, fmt: str) -> str:
    values = [r[field] for r in runs]
    mid = fmt.format(statistics.median(values))
    return (
        mid if len(values) == 1 else f"{mid} ({fmt.format(min(values))}–{fmt.format(max(values))})"
    )


def growth(runs: list[dict[str, Any]], field: str) -> str:
    grow = statistics.median(r[field] - r["rss_base"] for r in runs)
    return f"+{grow / 2**20:,.1f} MiB = **{grow / runs[0]['instances']:,.0f} B**"


TIMED = [
    ("write, µs per instance (checkpoints of 500 + metadata)", "write_us", "{:,.1f}"),
    ("point read, µs (20,000 random keys)", "read_us", "{:,.1f}"),
    ("prefix scan of one study (5 records), µs", "scan_us", "{:,.1f}"),
    ("delete one study (scan + 5 tombstones, flush per 100), µs", "delete_study_us", "{:,.1f}"),
    ("reopen after close (open + first read), ms", "reopen_ms", "{:,.1f}"),
    ("disk per instance after reopen, B", "disk_per_instance", "{:,.0f}"),
    ("rebuild: store writes for all records (`rebuild()`), s", "rebuild_store_s", "{:,.2f}"),
]
RSS = [
    ("after writes", "rss_written"),
    ("after reads", "rss_read"),
    ("peak (VmHWM)", "rss_peak"),
]


def table(
    res: dict[tuple[str, int], list[dict[str, Any]]], sizes: list[int], info: dict[str, Any]
) -> str:
    big = info["timing_size"]
    rk, sq = res[("rocksdb", big)], res[("sqlite", big)]
    rows = [(label, timing(rk, f, fmt), timing(sq, f, fmt)) for label, f, fmt in TIMED]
    for n in sizes:
        r, s = res[("rocksdb", n)], res[("sqlite", n)]
        rows += [
            (f"RSS growth, {n:,} instances held, {what}", growth(r, f), growth(s, f))
            for what, f in RSS
        ]
    usage = rk[0].get("rocks_usage", {})
    rc, sc = RocksConfig(), SqliteConfig()
    return "\n".join(
        [
            "# State store benchmark: rocksdict vs SQLite",
            "",
            f"`{' '.join(info['argv'])}`, {info['date']}. Machine: {info['nproc']} CPUs "
            f"({info['cpu']}), {info['mem_gib']} GiB RAM, load average {info['loadavg']:.2f} at "
            f"start, store files on {info['fs']}. Python {info['python']}, rocksdict "
            f"{info['rocksdict']} (RocksDB {rk[0].get('rocksdb_version', '?')}), SQLite "
            f"{info['sqlite']}, orjson {info['orjson']}.",
            "",
            f"Workload: {big:,} instances held, except in the RSS rows; values {rk[0]['value_bytes']:,.0f} B "
            f"(DICOM JSON), keys `i|<study>|<sop>` of {rk[0]['key_bytes']} B, {PER_STUDY} instances "
            "per study, random 2.25 UIDs, through `PartitionStore`. Median of "
            f"{info['repeat']} fresh processes per engine and size, range in brackets. RSS: "
            "VmRSS growth over a warmed-up process with its empty store open, median, and per "
            "instance held.",
            "",
            f"Configuration (the defaults): RocksDB {rc.block_cache_bytes >> 20} MiB shared block "
            f"cache (data, index and filter blocks), {rc.write_buffer_manager_bytes >> 20} MiB "
            f"shared write-buffer manager, {rc.write_buffer_size >> 20} MiB memtables, "
            f"{rc.compression}, WAL without fsync; after the reads at {big:,} the cache held "
            f"{usage.get('block_cache', 0) / 2**20:.1f} MiB and the memtables "
            f"{usage.get('write_buffers', 0) / 2**20:.1f} MiB. SQLite: WAL, synchronous=NORMAL, "
            f"{sc.cache_bytes >> 20} MiB page cache per store, rowid table.",
            "",
            "| measure | rocksdict | SQLite |",
            "|---|---|---|",
            *(f"| {m} | {a} | {b} |" for m, a, b in rows),
            "",
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--sizes", default="10000,100000,300000", help="instances held, comma-separated"
    )
    ap.add_argument("--timing-size", type=int, default=100_000, help="size of the timing rows")
    ap.add_argument("--repeat", type=int, default=3, help="fresh processes per engine and size")
    ap.add_argument("--dir", type=Path, default=None, help="for the stores (default: temp dir)")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "state_store.md")
    ap.add_argument("--worker", nargs=3, metavar=("ENGINE", "N", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        engine, n, base = args.worker
        print(json.dumps(worker(engine, int(n), Path(base))))
        return
    sizes = sorted(int(s) for s in args.sizes.split(","))
    root = args.dir or Path(tempfile.gettempdir())
    argv = ["bench/state_store.py", *sys.argv[1:]]
    timing_size = args.timing_size if args.timing_size in sizes else max(sizes)
    info = machine() | {"repeat": args.repeat, "fs": fs_type(root), "argv": argv}
    info["timing_size"] = timing_size
    res: dict[tuple[str, int], list[dict[str, Any]]] = {}
    started = time.perf_counter()
    for n in sizes:
        for rep in range(args.repeat):
            for engine in ("rocksdb", "sqlite") if rep % 2 == 0 else ("sqlite", "rocksdb"):
                res.setdefault((engine, n), []).append(run_worker(engine, n, root))
                took = time.perf_counter() - started
                print(f"{engine} {n:,} run {rep + 1} done at {took:.0f} s", file=sys.stderr)
    text = table(res, sizes, info)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    raw = {"info": info, "runs": [r for runs in res.values() for r in runs]}
    args.out.with_suffix(".json").write_text(json.dumps(raw, indent=1) + "\n")
    # The README shows the same table, without the heading.
    write_block("state-store", text.split("\n", 2)[2])
    print(text)


if __name__ == "__main__":
    main()
