"""Through a broker: the streamer against a raw aiokafka pass-through of the same records.

    .venv/bin/python bench/throughput.py                      # Apache Kafka and Tansu, 3 repeats
    .venv/bin/python bench/throughput.py --broker kafka --repeat 5 --studies 4000

Per broker: one input topic (4 partitions) holds S studies of 10 DICOM JSON instances (default
2,000 studies = 20,000 instances), each followed by its end-of-study marker, before anything runs.
Then, for 1 and for 2 processes in one consumer group (both started together), alternately
(pass-through, streamer, streamer, pass-through, ...):

* **streamer**: `python -m streamer` (this tree, default settings, RocksDB state store and
  changelog; fresh group, output, changelog topics and state dirs per run); done when all S
  Bundles are read back from the output topic;
* **pass-through**: `python bench/passthrough.py` (fresh group and output topic): aiokafka only,
  every input record produced unchanged to the output topic with the streamer's consumer and
  producer settings and its commit cadence (see passthrough.py); done when all 11 S records are
  read back.

Time = the exec of the first process → the last output record read by a consumer running
alongside in this process; rate = instances / time for both sides (the pass-through also copies
the S markers). Also: exec → ready (every partition assigned, and for the streamer restored), and
the CPU time (utime + stime) of the processes. Target: streamer ≥ 80 % of the pass-through's rate.
Scaling = rate(2 processes) / rate(1 process), per side. One more configuration, one process with
STREAMER_PARTITION_ASSIGNMENT=all on both sides (no group join: the pass-through assigns itself the
partitions too), shows each side's rate without the group join, which on Tansu takes ≈ 3 s of both.

On Apache Kafka one untimed run per side comes first: a fresh JVM broker compiles its hot paths
under its first load (bench/README, latency), and the first timed run would pay for it.

A third side, for one process in a group only (`--no-old` skips it): **first version**, the
streamer of OLD_COMMIT (the last commit before the durable study state: in-memory state, pure
Python), which is the code issue 12 measured at 58–77 % of its pass-through. In the same runs, on
the same yardstick, it shows what that figure corresponds to here.

On Tansu both sides get STREAMER_IDEMPOTENT_PRODUCER=false and STREAMER_ISOLATION_LEVEL=
read_uncommitted (`_kafkabench.streamer_env`). Output: bench/results/throughput.{md,json,png} and
the README block `throughput`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path
from typing import Any

import _kafkabench as kb
import orjson
from charts import bar_chart

TARGET = 0.80
SIDES = ("passthrough", "streamer")
OLD = "first-version"  # the optional third side: the streamer of kb.OLD_COMMIT
ALL = "all"  # STREAMER_PARTITION_ASSIGNMENT of the extra configuration


def config_key(procs_n: int, mode: str) -> str:
    """A configuration's key in the results: "1", "2", "1 all"."""
    return str(procs_n) if mode == "group" else f"{procs_n} {mode}"


def config_label(key: str) -> str:
    n, _, mode = key.partition(" ")
    return n + (", all partitions (no group)" if mode == ALL else "")


BROKERS = {"kafka": "apache-kafka", "apache-kafka": "apache-kafka", "tansu": "tansu"}


async def one_run(
    broker: kb.Broker,
    side: str,
    procs_n: int,
    mode: str,
    input_topic: str,
    partitions: int,
    keys: list[str],
    instances: int,
    records: int,
    work: Path,
    tag: str,
    old_tree: Path | None = None,
) -> dict[str, Any]:
    topics = kb.Topics.unique(f"tp-{side}-{tag}", input_topic=input_topic)
    await kb.create_topics(broker, topics, partitions, changelog=side == "streamer")
    procs: list[kb.Proc] = []
    async with kb.Watcher(broker, topics.output) as out:
        try:
            for i in range(procs_n):
                state = work / f"state-{tag}-{i}"
                tree = kb.REPO
                if side == OLD:  # its own settings only (no state dir, no assignment modes)
                    assert old_tree is not None
                    tree = old_tree
                    env = kb.streamer_env("old", broker, topics, None, http_port=0)
                else:
                    env = kb.streamer_env(
                        "new",
                        broker,
                        topics,
                        state,
                        topic_partitions=partitions,
                        http_port=0,
                        partition_assignment=mode,
                    )
                if side in ("streamer", OLD):
                    proc = kb.Proc(f"{side}-{tag}-{i}", env, tree, work / f"{side}-{tag}-{i}.log")
                else:
                    config = orjson.dumps(kb.passthrough_config(env)).decode()
                    proc = kb.Proc(
                        f"{side}-{tag}-{i}",
                        env,
                        kb.REPO,
                        work / f"{side}-{tag}-{i}.log",
                        cmd=(str(kb.BENCH / "passthrough.py"), config),
                    )
                procs.append(proc)
            for proc in procs:  # started together
                proc.start()
            if side in ("streamer", OLD):
                await out.wait_keys(keys, 900, procs, "Bundles")
            else:
                await kb.wait_records(out, records, 900, procs, "records")
            last_read = max(r.received for r in out.records)
            cpu = sum(kb.cpu_seconds(p) for p in procs)
            readies = [kb.ready_at(p, restores=side == "streamer") for p in procs]
            codes = [p.terminate()[0] for p in procs]
        finally:
            for proc in procs:
                proc.close()
    start = min(p.started for p in procs)
    took = last_read - start
    known = [r for r in readies if r is not None]
    res = {
        "side": side,
        "processes": procs_n,
        "mode": mode,
        "start_to_last_output_read_s": took,
        "instances_per_s": instances / took,
        "start_to_ready_s": max(known) - start if len(known) == len(readies) else None,
        "cpu_s": cpu,
        "output_records": len(out.records),
        "exit_codes": codes,
    }
    kb.log(
        f"{broker.kind} {side} x{procs_n} {mode} {tag}: {took:.2f} s = "
        f"{res['instances_per_s']:,.0f} instances/s, cpu {cpu:.1f} s, "
        f"{len(out.records):,} output records"
    )
    return res


async def run_broker(kind: str, args: argparse.Namespace, studies: kb.Studies) -> dict[str, Any]:
    broker = kb.start_broker(kind)
    runs: list[dict[str, Any]] = []
    try:
        with kb.workdir(args.keep, "bench-throughput-") as tmp:
            base = kb.Topics.unique("tp-input")
            await kb.create_topics(broker, base, args.partitions, changelog=False)
            sent = await kb.produce(broker, base.input, studies.records(0, args.studies, True))
            keys = sorted({studies.study(n)[0] for n in range(args.studies)})
            kb.log(f"{sent:,} records in {base.input} ({args.partitions} partitions)")
            instances = args.studies * args.per_study

            def run(side: str, procs_n: int, mode: str, tag: str) -> Any:
                return one_run(
                    broker, side, procs_n, mode, base.input, args.partitions, keys, instances,
                    sent, Path(tmp), tag, args.old_tree,
                )  # fmt: skip

            if kind == "apache-kafka":
                # A fresh JVM broker compiles its hot paths in its first ≈ 15 s of load (latency.py
                # measured 1.0 → 0.3 cores for the same load): one untimed run per side first, so
                # the first timed run is not the one that pays for it.
                for side in SIDES:
                    warm = await run(side, 1, "group", f"warm-{side}")
                    kb.log(f"(untimed warm-up run: {warm['instances_per_s']:,.0f} instances/s)")
            for rep in range(args.repeat):
                for procs_n, mode in args.configs:
                    sides: tuple[str, ...] = SIDES
                    if args.old_tree is not None and (procs_n, mode) == (1, "group"):
                        sides = (*SIDES, OLD)
                    order = sides if rep % 2 == 0 else sides[::-1]
                    for side in order:
                        tag = f"{rep}-{procs_n}-{mode}"
                        runs.append(await run(side, procs_n, mode, tag) | {"rep": rep})
    finally:
        broker.stop()
    return {"broker": broker.info(), "runs": runs}


def summary(result: dict[str, Any], configs: list[tuple[int, str]]) -> dict[str, Any]:
    runs = result["runs"]
    out: dict[str, Any] = {}
    for n, mode in configs:
        by = {
            s: [
                r
                for r in runs
                if r["side"] == s and r["processes"] == n and r.get("mode", "group") == mode
            ]
            for s in SIDES
        }
        rate = {s: kb.median([r["instances_per_s"] for r in by[s]]) for s in SIDES}
        pairs = [
            st["instances_per_s"] / pt["instances_per_s"]
            for st, pt in zip(by["streamer"], by["passthrough"], strict=True)
        ]
        out[config_key(n, mode)] = {
            "rate": rate,
            "ratio": rate["streamer"] / rate["passthrough"],
            "pair_ratios": pairs,
            "ready": {
                s: [r["start_to_ready_s"] for r in by[s] if r["start_to_ready_s"] is not None]
                for s in SIDES
            },
            "cpu": {s: [r["cpu_s"] for r in by[s]] for s in SIDES},
            "rates": {s: [r["instances_per_s"] for r in by[s]] for s in SIDES},
        }
    olds = [r for r in runs if r["side"] == OLD]
    if olds and "1" in out:
        first = out["1"]
        old_rate = kb.median([r["instances_per_s"] for r in olds])
        first["first_version"] = {
            "rates": [r["instances_per_s"] for r in olds],
            "rate": old_rate,
            "ratio": old_rate / first["rate"]["passthrough"],
            "speedup": first["rate"]["streamer"] / old_rate,
            "cpu": [r["cpu_s"] for r in olds],
        }
    if "1" in out and "2" in out:
        for s in SIDES:
            out["2"].setdefault("scaling", {})[s] = out["2"]["rate"][s] / out["1"]["rate"][s]
    return out


def first_version_rows(results: list[dict[str, Any]], info: dict[str, Any]) -> list[str]:
    """The first version's rows (one process in a group), or nothing when it did not run."""
    rows = []
    for res in results:
        fv = res["summary"].get("1", {}).get("first_version")
        if fv is None:
            continue
        label = "Apache Kafka" if res["broker"]["kind"] == "apache-kafka" else "Tansu"
        rows.append(
            f"| {label} | {kb.spread(fv['rates'], '{:,.0f}')} | {fv['ratio']:.0%} | "
            f"{kb.spread(fv['cpu'], '{:.1f}')} | {fv['speedup']:.2f}× |"
        )
    if not rows:
        return []
    return [
        f"The first version ({info.get('old_commit', kb.OLD_COMMIT)}: in-memory state, pure Python; "
        "the code issue 12 measured at 58–77 % of its pass-through) in the same runs, one process "
        "in a group, alternating with the two sides above:",
        "",
        "| broker | first version instances/s | first version / pass-through | CPU s | "
        "streamer now / first version |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def table(results: list[dict[str, Any]], info: dict[str, Any]) -> str:
    def sp(values: list[float], fmt: str) -> str:
        return kb.spread(values, fmt) if values else "–"

    rows = []
    verdicts = []
    for res in results:
        label = "Apache Kafka" if res["broker"]["kind"] == "apache-kafka" else "Tansu"
        for n, s in res["summary"].items():
            met = s["ratio"] >= TARGET
            verdicts.append(
                f"{label} ×{config_label(n)}: {s['ratio']:.0%} ({'met' if met else '**missed**'})"
            )
            scaling = s.get("scaling")
            rows.append(
                f"| {label} | {config_label(n)} | {sp(s['rates']['passthrough'], '{:,.0f}')} | "
                f"{sp(s['rates']['streamer'], '{:,.0f}')} | **{s['ratio']:.0%}** "
                f"({min(s['pair_ratios']):.0%}–{max(s['pair_ratios']):.0%}) | "
                f"{sp(s['ready']['passthrough'], '{:.2f}')} / {sp(s['ready']['streamer'], '{:.2f}')} | "
                f"{sp(s['cpu']['passthrough'], '{:.1f}')} / {sp(s['cpu']['streamer'], '{:.1f}')} | "
                + (
                    f"{scaling['passthrough']:.2f}× / {scaling['streamer']:.2f}×"
                    if scaling
                    else "–"
                )
                + " |"
            )
    brokers = "; ".join(r["broker"]["label"] for r in results)
    machine = kb.machine_line(info | {"broker": {"label": brokers}})
    if "old_commit" not in info:  # the old commit runs only as the first version
        machine = machine.replace(f"; old = {kb.OLD_COMMIT}", "")
    s, n = info["studies"], info["instances"]
    return "\n".join(
        [
            "# Through a broker: streamer vs a raw aiokafka pass-through",
            "",
            machine,
            "",
            f"{n:,} instances in {s:,} studies of {info['per_study']} (≈{info['instance_bytes']:,.0f} B "
            f"of DICOM JSON each), each study followed by its end-of-study marker, all in the input "
            f"topic ({info['partitions']} partitions) before the processes start. Time = exec of the "
            "first process → the last output record (streamer: the last Bundle; pass-through: the "
            "last copied record) read by a consumer alongside; rate = instances / time. "
            "Pass-through = `bench/passthrough.py`: the same records copied with aiokafka, the "
            "streamer's consumer/producer settings and commit cadence. Streamer = `python -m "
            "streamer` with default settings (RocksDB store + changelog). Fresh group and topics "
            f"per run, sides alternating; {info['repeat']} runs each, median (min–max); ratio = "
            "streamer / pass-through medians (range of the per-run pairs). On Apache Kafka one "
            "untimed run per side comes first (a fresh JVM broker compiles its hot paths under "
            "its first load).",
            "",
            "| broker | processes | pass-through instances/s | streamer instances/s | "
            "streamer / pass-through | exec → ready, s (pass-through / streamer) | "
            "CPU s (pass-through / streamer) | scaling ×2 (pass-through / streamer) |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            *first_version_rows(results, info),
            "Ready = every partition of the process's latest assignment assigned (streamer: and "
            "restored), slowest process; – = a rebalance was still under way when the last record "
            "was read.",
            "",
            f"Target: streamer ≥ {TARGET:.0%} of the pass-through's rate. "
            + "; ".join(verdicts)
            + ".",
            "",
        ]
    )


async def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--broker", default="kafka,tansu", help="comma-separated: kafka, tansu")
    ap.add_argument("--studies", type=int, default=2000)
    ap.add_argument("--per-study", type=int, default=10)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--procs", default="1,2", help="process counts, comma-separated")
    ap.add_argument(
        "--no-all",
        action="store_true",
        help="skip the one-process STREAMER_PARTITION_ASSIGNMENT=all configuration",
    )
    ap.add_argument(
        "--no-old",
        action="store_true",
        help=f"skip the first version ({kb.OLD_COMMIT}) beside one process in a group",
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", type=Path, default=None, help="keep logs and state dirs here")
    ap.add_argument("--out", default="throughput", help="result name")
    args = ap.parse_args()
    args.configs = [(int(p), "group") for p in args.procs.split(",")]
    if not args.no_all:
        args.configs.append((1, ALL))
    kinds = [BROKERS[b.strip()] for b in args.broker.split(",")]
    started = time.perf_counter()
    studies = kb.Studies(per_study=args.per_study)
    info = kb.machine() | {
        "repeat": args.repeat,
        "partitions": args.partitions,
        "studies": args.studies,
        "per_study": args.per_study,
        "instances": args.studies * args.per_study,
        "instance_bytes": studies.instance_bytes,
        "target": TARGET,
    }
    results = []
    with contextlib.ExitStack() as stack:
        args.old_tree = None if args.no_old else stack.enter_context(kb.old_tree())
        if args.old_tree is not None:
            info["old_commit"] = kb.OLD_COMMIT
        for kind in kinds:
            res = await run_broker(kind, args, studies)
            res["summary"] = summary(res, args.configs)
            results.append(res)
    info["took_s"] = time.perf_counter() - started
    info["loadavg_end"] = list(os.getloadavg())
    text = table(results, info)
    kb.write_results(args.out, text, {"info": info, "results": results})
    labels, ratios = [], []
    for res in results:
        short = "Kafka" if res["broker"]["kind"] == "apache-kafka" else "Tansu"
        for n, s in res["summary"].items():
            labels.append(f"{short} ×{n.replace(' ', ', ')}")
            ratios.append(s["ratio"])
    bar_chart(
        args.out,
        "Streamer rate / raw aiokafka pass-through rate (exec → last output)",
        labels,
        {"streamer / pass-through": ratios},
        "ratio",
        target=TARGET,
        target_label=f"target {TARGET:.0%}",
    )
    print(text)


if __name__ == "__main__":
    kb.run(main)
