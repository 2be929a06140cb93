"""End-to-end throughput: DICOM JSON instances already in the input topic -> every Bundle published.

    .venv/bin/python bench/e2e.py                        # 4,000 studies x 5 instances, 3 runs each
    .venv/bin/python bench/e2e.py --broker tansu --repeat 1

One input topic (3 partitions) gets S studies of 5 instances, each followed by its end-of-study
marker, before anything runs. Then, alternately (old, new, new, old, ...), one streamer process per
run reads it from the beginning in a fresh group with a fresh output topic (and, for the new code,
a fresh changelog topic and an empty state dir): old = 1aff090 (in-memory state), new = this tree
(RocksDB store + changelog). Time = exec of `python -m streamer` -> the last of the S Bundles read
back from the output topic by a consumer running alongside; instances/s = 5 S / time. Also the
time until the process was ready (old: "partitions assigned"; new: every "partition ready"), the
rate after that, and the CPU time the process used (utime + stime, less sensitive to other load
on the machine than wall time).

Both get the same settings (defaults; STREAMER_DICOM_TIMEZONE=Europe/Berlin). On Tansu, both get
STREAMER_IDEMPOTENT_PRODUCER=false and the new one STREAMER_ISOLATION_LEVEL=read_uncommitted.
Output: bench/results/e2e.{md,json} (e2e-tansu for Tansu).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import _kafkabench as kb

PARTITIONS = 3


def cpu_seconds(proc: kb.Proc) -> float:
    fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ready_time(proc: kb.Proc, code: str) -> float | None:
    if code == "new":
        ready = kb.ready_partitions(proc)
        return max(e["t"] for e in ready.values()) if len(ready) == PARTITIONS else None
    assigned = proc.find("partitions assigned")
    return assigned[0]["t"] if assigned else None


async def one_run(
    broker: kb.Broker,
    code: str,
    tree: Path,
    input_topic: str,
    keys: list[str],
    instances: int,
    work: Path,
    rep: int,
) -> dict[str, Any]:
    topics = kb.Topics.unique(f"e2e-{code}-{rep}", input_topic=input_topic)
    await kb.create_topics(broker, topics, PARTITIONS, changelog=code == "new")
    state = work / f"state-{code}-{rep}" if code == "new" else None
    env = kb.streamer_env(code, broker, topics, state, topic_partitions=PARTITIONS)
    async with kb.Watcher(broker, topics.output) as out:
        proc = kb.Proc(f"{code}-{rep}", env, tree, work / f"{code}-{rep}.log").start()
        try:
            await out.wait_keys(keys, 900, [proc], "Bundles")
            last_read = max(out.keys[k][0].received for k in keys)
            last_stamp = max(out.keys[k][0].timestamp_ms for k in keys) / 1000
            first_stamp = min(out.keys[k][0].timestamp_ms for k in keys) / 1000
            cpu = cpu_seconds(proc)
            ready = ready_time(proc, code)
            code_rc, _ = proc.terminate()
        finally:
            proc.close()
    took = last_read - proc.started
    res = {
        "code": code,
        "start_to_last_bundle_read_s": took,
        "start_to_last_bundle_stamp_s": last_stamp - proc.started,
        "start_to_first_bundle_stamp_s": first_stamp - proc.started,
        "start_to_ready_s": None if ready is None else ready - proc.started,
        "instances_per_s": instances / took,
        "after_ready_instances_per_s": (None if ready is None else instances / (last_read - ready)),
        "cpu_s": cpu,
        "cpu_ms_per_instance": cpu * 1000 / instances,
        "bundles": len(out.records),
        "state_dir_bytes": kb.dir_bytes(state) if state is not None else None,
        "exit_code": code_rc,
    }
    kb.log(
        f"{code} run {rep + 1}: {took:.2f} s = {res['instances_per_s']:,.0f} instances/s, "
        f"cpu {cpu:.1f} s, {res['bundles']:,} Bundles"
    )
    return res


def table(runs: list[dict[str, Any]], info: dict[str, Any]) -> str:
    by = {c: [r for r in runs if r["code"] == c] for c in ("old", "new")}

    def col(code: str, key: str, fmt: str) -> str:
        vals = [r[key] for r in by[code] if r[key] is not None]
        return kb.spread(vals, fmt) if vals else "–"

    rows = [
        ("start → last Bundle read, s", "start_to_last_bundle_read_s", "{:.2f}"),
        ("**instances/s** (start → last Bundle read)", "instances_per_s", "{:,.0f}"),
        ("start → ready, s", "start_to_ready_s", "{:.2f}"),
        ("instances/s after ready", "after_ready_instances_per_s", "{:,.0f}"),
        ("start → first Bundle (record time stamp), s", "start_to_first_bundle_stamp_s", "{:.2f}"),
        ("CPU time of the process, s", "cpu_s", "{:.1f}"),
        ("CPU ms per instance", "cpu_ms_per_instance", "{:.3f}"),
    ]
    ratio = kb.median([r["instances_per_s"] for r in by["new"]]) / kb.median(
        [r["instances_per_s"] for r in by["old"]]
    )
    cpu_ratio = kb.median([r["cpu_s"] for r in by["new"]]) / kb.median(
        [r["cpu_s"] for r in by["old"]]
    )
    s, n = info["studies"], info["instances"]
    return "\n".join(
        [
            f"# End-to-end throughput ({info['broker']['kind']})",
            "",
            kb.machine_line(info),
            "",
            f"{n:,} instances in {s:,} studies of {kb.PER_STUDY} (≈{info['instance_bytes']:,.0f} B "
            f"of DICOM JSON each), every study followed by its end-of-study marker, all in the "
            f"input topic ({PARTITIONS} partitions) before the process starts. One process per "
            "run, fresh group and output topic (new: fresh changelog and empty state dir), runs "
            f"alternating old/new; {info['repeat']} runs each, median (min–max). Default "
            "settings on both sides.",
            "",
            f"| measure | old ({kb.OLD_COMMIT}) | new |",
            "|---|---|---|",
            *(f"| {label} | {col('old', k, f)} | {col('new', k, f)} |" for label, k, f in rows),
            "",
            f"**new / old throughput: {ratio:.2f}×** (medians; "
            + ("not lower" if ratio >= 1 else "**lower**")
            + f" than before). CPU time new / old: {cpu_ratio:.2f}×.",
            "",
        ]
    )


async def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--studies", type=int, default=4000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--broker", default="apache-kafka", choices=("apache-kafka", "tansu"))
    ap.add_argument("--keep", type=Path, default=None, help="keep logs and state dirs here")
    ap.add_argument("--out", default=None, help="result name (default e2e, e2e-tansu)")
    args = ap.parse_args()
    name = args.out or ("e2e" if args.broker == "apache-kafka" else f"e2e-{args.broker}")
    started = time.perf_counter()
    studies = kb.Studies()
    instances = args.studies * kb.PER_STUDY
    info = kb.machine() | {
        "repeat": args.repeat,
        "partitions": PARTITIONS,
        "studies": args.studies,
        "instances": instances,
        "instance_bytes": studies.instance_bytes,
    }
    broker = kb.start_broker(args.broker)
    info["broker"] = broker.info()
    runs: list[dict[str, Any]] = []
    try:
        with kb.workdir(args.keep, "bench-e2e-") as tmp, kb.old_tree() as old:
            base = kb.Topics.unique("e2e-input")
            await kb.create_topics(broker, base, PARTITIONS, changelog=False)
            sent = await kb.produce(broker, base.input, studies.records(0, args.studies, True))
            keys = sorted(
                {studies.study(n)[0] for n in range(args.studies)}
            )  # the Bundle keys: one per study
            kb.log(f"{sent:,} records in {base.input}")
            for rep in range(args.repeat):
                for code in ("old", "new") if rep % 2 == 0 else ("new", "old"):
                    tree = old if code == "old" else kb.REPO
                    runs.append(
                        await one_run(
                            broker, code, tree, base.input, keys, instances, Path(tmp), rep
                        )
                    )
    finally:
        broker.stop()
    info["took_s"] = time.perf_counter() - started
    info["loadavg_end"] = list(os.getloadavg())
    text = table(runs, info)
    kb.write_results(name, text, {"info": info, "runs": runs})
    print(text)


if __name__ == "__main__":
    kb.run(main)
