"""Memory benchmark: resident memory of the streamer process per open (held) instance, new vs old.

    .venv/bin/python bench/memory.py                    # 10,000 and 100,000 open instances, 3 runs
    .venv/bin/python bench/memory.py --repeat 1 --sizes 10000

Per run, one input topic (3 partitions) and two processes reading it in their own groups, started
together: the new code (this tree, RocksDB store + changelog, STREAMER_STATE_DIR in a temp dir) and
the old one (1aff090, studies held in memory; same settings minus the state ones, its default
STREAMER_REOPEN_WINDOW_SECONDS). Studies of 5 instances, no markers, study timeout one day, so
every instance stays open.

1. Both assigned (new: every partition restored), 8 s idle: RSS_0.
2. Studies up to 10,000 instances go in, then one probe study (1 instance + marker) per partition.
   Once both have published every probe Bundle (so every instance before it was read) and the new
   one's commit reached the end of the input (so its changes left memory for the store), 8 s idle:
   RSS_10k. The same for 100,000 (90,000 more).

RSS = VmRSS from /proc/<pid>/status, median of 5 readings 0.4 s apart; VmHWM (peak) is kept too.
RAM per open instance = (RSS_N - RSS_0) / N; the marginal one = (RSS_100k - RSS_10k) / 90,000.

Both processes run through `bench/_rss_probe.py` (= `python -m streamer` via runpy, plus a SIGUSR2
handler): after each RSS reading it reports glibc's heap (size, in use, free) and calls
malloc_trim(0), then VmRSS again. RSS after the trim is what the process really holds; the
difference is freed memory glibc kept (fragmented heap after a burst of input).

`--pace N` sends the instances at N per second instead of all at once (a steady feed instead of
a catch-up burst). Output: bench/results/memory.{md,json,png} (`--out` for another name); the
target (≤ 1 KB per open instance at 10,000 and at 100,000, new code) is printed as met or missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import _kafkabench as kb
from charts import bar_chart

PARTITIONS = 3
TIMEOUT_S = 86_400
# Idle time before a reading: the processor's next periodic checkpoint (STREAMER_COMMIT_INTERVAL_SECONDS,
# 5 s) comes within it, and a trim after it. That checkpoint's write is what lets RocksDB flush the
# burst's memtables (the flush is decided on the write path), and the trims of the seconds after a
# burst return what it frees. Read 3 s after a 10,000-instance burst, RSS still held ≈ 7-13 MiB that
# the process itself released 2-3 s later (diagnostic runs, bench/README).
SETTLE_S = 8.0
TARGET_B = 1024  # at most 1 KB of RAM per open instance (new code), at each size


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def sample(proc: kb.Proc, probe_out: Path) -> dict[str, Any]:
    """VmRSS (median of 5), VmHWM, then the probe's heap figures and the RSS after malloc_trim."""
    values = []
    for _ in range(5):
        values.append(proc.status_kib("VmRSS"))
        await asyncio.sleep(0.4)
    out: dict[str, Any] = {"rss_kib": int(kb.median(values)), "hwm_kib": proc.status_kib("VmHWM")}
    seen = len(_lines(probe_out))
    os.kill(proc.pid, signal.SIGUSR2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = _lines(probe_out)
        if len(lines) > seen:
            doc = json.loads(lines[seen])
            out["heap"] = doc["before"]
            out["trimmed"] = doc["after_trim"]
            out["trimmed_rss_kib"] = doc["after_trim"]["rss_kib"]
            out["rocks"] = doc.get("rocks")  # block cache / memtable bytes (new code only)
            return out
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{proc.name}: no answer from the memory probe:\n{proc.tail()}")


async def send(
    broker: kb.Broker, topic: str, studies: kb.Studies, first: int, count: int, pace: float
) -> None:
    """Studies first .. first+count-1, at once or at `pace` instances per second."""
    if not pace:
        await kb.produce(broker, topic, studies.records(first, count, False))
        return
    chunk = max(1, int(pace / 10 / kb.PER_STUDY))  # one chunk every 0.1 s
    started = time.monotonic()
    for i, at in enumerate(range(first, first + count, chunk)):
        n = min(chunk, first + count - at)
        await kb.produce(broker, topic, studies.records(at, n, False))
        wait = started + (i + 1) * chunk * kb.PER_STUDY / pace - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)


async def one_run(
    broker: kb.Broker,
    studies: kb.Studies,
    sizes: list[int],
    tree: Path,
    work: Path,
    rep: int,
    pace: float,
) -> dict[str, Any]:
    new_t = kb.Topics.unique(f"mem-new-{rep}")
    old_t = kb.Topics.unique(f"mem-old-{rep}", input_topic=new_t.input)
    await kb.create_topics(broker, new_t, PARTITIONS)
    await kb.create_topics(broker, old_t, PARTITIONS, changelog=False)
    state = work / f"state-{rep}"
    common = {"study_timeout_seconds": TIMEOUT_S, "topic_partitions": PARTITIONS}
    envs = {
        "new": kb.streamer_env("new", broker, new_t, state, **common),
        "old": kb.streamer_env("old", broker, old_t, **common),
    }
    probe_out = {side: work / f"{side}-{rep}.mallinfo" for side in envs}
    procs = {
        side: kb.Proc(
            f"{side}-{rep}",
            {**env, "BENCH_MALLINFO_OUT": str(probe_out[side])},
            kb.REPO if side == "new" else tree,
            work / f"{side}-{rep}.log",
            cmd=(str(kb.BENCH / "_rss_probe.py"),),
        )
        for side, env in envs.items()
    }
    out: dict[str, Any] = {"new": {"steps": []}, "old": {"steps": []}}
    try:
        for proc in procs.values():
            proc.start()
        await procs["new"].wait_for(
            lambda p: len(kb.ready_partitions(p)) == PARTITIONS, "partition ready"
        )
        await procs["old"].wait_for(
            lambda p: len(kb.assigned_now(p)) == PARTITIONS, "partitions assigned"
        )
        async with (
            kb.Watcher(broker, new_t.output) as w_new,
            kb.Watcher(broker, old_t.output) as w_old,
        ):
            # Warm-up: one complete study per partition first, so what the first Bundle costs once
            # (validators built, lazily imported modules) is in the baseline, not "per open instance".
            probes = kb.probe_records(PARTITIONS, studies)
            await kb.produce(broker, new_t.input, probes)
            keys = {k.decode() for k, _, _ in probes}
            await w_new.wait_keys(keys, 300, [procs["new"]], "warm-up Bundles (new)")
            await w_old.wait_keys(keys, 300, [procs["old"]], "warm-up Bundles (old)")
            await kb.wait_committed(broker, new_t.group, new_t.input, 300, procs["new"])
            await asyncio.sleep(SETTLE_S)
            for side, proc in procs.items():
                out[side]["idle"] = await sample(proc, probe_out[side])
            kb.log(
                f"run {rep + 1}: idle RSS after the warm-up: new "
                f"{out['new']['idle']['rss_kib'] / 1024:.1f} MiB, "
                f"old {out['old']['idle']['rss_kib'] / 1024:.1f} MiB"
            )
            held = 0
            for n in sizes:
                t = time.perf_counter()
                first, count = held // kb.PER_STUDY, (n - held) // kb.PER_STUDY
                await send(broker, new_t.input, studies, first, count, pace)
                probes = kb.probe_records(PARTITIONS, studies)
                await kb.produce(broker, new_t.input, probes)
                keys = {k.decode() for k, _, _ in probes}
                held = n
                await w_new.wait_keys(keys, 900, [procs["new"]], "probe Bundles (new)")
                await w_old.wait_keys(keys, 900, [procs["old"]], "probe Bundles (old)")
                read_s = time.perf_counter() - t
                await kb.wait_committed(broker, new_t.group, new_t.input, 300, procs["new"])
                await asyncio.sleep(SETTLE_S)
                for side, proc in procs.items():
                    step = {"instances": n, **await sample(proc, probe_out[side])}
                    idle = out[side]["idle"]
                    step["per_instance_b"] = (step["rss_kib"] - idle["rss_kib"]) * 1024 / n
                    step["trimmed_per_instance_b"] = (
                        (step["trimmed_rss_kib"] - idle["trimmed_rss_kib"]) * 1024 / n
                    )
                    out[side]["steps"].append(step)
                out["new"]["steps"][-1]["state_dir_bytes"] = kb.dir_bytes(state)
                kb.log(
                    f"run {rep + 1}: {n:,} held (sent and read in {read_s:.0f} s): "
                    + ", ".join(
                        f"{side} {out[side]['steps'][-1]['rss_kib'] / 1024:.1f} MiB = "
                        f"{out[side]['steps'][-1]['per_instance_b']:,.0f} B/instance "
                        f"(after trim {out[side]['steps'][-1]['trimmed_per_instance_b']:,.0f})"
                        for side in procs
                    )
                )
        for side, proc in procs.items():
            out[side]["exit_code"], _ = proc.terminate()
    finally:
        for proc in procs.values():
            proc.close()
    return out


def verdict_line(runs: list[dict[str, Any]], n: int, i: int) -> str:
    """Target met or missed at one size (new code), on RSS and on RSS after malloc_trim(0)."""
    rss = kb.median([r["new"]["steps"][i]["per_instance_b"] for r in runs])
    trimmed = kb.median([r["new"]["steps"][i]["trimmed_per_instance_b"] for r in runs])
    return (
        f"At {n:,} open instances: {rss:,.0f} B of RSS per open instance, target ≤ {TARGET_B:,} B "
        + ("**met**" if rss <= TARGET_B else "**missed**")
        + f"; {trimmed:,.0f} B after malloc_trim(0), "
        + ("met." if trimmed <= TARGET_B else "missed.")
    )


def chart(name: str, runs: list[dict[str, Any]], sizes: list[int]) -> None:
    """RAM per open instance by size: new (RSS, after malloc_trim) and old, with the target."""

    def med(side: str, field: str) -> list[float]:
        return [kb.median([r[side]["steps"][i][field] for r in runs]) for i in range(len(sizes))]

    bar_chart(
        name,
        "RAM per open instance (RSS − idle) / N",
        [f"{n:,} open" for n in sizes],
        {
            "new": med("new", "per_instance_b"),
            "new, after malloc_trim": med("new", "trimmed_per_instance_b"),
            "old (1aff090)": med("old", "per_instance_b"),
        },
        "bytes per open instance",
        target=TARGET_B,
        target_label="target ≤ 1 KB",
        log_scale=True,
    )


def table(runs: list[dict[str, Any]], sizes: list[int], info: dict[str, Any]) -> str:
    sides = ("new", "old")

    def mib(get: Any) -> tuple[str, ...]:
        return tuple(kb.spread([get(r[s]) / 1024 for r in runs], "{:,.1f}") + " MiB" for s in sides)

    def per_instance(field: str, i: int, bold: bool = False) -> tuple[str, ...]:
        b = "**" if bold else ""
        return tuple(
            b + kb.spread([r[s]["steps"][i][field] for r in runs], "{:,.0f}") + " B" + b
            for s in sides
        )

    def marginal(field: str) -> tuple[str, ...]:
        a, b = sizes[-2], sizes[-1]
        return tuple(
            kb.spread(
                [
                    (r[s]["steps"][-1][field] - r[s]["steps"][-2][field]) * 1024 / (b - a)
                    for r in runs
                ],
                "{:,.0f}",
            )
            + " B"
            for s in sides
        )

    rows: list[tuple[str, ...]] = [
        (
            "RSS idle after start and a warm-up (one complete study per partition published)",
            *mib(lambda x: x["idle"]["rss_kib"]),
        )
    ]
    for i, n in enumerate(sizes):
        rows += [
            (f"RSS with {n:,} open instances", *mib(lambda x, i=i: x["steps"][i]["rss_kib"])),
            (
                f"**RAM per open instance at {n:,}** = (RSS − idle) / {n:,}",
                *per_instance("per_instance_b", i, bold=True),
            ),
        ]
    if len(sizes) > 1:
        rows.append((f"marginal, {sizes[-2]:,} → {sizes[-1]:,} (RSS)", *marginal("rss_kib")))
    rows.append(("peak RSS (VmHWM) at the end", *mib(lambda x: x["steps"][-1]["hwm_kib"])))
    rows.append(
        (
            "RSS idle, after malloc_trim(0)",
            *mib(lambda x: x["idle"]["trimmed_rss_kib"]),
        )
    )
    for i, n in enumerate(sizes):
        rows += [
            (
                f"RSS with {n:,} open instances, after malloc_trim(0)",
                *mib(lambda x, i=i: x["steps"][i]["trimmed_rss_kib"]),
            ),
            (
                f"RAM per open instance at {n:,} after malloc_trim(0)",
                *per_instance("trimmed_per_instance_b", i),
            ),
            (
                f"glibc heap at {n:,}: size / in use / free (before the trim)",
                *(
                    " / ".join(
                        kb.spread([r[s]["steps"][i]["heap"][k] / 2**20 for r in runs], "{:,.0f}")
                        for k in ("heap_bytes", "in_use_bytes", "free_bytes")
                    )
                    + " MiB"
                    for s in sides
                ),
            ),
        ]
    if len(sizes) > 1:
        rows.append(
            (
                f"marginal, {sizes[-2]:,} → {sizes[-1]:,} (RSS after malloc_trim)",
                *marginal("trimmed_rss_kib"),
            )
        )
    for i, n in enumerate(sizes):
        rocks = [r["new"]["steps"][i].get("rocks") for r in runs]
        if all(rocks):
            rows.append(
                (
                    f"RocksDB block cache / memtables at {n:,} (part of the RSS; 32 MiB caps by default)",
                    " / ".join(
                        kb.spread([x[k] / 2**20 for x in rocks if x], "{:,.1f}")
                        for k in ("block_cache", "write_buffers")
                    )
                    + " MiB",
                    "–",
                )
            )
    disk = [r["new"]["steps"][-1]["state_dir_bytes"] / sizes[-1] for r in runs]
    rows.append(
        (
            f"state dir on disk at {sizes[-1]:,}, per open instance",
            kb.spread(disk, "{:,.0f}") + " B",
            "–",
        )
    )
    verdict = " ".join(verdict_line(runs, n, i) for i, n in enumerate(sizes))
    feed = (
        f"sent at {info['pace']:,.0f} instances/s"
        if info.get("pace")
        else "sent all at once (a catch-up burst)"
    )
    return "\n".join(
        [
            f"# Memory benchmark ({info['broker']['kind']})",
            "",
            kb.machine_line(info),
            "",
            f"Both processes read the same input topic ({PARTITIONS} partitions) in their own "
            f"groups, started together. The baseline is the idle RSS after a warm-up (one "
            "complete 1-instance study per partition published), so the one-time cost of the "
            "first Bundle is not counted per open instance. "
            f"Then studies of {kb.PER_STUDY} instances (≈"
            f"{info['instance_bytes']:,.0f} B of DICOM JSON each), {feed}, no markers, study "
            f"timeout {TIMEOUT_S:,} s: every instance stays open. RSS is VmRSS, median of 5 "
            f"readings 0.4 s apart after {SETTLE_S:.0f} s idle, once both published the probe "
            "Bundles sent after the instances and the new one committed the end of the input. "
            "Then `bench/_rss_probe.py` (in the process) reads glibc's mallinfo2() and calls "
            "malloc_trim(0), and VmRSS is read again. "
            f"{info['repeat']} runs; median (min–max). New = RocksDB store (defaults) + "
            f"changelog; old = {kb.OLD_COMMIT}, instances held in memory.",
            "",
            "| measure | new | old |",
            "|---|---|---|",
            *(f"| {a} | {b} | {c} |" for a, b, c in rows),
            "",
            verdict,
            "",
        ]
    )


async def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="10000,100000", help="open instances, comma-separated")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--broker", default="apache-kafka", choices=("apache-kafka", "tansu"))
    ap.add_argument("--pace", type=float, default=0, help="instances/s (default: all at once)")
    ap.add_argument("--keep", type=Path, default=None, help="keep logs and state dirs here")
    ap.add_argument("--out", default=None, help="result name (default memory, memory-tansu)")
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    name = args.out or ("memory" if args.broker == "apache-kafka" else f"memory-{args.broker}")
    started = time.perf_counter()
    info = kb.machine() | {
        "repeat": args.repeat,
        "partitions": PARTITIONS,
        "sizes": sizes,
        "pace": args.pace,
    }
    studies = kb.Studies()
    info["instance_bytes"] = studies.instance_bytes
    broker = kb.start_broker(args.broker)
    info["broker"] = broker.info()
    runs = []
    try:
        with kb.workdir(args.keep, "bench-memory-") as tmp, kb.old_tree() as tree:
            for rep in range(args.repeat):
                runs.append(await one_run(broker, studies, sizes, tree, Path(tmp), rep, args.pace))
    finally:
        broker.stop()
    info["took_s"] = time.perf_counter() - started
    info["loadavg_end"] = list(os.getloadavg())
    text = table(runs, sizes, info)
    kb.write_results(name, text, {"info": info, "runs": runs})
    chart(name, runs, sizes)
    print(text)


if __name__ == "__main__":
    kb.run(main)
