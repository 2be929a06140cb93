"""Restore benchmark: how long a restarted streamer takes until its partitions are processed again.

    .venv/bin/python bench/restore.py                      # 10,000 and 100,000 held instances
    .venv/bin/python bench/restore.py --sizes 10000 --repeat 1 --broker tansu

Per size N: N open instances (studies of 5, no markers, study timeout one day) go into a fresh input
topic of 3 partitions; one streamer process (this tree) consumes them until the group's commit
reaches the end of every partition (so every instance is in the store and in the changelog), then
gets SIGTERM. Then, alternately, `--repeat` times each:

* warm: a new process on the same state dir (catch-up from the changelog only);
* cold: a new process on an empty state dir (full rebuild from the changelog).

Measured per restart: process start (exec) -> the last "partition ready" log line (time stamps of the
log lines), the largest `restore_seconds` of the three partitions (assignment -> ready), and the
changelog records read (`changelog_records`, summed). Also disk: the state dir after the load and
after a rebuild, and the changelog topic's log files on the broker, per open instance.

For comparison (`--old`, on by default): the old design (1aff090, in-memory state) has nothing to
restore from but the input topic; its committed offset never passes the first held study, so a
restart re-reads all N instances. Measured as process start -> the Bundles of one probe study per
partition, sent after the N instances, are published.

Output: bench/results/restore.{md,json}.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

import _kafkabench as kb

PARTITIONS = 3
TIMEOUT_S = 86_400  # studies stay open for the whole run


async def restart(
    broker: kb.Broker, topics: kb.Topics, state_dir: Path, logs: Path, name: str
) -> dict[str, Any]:
    """Start a process, wait until every partition is ready, SIGTERM it; the figures."""
    env = kb.streamer_env(
        "new",
        broker,
        topics,
        state_dir,
        study_timeout_seconds=TIMEOUT_S,
        topic_partitions=PARTITIONS,
    )
    proc = kb.Proc(name, env, kb.REPO, logs / f"{name}.log").start()
    try:
        ready = await proc.wait_for(
            lambda p: (r := kb.ready_partitions(p)) and len(r) == PARTITIONS and r,
            "partition ready",
            limit=600,
        )
        assigned = proc.find("partitions assigned")[0]
        code, stop_s = proc.terminate()
    finally:
        proc.close()
    return {
        "start_to_ready_s": max(e["t"] for e in ready.values()) - proc.started,
        "start_to_assigned_s": assigned["t"] - proc.started,
        "restore_s_max": max(e["restore_seconds"] for e in ready.values()),
        "changelog_records": sum(e["changelog_records"] for e in ready.values()),
        "rebuilt": sorted(p for p, e in ready.items() if e["rebuilt"]),
        "open_studies": sum(e["open_studies"] for e in ready.values()),
        "state_dir_bytes": kb.dir_bytes(state_dir),
        "state_dir_files": kb.rocks_breakdown(state_dir),
        "exit_code": code,
        "stop_s": stop_s,
    }


async def old_replay(
    broker: kb.Broker, tree: Path, topics: kb.Topics, probes: list[str], logs: Path, name: str
) -> dict[str, Any]:
    """The old code from scratch on the loaded topic: start -> every probe Bundle published."""
    env = kb.streamer_env(
        "old", broker, topics, study_timeout_seconds=TIMEOUT_S, topic_partitions=PARTITIONS
    )
    async with kb.Watcher(broker, topics.output) as out:
        proc = kb.Proc(name, env, tree, logs / f"{name}.log").start()
        try:
            await out.wait_keys(probes, limit=600, procs=[proc], what="probe Bundles")
            last = max(out.keys[k][0].timestamp_ms for k in probes) / 1000
            rss = proc.status_kib()
            code, _ = proc.terminate()
        finally:
            proc.close()
    done = await kb.committed(broker, topics.group, topics.input)
    return {
        "start_to_replayed_s": last - proc.started,
        "rss_kib": rss,
        "committed_after": done,
        "exit_code": code,
    }


async def one_size(
    broker: kb.Broker,
    studies: kb.Studies,
    n: int,
    repeat: int,
    tree: Path | None,
    work: Path,
) -> dict[str, Any]:
    topics = kb.Topics.unique(f"restore-{n}")
    logs = work / f"logs-{n}"
    logs.mkdir()
    await kb.create_topics(broker, topics, PARTITIONS)
    t = time.perf_counter()
    sent = await kb.produce(broker, topics.input, studies.records(0, n // kb.PER_STUDY, False))
    kb.log(f"N={n:,}: {sent:,} instances sent in {time.perf_counter() - t:.1f} s")

    state = work / f"state-{n}"
    env = kb.streamer_env(
        "new", broker, topics, state, study_timeout_seconds=TIMEOUT_S, topic_partitions=PARTITIONS
    )
    loader = kb.Proc("load", env, kb.REPO, logs / "load.log").start()
    try:
        await loader.wait_for(
            lambda p: len(kb.ready_partitions(p)) == PARTITIONS, "partition ready", 120
        )
        await kb.wait_committed(broker, topics.group, topics.input, limit=600, proc=loader)
        load_s = time.time() - loader.started
        code, stop_s = loader.terminate()
    finally:
        loader.close()
    kb.log(f"N={n:,}: loaded and committed {load_s:.1f} s after start; SIGTERM exit {code}")
    changelog_ends = await kb.end_offsets(broker, topics.changelog)
    load = {
        "start_to_committed_s": load_s,
        "exit_code": code,
        "stop_s": stop_s,
        "state_dir_bytes": kb.dir_bytes(state),
        "state_dir_files": kb.rocks_breakdown(state),
        "changelog_records": sum(changelog_ends.values()),
        "changelog_topic_bytes": broker.topic_bytes(topics.changelog),
        "input_topic_bytes": broker.topic_bytes(topics.input),
    }

    warm: list[dict[str, Any]] = []
    cold: list[dict[str, Any]] = []
    for rep in range(repeat):
        for kind in ("warm", "cold") if rep % 2 == 0 else ("cold", "warm"):
            if kind == "warm":
                warm.append(await restart(broker, topics, state, logs, f"warm-{rep}"))
                res = warm[-1]
            else:
                empty = work / f"cold-{n}-{rep}"
                cold.append(await restart(broker, topics, empty, logs, f"cold-{rep}"))
                shutil.rmtree(empty)
                res = cold[-1]
            kb.log(
                f"N={n:,} {kind} {rep + 1}: start->ready {res['start_to_ready_s']:.2f} s, "
                f"restore max {res['restore_s_max']:.2f} s, "
                f"{res['changelog_records']:,} changelog records"
            )

    old: list[dict[str, Any]] = []
    if tree is not None:
        probes = kb.probe_records(PARTITIONS, studies)
        await kb.produce(broker, topics.input, probes)
        keys = sorted({k.decode() for k, _, _ in probes})
        for rep in range(repeat):
            old_topics = kb.Topics.unique(f"restore-old-{n}", input_topic=topics.input)
            await kb.create_topics(broker, old_topics, PARTITIONS, changelog=False)
            old.append(await old_replay(broker, tree, old_topics, keys, logs, f"old-{rep}"))
            kb.log(f"N={n:,} old {rep + 1}: start->replayed {old[-1]['start_to_replayed_s']:.2f} s")
    shutil.rmtree(state)
    return {
        "instances": n,
        "topics": topics.__dict__,
        "load": load,
        "warm": warm,
        "cold": cold,
        "old": old,
    }


def table(results: list[dict[str, Any]], info: dict[str, Any]) -> str:
    def col(runs: list[dict[str, Any]], key: str, fmt: str = "{:.2f}") -> str:
        return kb.spread([r[key] for r in runs], fmt) if runs else "–"

    lines = [
        f"# Restore benchmark ({info['broker']['kind']})",
        "",
        kb.machine_line(info),
        "",
        f"Workload: N open instances (studies of {kb.PER_STUDY}, ≈{info['instance_bytes']:,.0f} B "
        f"of DICOM JSON each, no markers, study timeout {TIMEOUT_S:,} s) in an input topic of "
        f"{PARTITIONS} partitions, consumed and committed by one process (new code), which then "
        f"gets SIGTERM. Then {info['repeat']} warm restarts (same state dir) and {info['repeat']} "
        "cold ones (empty state dir), alternating; median (min–max). "
        '**start → ready**: exec of `python -m streamer` to the last of the three "partition '
        'ready" log lines (Python start, topic check, group join and restore). **restore**: the '
        "largest `restore_seconds` of the three partitions (assignment → ready). The old design "
        f"({kb.OLD_COMMIT}) row: start → the Bundles of a probe study per partition, sent after "
        "the N instances, are out (it re-reads all N instances from the input topic).",
        "",
        "| N open instances | restart | start → ready, s | restore (max of partitions), s "
        "| changelog records read |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        n = r["instances"]
        for kind, label in (("warm", "warm (same state dir)"), ("cold", "cold (empty state dir)")):
            runs = r[kind]
            lines.append(
                f"| {n:,} | {label} | {col(runs, 'start_to_ready_s')} | "
                f"{col(runs, 'restore_s_max')} | {col(runs, 'changelog_records', '{:,.0f}')} |"
            )
        if r["old"]:
            lines.append(
                f"| {n:,} | old design: replay of the input | "
                f"{col(r['old'], 'start_to_replayed_s')} | – | – ({n:,} input records) |"
            )
    lines += [
        "",
        "Disk (after the load and SIGTERM; the rebuilt one after a cold restart):",
        "",
        "| N open instances | state dir | per open instance | state dir after a rebuild "
        "| per open instance | changelog records | changelog topic on the broker | per open "
        "instance | input topic on the broker (lz4) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        n, load = r["instances"], r["load"]
        rebuilt = kb.median([c["state_dir_bytes"] for c in r["cold"]]) if r["cold"] else 0
        ctb = load["changelog_topic_bytes"]
        itb = load["input_topic_bytes"]
        lines.append(
            f"| {n:,} | {load['state_dir_bytes'] / 2**20:,.1f} MiB | "
            f"{load['state_dir_bytes'] / n:,.0f} B | {rebuilt / 2**20:,.1f} MiB | "
            f"{rebuilt / n:,.0f} B | {load['changelog_records']:,} | "
            + (f"{ctb / 2**20:,.1f} MiB | {ctb / n:,.0f} B | " if ctb is not None else "– | – | ")
            + (f"{itb / 2**20:,.1f} MiB |" if itb is not None else "– |")
        )
    for r in results:
        again = [w for w in r["warm"] if w["rebuilt"]]
        if again:
            lines.append(
                f"\n**{len(again)} of {len(r['warm'])} warm restarts at N={r['instances']:,} "
                "rebuilt their stores anyway** (partitions "
                + ", ".join(str(w["rebuilt"]) for w in again)
                + '; the reason is in the "rebuilding partition store" log line, `--keep DIR` '
                "keeps the logs)."
            )
    for r in results:
        parts = r["load"]["state_dir_files"]
        after = r["cold"][0]["state_dir_files"] if r["cold"] else None
        lines.append(
            f"\nState dir by file kind, N={r['instances']:,}: after the load "
            + ", ".join(f"{k} {v / 2**20:,.1f} MiB" for k, v in parts.items())
            + (
                "; after a rebuild "
                + ", ".join(f"{k} {v / 2**20:,.1f} MiB" for k, v in after.items())
                if after
                else ""
            )
            + "."
        )
    lines += [
        "",
        "Load (first process, from exec until the commit reached the end of the input): "
        + ", ".join(
            f"N={r['instances']:,}: {r['load']['start_to_committed_s']:.1f} s" for r in results
        )
        + ". Changelog records = one per instance, one study record per study, and the study "
        "record again for each study whose instances straddled two checkpoints; the topic is "
        "not compacted yet (active segments), so its size is the uncompacted one, and its "
        "compression (zstd) and the input's (lz4) profit from the repetitive synthetic data "
        "(500 template studies).",
        "",
    ]
    return "\n".join(lines)


async def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="10000,100000", help="open instances, comma-separated")
    ap.add_argument("--repeat", type=int, default=3, help="warm and cold restarts per size")
    ap.add_argument("--broker", default="apache-kafka", choices=("apache-kafka", "tansu"))
    ap.add_argument("--no-old", dest="old", action="store_false", help="skip the old design")
    ap.add_argument("--keep", type=Path, default=None, help="keep logs and state dirs here")
    ap.add_argument("--out", default=None, help="result name (default restore, restore-tansu)")
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    name = args.out or ("restore" if args.broker == "apache-kafka" else f"restore-{args.broker}")
    started = time.perf_counter()
    info = kb.machine() | {"repeat": args.repeat, "partitions": PARTITIONS}
    studies = kb.Studies()
    info["instance_bytes"] = studies.instance_bytes
    broker = kb.start_broker(args.broker)
    info["broker"] = broker.info()
    results = []
    try:
        with (
            kb.workdir(args.keep, "bench-restore-") as tmp,
            kb.old_tree() if args.old else contextlib.nullcontext() as tree,
        ):
            for n in sizes:
                results.append(await one_size(broker, studies, n, args.repeat, tree, Path(tmp)))
    finally:
        broker.stop()
    info["took_s"] = time.perf_counter() - started
    info["loadavg_end"] = list(os.getloadavg())
    text = table(results, info)
    kb.write_results(name, text, {"info": info, "results": results})
    print(text)


if __name__ == "__main__":
    kb.run(main)
