"""Startup benchmark: process start → ready, restore time, import time.

    .venv/bin/python bench/startup.py                      # Kafka and Tansu, 6 starts each
    .venv/bin/python bench/startup.py --repeat 10 --restore-size 0 --brokers tansu --modes all

1. **exec → ready** with an empty state: both brokers run side by side; per start a fresh set of
   topics (input with 3 partitions, output, DLQ, changelog; made beforehand as the other broker
   benches do), an empty STREAMER_STATE_DIR and one `python -m streamer` (this tree, default
   settings); starts alternate between the brokers (K, T, T, K, ...). Ready = every partition
   logged "partition ready" (what `_kafkabench.ready_partitions` reads); the log lines' time stamps
   split the time into exec → "starting" (imports, settings, topic check), → "partitions
   assigned" (state dir, consumer start, group join), → ready (restore of the empty stores).
   Target: < 1 s. Each broker twice: the default (`group`: the process joins the consumer group)
   and STREAMER_PARTITION_ASSIGNMENT=all (one process takes every partition, no group join).
   One extra start per broker with PYTHONPROFILEIMPORTTIME=1 (not timed) lists
   what the `run` command imports, costliest first.
2. **restore** with `--restore-size` (100,000) held instances, on Apache Kafka: `restore.one_size`
   (bench/restore.py: load, then warm and cold restarts, alternating; its code, not a copy).
3. **import time**: wall time of a fresh `python -c pass`, `python -c "import streamer"`,
   `python -m streamer --help` and `python -m streamer publish --help`, `--imports` (15) runs
   each, in rotating order; median (min–max). Plus `-X importtime`: the top costs of each.

Output: bench/results/startup.{md,json,png}.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _kafkabench as kb
import restore
from charts import bar_chart

PARTITIONS = 3
TARGET_S = 1.0
IMPORT_CASES: dict[str, list[str]] = {
    "python -c pass (interpreter only)": ["-c", "pass"],
    'python -c "import streamer"': ["-c", "import streamer"],
    "python -m streamer --help": ["-m", "streamer", "--help"],
    "python -m streamer publish --help": ["-m", "streamer", "publish", "--help"],
}
LABELS = {"apache-kafka": "Apache Kafka", "tansu": "Tansu"}
MODES = ("group", "all")  # STREAMER_PARTITION_ASSIGNMENT


def config_key(kind: str, mode: str) -> str:
    """The result key of a broker and an assignment mode ("tansu", "tansu:all")."""
    return kind if mode == "group" else f"{kind}:{mode}"


def config_label(key: str) -> str:
    kind, _, mode = key.partition(":")
    return LABELS[kind] + (", all partitions (no group)" if mode == "all" else "")


# ---- exec -> ready ---------------------------------------------------------------------------


async def one_start(
    broker: kb.Broker, work: Path, name: str, importtime: bool = False, mode: str = "group"
) -> dict[str, Any]:
    topics = kb.Topics.unique(f"startup-{broker.kind}")
    await kb.create_topics(broker, topics, PARTITIONS)
    state = work / f"state-{name}"
    env = kb.streamer_env(
        "new",
        broker,
        topics,
        state,
        topic_partitions=PARTITIONS,
        http_port=0,
        partition_assignment=mode,
    )
    if importtime:
        env["PYTHONPROFILEIMPORTTIME"] = "1"  # to stderr, i.e. into the log file
    proc = kb.Proc(name, env, kb.REPO, work / f"{name}.log").start()
    try:
        ready = await proc.wait_for(
            lambda p: (r := kb.ready_partitions(p)) and len(r) == PARTITIONS and r,
            "partition ready",
            limit=120,
        )
        code, stop_s = proc.terminate()
    finally:
        proc.close()
    at = {msg: proc.find(msg)[0]["t"] - proc.started for msg in ("starting", "partitions assigned")}
    out: dict[str, Any] = {
        "exec_to_ready_s": max(e["t"] for e in ready.values()) - proc.started,
        "exec_to_starting_s": at["starting"],
        "exec_to_assigned_s": at["partitions assigned"],
        "restore_s_max": max(e["restore_seconds"] for e in ready.values()),
        "exit_code": code,
        "stop_s": stop_s,
    }
    if importtime:
        text = proc.log_path.read_text(errors="replace")
        out["imports"] = top_imports(text)
        out["packages"] = top_packages(text)
    shutil.rmtree(state, ignore_errors=True)
    return out


async def bare_join(broker: kb.Broker) -> float:
    """A plain aiokafka consumer in a fresh group: start() → its first assignment, in seconds.

    The broker's share of the group join, without any of our code (the baseline of the
    "starting" → "partitions assigned" step).
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.abc import ConsumerRebalanceListener

    topics = kb.Topics.unique(f"bare-{broker.kind}")
    await kb.create_topics(broker, topics, PARTITIONS, changelog=False)
    assigned = asyncio.Event()

    class Listener(ConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked: object) -> None:
            pass

        async def on_partitions_assigned(self, new: object) -> None:
            assigned.set()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap, group_id=topics.group, enable_auto_commit=False
    )
    t = time.perf_counter()
    await consumer.start()
    consumer.subscribe([topics.input], listener=Listener())
    try:
        while not assigned.is_set():
            await consumer.getmany(timeout_ms=50)
        return time.perf_counter() - t
    finally:
        await consumer.stop()


async def startups(kinds: list[str], modes: list[str], repeat: int, work: Path) -> dict[str, Any]:
    brokers: dict[str, kb.Broker] = {}
    configs = [(kind, mode) for kind in kinds for mode in modes]
    out: dict[str, Any] = {config_key(k, m): {"runs": []} for k, m in configs}
    try:
        for kind in kinds:
            brokers[kind] = kb.start_broker(kind)
        for kind, mode in configs:
            out[config_key(kind, mode)]["broker"] = brokers[kind].info()
            out[config_key(kind, mode)]["mode"] = mode
        for kind in kinds:  # a first start per broker: warms the broker (group coordinator)
            key = config_key(kind, modes[0])
            out[key]["warmup"] = await one_start(brokers[kind], work, f"{kind}-warmup")
            out[key]["importtime"] = await one_start(
                brokers[kind], work, f"{kind}-importtime", importtime=True
            )
        for rep in range(repeat):
            for kind, mode in configs if rep % 2 == 0 else configs[::-1]:
                key = config_key(kind, mode)
                res = await one_start(brokers[kind], work, f"{kind}-{mode}-{rep}", mode=mode)
                if mode == "group":
                    res["bare_join_s"] = await bare_join(brokers[kind])
                out[key]["runs"].append(res)
                kb.log(
                    f"{key} start {rep + 1}: exec → ready {res['exec_to_ready_s']:.2f} s "
                    f"(starting {res['exec_to_starting_s']:.2f}, assigned "
                    f"{res['exec_to_assigned_s']:.2f})"
                )
    finally:
        for b in brokers.values():
            b.stop()
    return out


# ---- imports ---------------------------------------------------------------------------------


def _importtime_rows(text: str) -> list[tuple[int, str, int]]:
    """(indent, module, cumulative µs) per line of -X importtime output in `text`."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line[len("import time:") :].split("|")
        raw = parts[2]
        rows.append((len(raw) - len(raw.lstrip()), raw.strip(), int(parts[1])))
    return rows


def top_imports(text: str, n: int = 10) -> list[dict[str, Any]]:
    """The `n` costliest top-level imports (cumulative) of -X importtime output in `text`."""
    rows = _importtime_rows(text)
    if not rows:
        return []
    top = min(r[0] for r in rows)
    firsts = sorted((r for r in rows if r[0] == top), key=lambda r: -r[2])
    return [{"module": r[1], "cumulative_ms": r[2] / 1000} for r in firsts[:n]]


def top_packages(text: str, n: int = 8) -> list[dict[str, Any]]:
    """The `n` costliest packages by the cumulative time of their first import (nested or not)."""
    rows = _importtime_rows(text)
    first: dict[str, int] = {}
    for _, name, cumulative in rows:
        root = name.split(".")[0]
        if name == root and root not in {"streamer", "site", "encodings"}:
            first.setdefault(root, cumulative)
    ranked = sorted(first.items(), key=lambda kv: -kv[1])[:n]
    return [{"module": k, "cumulative_ms": v / 1000} for k, v in ranked]


def import_times(runs: int) -> dict[str, Any]:
    cases = list(IMPORT_CASES)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMER_", "PYTHON"))}
    out: dict[str, Any] = {c: {"wall_s": []} for c in cases}
    for i in range(runs):
        order = cases[i % len(cases) :] + cases[: i % len(cases)]
        for case in order if i % 2 == 0 else order[::-1]:
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, *IMPORT_CASES[case]],
                cwd=kb.REPO,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            out[case]["wall_s"].append(time.perf_counter() - t)
    for case in cases:
        probe = (
            "import runpy, sys, io, contextlib; sys.argv = ['streamer', *sys.argv[1:]]\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    runpy.run_module('streamer', run_name='__main__')\n"
            "print(len(sys.modules), *sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'aiokafka', 'fhir', 'pydicom', 'pydantic', 'rocksdict', 'prometheus_client'} "
            "and '.' not in m))"
            if IMPORT_CASES[case][0] == "-m"
            else IMPORT_CASES[case][1] + "\nimport sys; print(len(sys.modules))"
        )
        argv = IMPORT_CASES[case][2:] if IMPORT_CASES[case][0] == "-m" else []
        done = subprocess.run(
            [sys.executable, "-c", probe, *argv],
            cwd=kb.REPO,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        words = done.stdout.split()
        out[case]["modules"] = int(words[0])
        out[case]["heavy"] = words[1:]
        trace = subprocess.run(
            [sys.executable, "-X", "importtime", *IMPORT_CASES[case]],
            cwd=kb.REPO,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        out[case]["imports"] = top_imports(trace.stderr)
        out[case]["packages"] = top_packages(trace.stderr)
    return out


# ---- restore (bench/restore.py) ----------------------------------------------------------------


async def restore_run(n: int, repeat: int, work: Path) -> dict[str, Any]:
    broker = kb.start_broker("apache-kafka")
    try:
        out = await restore.one_size(broker, kb.Studies(), n, repeat, None, work)
    finally:
        broker.stop()
    out["broker"] = broker.info()
    return out


# ---- results -----------------------------------------------------------------------------------


def ms(values: list[float]) -> str:
    return kb.spread([v * 1000 for v in values], "{:,.0f}") + " ms"


def table(res: dict[str, Any], info: dict[str, Any]) -> str:
    kinds = list(res["startup"])
    runs = {k: res["startup"][k]["runs"] for k in kinds}

    def col(get: Any) -> list[str]:
        cells = []
        for k in kinds:
            values = [v for r in runs[k] if (v := get(r)) is not None]
            cells.append(ms(values) if values else "–")
        return cells

    rows = [
        (
            "**exec → ready** (every partition ready)",
            [f"**{c}**" for c in col(lambda r: r["exec_to_ready_s"])],
        ),
        (
            'exec → "starting" (imports, settings, topic check)',
            col(lambda r: r["exec_to_starting_s"]),
        ),
        (
            '"starting" → "partitions assigned" (state, consumer, group join if any)',
            col(lambda r: r["exec_to_assigned_s"] - r["exec_to_starting_s"]),
        ),
        (
            '"partitions assigned" → ready (restore of the empty stores)',
            col(lambda r: r["exec_to_ready_s"] - r["exec_to_assigned_s"]),
        ),
        (
            "baseline: a bare aiokafka consumer, start() → assigned (fresh group)",
            col(lambda r: r.get("bare_join_s")),
        ),
        ("SIGTERM → exit", col(lambda r: r["stop_s"])),
    ]
    verdicts = []
    for k in kinds:
        mid = kb.median([r["exec_to_ready_s"] for r in runs[k]])
        verdicts.append(
            f"{config_label(k)}: {mid * 1000:,.0f} ms, target < {TARGET_S * 1000:,.0f} ms "
            + ("**met**" if mid < TARGET_S else "**missed**")
        )
    lines = [
        "# Startup benchmark",
        "",
        kb.machine_line(info),
        "",
        f"Empty state, fresh topics ({PARTITIONS} input partitions), default settings; "
        f"{info['repeat']} starts per column, in rotating order (the brokers run side by side), "
        "after one untimed start per broker; median (min–max). Times from exec of "
        "`python -m streamer` to the time stamps of its log lines. Columns: the default "
        "(`STREAMER_PARTITION_ASSIGNMENT=group`, the process joins the consumer group) and "
        "`all` (one process takes every partition without a group join; README "
        '"One process, no group join").',
        "",
        "| exec → | " + " | ".join(config_label(k) for k in kinds) + " |",
        "|---|" + "---|" * len(kinds),
        *(f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows),
        "",
        "Startup: " + "; ".join(verdicts) + ".",
        "",
    ]
    if res.get("restore"):
        r = res["restore"]
        n = r["instances"]
        lines += [
            f"Restore with {n:,} held instances (Apache Kafka, `restore.one_size` of "
            f"bench/restore.py, {len(r['warm'])} warm and {len(r['cold'])} cold restarts "
            "alternating):",
            "",
            "| restart | exec → ready | restore (max of partitions) | changelog records read |",
            "|---|---|---|---|",
        ]
        for kind, label in (("warm", "warm (same state dir)"), ("cold", "cold (empty state dir)")):
            rr = r[kind]
            lines.append(
                f"| {label} | {ms([x['start_to_ready_s'] for x in rr])} | "
                f"{ms([x['restore_s_max'] for x in rr])} | "
                f"{kb.spread([x['changelog_records'] for x in rr], '{:,.0f}')} |"
            )
        lines.append("")
    imp = res["imports"]
    lines += [
        f"Import time: wall time of a fresh process, {info['import_runs']} runs each in rotating "
        "order; median (min–max).",
        "",
        "| command | wall time | modules loaded | heavy packages loaded |",
        "|---|---|---|---|",
        *(
            f"| `{case}` | {ms(v['wall_s'])} | {v['modules']:,} | "
            f"{', '.join(v['heavy']) if v['heavy'] else '–'} |"
            for case, v in imp.items()
        ),
        "",
        "Top imports (`-X importtime`, cumulative):",
        "",
    ]
    for case, v in imp.items():
        if v["imports"] and "pass" not in case:
            lines.append(
                f"- `{case}`: "
                + ", ".join(f"{i['module']} {i['cumulative_ms']:,.1f} ms" for i in v["imports"][:5])
                + (
                    "; packages: "
                    + ", ".join(
                        f"{i['module']} {i['cumulative_ms']:,.0f} ms" for i in v["packages"][:6]
                    )
                    if v["packages"]
                    else ""
                )
            )
    for k in kinds:
        run = res["startup"][k].get("importtime") or {}
        if run.get("imports"):
            lines.append(
                f"- `python -m streamer` (run, on {config_label(k)}, one start with "
                "PYTHONPROFILEIMPORTTIME=1, untimed): "
                + ", ".join(
                    f"{i['module']} {i['cumulative_ms']:,.0f} ms" for i in run["imports"][:4]
                )
                + "; packages: "
                + ", ".join(f"{i['module']} {i['cumulative_ms']:,.0f} ms" for i in run["packages"])
            )
            break
    lines.append("")
    return "\n".join(lines)


def chart(name: str, res: dict[str, Any]) -> None:
    labels, values = [], []
    for k, v in res["startup"].items():
        labels.append(f"ready, {config_label(k)}")
        values.append(kb.median([r["exec_to_ready_s"] for r in v["runs"]]))
    if res.get("restore"):
        n = res["restore"]["instances"]
        for kind in ("warm", "cold"):
            labels.append(f"{kind}, {n // 1000}k held")
            values.append(kb.median([x["start_to_ready_s"] for x in res["restore"][kind]]))
    for case, short in (
        ('python -c "import streamer"', "import streamer"),
        ("python -m streamer --help", "--help"),
    ):
        labels.append(short)
        values.append(kb.median(res["imports"][case]["wall_s"]))
    bar_chart(
        name,
        "streamer: exec → ready, restart, import (median)",
        labels,
        {"seconds": values},
        "seconds",
        target=TARGET_S,
        target_label="startup target < 1 s",
    )


async def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeat", type=int, default=6, help="timed starts per broker")
    ap.add_argument("--brokers", default="apache-kafka,tansu")
    ap.add_argument("--modes", default=",".join(MODES), help="STREAMER_PARTITION_ASSIGNMENT values")
    ap.add_argument("--restore-size", type=int, default=100_000, help="held instances (0: skip)")
    ap.add_argument("--restore-repeat", type=int, default=3)
    ap.add_argument("--imports", type=int, default=15, help="runs per import case")
    ap.add_argument("--keep", type=Path, default=None, help="keep logs and state dirs here")
    ap.add_argument("--out", default="startup", help="result name")
    args = ap.parse_args()
    kinds = args.brokers.split(",")
    for k in kinds:
        if k not in LABELS:
            raise SystemExit(f"unknown broker {k!r} (apache-kafka, tansu)")
    modes = args.modes.split(",")
    if not modes or set(modes) - set(MODES):
        raise SystemExit(f"--modes: a list of {', '.join(MODES)}")
    started = time.perf_counter()
    info = kb.machine() | {
        "repeat": args.repeat,
        "import_runs": args.imports,
        "partitions": PARTITIONS,
    }
    res: dict[str, Any] = {}
    with kb.workdir(args.keep, "bench-startup-") as tmp:
        work = Path(tmp)
        kb.log("import times")
        res["imports"] = import_times(args.imports)
        res["startup"] = await startups(kinds, modes, args.repeat, work)
        info["broker"] = {
            "label": " and ".join(
                res["startup"][config_key(k, modes[0])]["broker"]["label"] for k in kinds
            )
        }
        if args.restore_size:
            res["restore"] = await restore_run(args.restore_size, args.restore_repeat, work)
    info["took_s"] = time.perf_counter() - started
    info["loadavg_end"] = list(os.getloadavg())
    text = table(res, info)
    kb.write_results(args.out, text, {"info": info, **res})
    chart(args.out, res)
    print(text)


if __name__ == "__main__":
    kb.run(main)
