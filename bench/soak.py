"""Soak benchmark: the stream processor's resident memory over a million instances.

    .venv/bin/python bench/soak.py                         # 1,000,000 instances on Apache Kafka
    .venv/bin/python bench/soak.py --instances 200000 --broker tansu
    .venv/bin/python bench/soak.py --instances 300000 --tracemalloc   # what grows (slow)

One input topic of 3 partitions, one `python -m streamer` process (this tree, RocksDB store +
changelog, default settings; through `bench/_rss_probe.py`). While it runs, this script produces
the studies (5 instances each, then the end-of-study marker), generated on the fly by
`_kafkabench.Studies`, one producer, as fast as it goes (`--pace N`: N instances/s). Every
`--interval` seconds: the process's VmRSS (/proc/<pid>/status), its CPU time, and from its /metrics
the instances accepted and the Bundles published. Once every Bundle is out and the commit reached
the end of the input, 3 s idle: the final RSS (median of 5 readings) and, through the probe,
glibc's heap and the RSS after malloc_trim(0).

The criterion: RSS is **flat** when the end RSS is at most max(20 MiB, 10 % of the start) above
the start RSS **and** RSS does not trend upwards over the second half of the run (least-squares
slope over instances processed at most +2 MiB per 100,000). Start and end are both taken while
instances flow, so they compare like with like: start = the median of the samples in the second
tenth of the run (100,000-200,000 of a million: after the warm-up, in which imports finish and
the RocksDB budget, the validation caches and the study-record cache fill; measured: the RocksDB
budget is full by about 70,000 instances, RSS levels off by about 200,000), end = the median of
the samples of the last tenth. (RSS falls once the input stops: fetch buffers, records and
Bundles in flight, so an idle end sample would flatter the result; it is reported too.) Also
reported: the early window (50,000-100,000, inside the warm-up; it was the start window before
2026-12-07), the largest sample, and RocksDB's budget in use (from /metrics) at start and end.

`--tracemalloc` runs the process with tracemalloc on (diagnosis only: the figures of such a run
are not comparable) and writes the 15 largest growths between a snapshot at the start and one at
the end (both in flight, as the RSS figures), with glibc's heap and RocksDB's block cache and
memtable bytes at both points. Output: bench/results/soak.{md,json,png} (`--out` for another name).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import time
import tracemalloc
import urllib.request
from pathlib import Path
from typing import Any

import _kafkabench as kb
from memory import sample

PARTITIONS = 3
WARMUP = 50_000  # the early window: 50,000-100,000 instances (warm-up not over, reported)
START_FRACTION = (0.10, 0.20)  # the start window, after warm-up: the second tenth of the run
END_FRACTION = 0.10  # the end window: the last tenth
SLOPE_MAX = 2.0  # MiB per 100,000 instances over the second half (10 MiB per half million)
FLAT_ABS_MIB = 20.0  # flat: end - start <= max(FLAT_ABS_MIB, FLAT_REL * start)
FLAT_REL = 0.10
SETTLE_S = 3.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    """The process's /metrics, summed over labels: {name: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=20) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        out[name] = out.get(name, 0.0) + float(value)
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def feed(
    broker: kb.Broker, topic: str, studies: kb.Studies, n_studies: int, pace: float, sent: list[int]
) -> None:
    """Every study then its marker, made on the fly; `sent[0]` counts instances acknowledged."""
    producer = kb.bulk_producer(broker)
    await producer.start()
    started = time.monotonic()
    chunk = 200  # studies between acks (and pacing checks)
    try:
        for at in range(0, n_studies, chunk):
            n = min(chunk, n_studies - at)
            pending = [
                await producer.send(topic, value=value, key=key)
                for key, value, _ in studies.records(at, n, True)
            ]
            await asyncio.gather(*pending)
            sent[0] += n * kb.PER_STUDY
            if pace:
                wait = started + sent[0] / pace - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
    finally:
        await producer.stop()


def _exists(path: Path) -> bool:
    return path.exists()  # a stat every 0.2 s: no need for a thread


async def wait_file(path: Path, proc: kb.Proc, limit: float = 300.0) -> Path:
    deadline = time.monotonic() + limit
    while not _exists(path):
        if not proc.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"no {path.name} from the probe:\n{proc.tail()}")
        await asyncio.sleep(0.2)
    return path


def growth_report(first: Path, last: Path) -> dict[str, list[str]]:
    """The 15 largest growths from snapshot `first` to `last`, by line and by traceback."""
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    a = tracemalloc.Snapshot.load(str(first)).filter_traces(filters)
    b = tracemalloc.Snapshot.load(str(last)).filter_traces(filters)
    out: dict[str, list[str]] = {"lineno": [str(s) for s in b.compare_to(a, "lineno")[:15]]}
    out["traceback"] = [
        f"{s.size_diff / 2**20:+.1f} MiB, {s.count_diff:+,} blocks:\n    "
        + "\n    ".join(s.traceback.format()[-12:])
        for s in b.compare_to(a, "traceback")[:5]
    ]
    return out


async def soak(
    broker: kb.Broker, studies: kb.Studies, args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    n_studies = args.instances // kb.PER_STUDY
    topics = kb.Topics.unique("soak")
    await kb.create_topics(broker, topics, PARTITIONS)
    port = free_port()
    settings: dict[str, object] = {"topic_partitions": PARTITIONS, "http_port": port}
    settings.update(dict(kv.split("=", 1) for kv in args.set))
    env = kb.streamer_env("new", broker, topics, work / "state", **settings)
    probe_out = work / "soak.mallinfo"
    env["BENCH_MALLINFO_OUT"] = str(probe_out)
    snaps = work / "snapshots"
    if args.tracemalloc:
        snaps.mkdir()
        env["BENCH_TRACEMALLOC_DIR"] = str(snaps)
    proc = kb.Proc(
        "soak", env, kb.REPO, work / "soak.log", cmd=(str(kb.BENCH / "_rss_probe.py"),)
    ).start()
    samples: list[dict[str, Any]] = []
    out: dict[str, Any] = {"settings": settings, "instances": n_studies * kb.PER_STUDY}
    try:
        await proc.wait_for(lambda p: len(kb.ready_partitions(p)) == PARTITIONS, "partition ready")
        out["idle_rss_kib"] = proc.status_kib()
        sent = [0]
        t0 = time.monotonic()
        producer = asyncio.create_task(
            feed(broker, topics.input, studies, n_studies, args.pace, sent)
        )
        snapped = 0
        last_metrics: dict[str, float] = {}
        end_from = out["instances"] - WARMUP  # tracemalloc snapshots: early and last 50,000
        while True:
            try:
                metrics = await asyncio.to_thread(scrape, port)
            except OSError as exc:  # a busy loop answers late (tracemalloc): keep the last counts
                kb.log(f"/metrics: {exc!r}; keeping the last figures")
                metrics = last_metrics
            last_metrics = metrics
            s = {
                "t": time.monotonic() - t0,
                "rss_kib": proc.status_kib(),
                "cpu_s": cpu_seconds(proc.pid),
                "sent": sent[0],
                "instances": int(metrics.get("streamer_instances_accepted_total", 0)),
                "bundles": int(metrics.get("streamer_bundles_published_total", 0)),
                "open_studies": int(metrics.get("streamer_open_studies", 0)),
                # RocksDB's capped budget (block cache + memtables), summed over its parts
                "rocks_bytes": int(metrics.get("streamer_state_memory_bytes", 0)),
            }
            samples.append(s)
            if len(samples) % 10 == 0:
                kb.log(
                    f"{s['instances']:,} instances processed, {s['sent']:,} sent, "
                    f"RSS {s['rss_kib'] / 1024:.1f} MiB"
                )
            if args.tracemalloc and snapped < 2 and s["instances"] >= (WARMUP, end_from)[snapped]:
                os.kill(proc.pid, signal.SIGUSR1)
                snapped += 1
                # Diagnosis only: heap and RocksDB usage there (this trims the heap).
                out[("start_probe", "end_probe")[snapped - 1]] = await sample(proc, probe_out)
            if producer.done():
                producer.result()  # a failed producer stops the run
            if s["bundles"] >= n_studies:
                break
            if not proc.alive():
                raise RuntimeError(f"the streamer exited:\n{proc.tail()}")
            if s["t"] > args.limit:
                raise RuntimeError(f"not done after {args.limit:.0f} s: {s}")
            await asyncio.sleep(args.interval)
        out["run_s"] = samples[-1]["t"]
        out["sent_done_s"] = next((x["t"] for x in samples if x["sent"] >= out["instances"]), None)
        await producer
        await kb.wait_committed(broker, topics.group, topics.input, 300, proc)
        await asyncio.sleep(SETTLE_S)
        out["final"] = await sample(proc, probe_out)
        out["final"]["cpu_s"] = cpu_seconds(proc.pid)
        out["state_dir_bytes"] = kb.dir_bytes(work / "state")
        if args.tracemalloc:
            await wait_file(snaps / "1.snap", proc)
            last = await wait_file(snaps / "2.snap", proc)
            out["tracemalloc"] = growth_report(snaps / "1.snap", last)
        out["exit_code"], _ = proc.terminate()
        out["stopped"] = (proc.find("stopped") or [{}])[-1].get("stats")
    finally:
        proc.close()
    out["samples"] = samples
    return out


def analyse(res: dict[str, Any]) -> dict[str, Any]:
    samples = res["samples"]
    n = res["instances"]
    # In flight only: between the first instance processed and the last Bundle.
    flowing = [s for s in samples if s["instances"] > 0 and s["bundles"] < n // kb.PER_STUDY]
    lo, hi = (int(f * n) for f in START_FRACTION)
    end_from = n - int(END_FRACTION * n)
    early = [s["rss_kib"] / 1024 for s in flowing if WARMUP <= s["instances"] < 2 * WARMUP]
    first = [s["rss_kib"] / 1024 for s in flowing if lo <= s["instances"] < hi]
    last = [s["rss_kib"] / 1024 for s in flowing if s["instances"] >= end_from]
    half = [s for s in flowing if s["instances"] >= n / 2]
    xs = [s["instances"] / 100_000 for s in half]
    ys = [s["rss_kib"] / 1024 for s in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    start_mib, end_mib = kb.median(first), kb.median(last)

    def rocks(window: list[dict[str, Any]]) -> float | None:
        known = [s["rocks_bytes"] / 2**20 for s in window if s.get("rocks_bytes")]
        return kb.median(known) if known else None

    rocks_start = rocks([s for s in flowing if lo <= s["instances"] < hi])
    rocks_end = rocks([s for s in flowing if s["instances"] >= end_from])
    tolerance = max(FLAT_ABS_MIB, FLAT_REL * start_mib)
    busy = samples[-1]["cpu_s"] - samples[0]["cpu_s"]
    return {
        "early_mib": kb.median(early) if early else None,
        "early_samples": len(early),
        "start_window": [lo, hi],
        "end_window": [end_from, n],
        "start_mib": start_mib,
        "start_samples": len(first),
        "end_mib": end_mib,
        "end_samples": len(last),
        "idle_end_mib": res["final"]["rss_kib"] / 1024,
        "idle_end_trimmed_mib": res["final"]["trimmed_rss_kib"] / 1024,
        "max_mib": max(s["rss_kib"] for s in samples) / 1024,
        "hwm_mib": res["final"]["hwm_kib"] / 1024,
        "slope_mib_per_100k": slope,
        "growth_mib": end_mib - start_mib,
        "rocks_start_mib": rocks_start,
        "rocks_end_mib": rocks_end,
        "tolerance_mib": tolerance,
        "slope_max": SLOPE_MAX,
        "flat": end_mib - start_mib <= tolerance and slope <= SLOPE_MAX,
        "rate": n / res["run_s"],
        "cpu_per_instance_us": busy / n * 1e6,
    }


def chart(name: str, res: dict[str, Any], a: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = res["samples"]
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=80)
    ax.plot(
        [s["instances"] / 1000 for s in samples],
        [s["rss_kib"] / 1024 for s in samples],
        label="VmRSS",
        linewidth=1,
    )
    ax.axhline(a["start_mib"], color="gray", linestyle=":", linewidth=1, label="start (median)")
    ax.axhline(a["end_mib"], color="tab:orange", linestyle=":", linewidth=1, label="end (median)")
    ax.axhline(
        a["start_mib"] + a["tolerance_mib"],
        color="black",
        linestyle="--",
        linewidth=1,
        label=f"flat limit (start + {a['tolerance_mib']:.0f} MiB)",
    )
    for x in (*a["start_window"], a["end_window"][0]):
        ax.axvline(x / 1000, color="gray", linestyle=":", linewidth=0.8)
    ax.set_xlabel("instances processed (thousands)")
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ax.set_title(f"streamer RSS over {res['instances']:,} instances", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    kb.RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(kb.RESULTS / f"{name}.png")
    plt.close(fig)


def table(res: dict[str, Any], a: dict[str, Any], info: dict[str, Any]) -> str:
    feed = f"at {info['pace']:,.0f} instances/s" if info["pace"] else "as fast as it goes"
    heap = res["final"]["heap"]
    rocks = res["final"].get("rocks")
    extra = ", ".join(
        [f"{k}={v}" for k, v in res["settings"].items() if k not in {"http_port"}]
        + [f"environment {k}={v}" for k, v in info.get("malloc_env", {}).items()]
    )
    rows = [
        ("RSS idle (partitions ready, before any input)", f"{res['idle_rss_kib'] / 1024:,.1f} MiB"),
        (
            f"early: RSS, median of the samples at {WARMUP:,}–{2 * WARMUP:,} instances (warm-up)",
            f"{a['early_mib']:,.1f} MiB ({a['early_samples']} samples)"
            if a.get("early_mib") is not None
            else "–",
        ),
        (
            f"**start**: RSS, median of the samples at {a['start_window'][0]:,}–"
            f"{a['start_window'][1]:,} instances",
            f"**{a['start_mib']:,.1f} MiB** ({a['start_samples']} samples)",
        ),
        (
            f"**end**: RSS, median of the samples of the last "
            f"{a['end_window'][1] - a['end_window'][0]:,} instances",
            f"**{a['end_mib']:,.1f} MiB** ({a['end_samples']} samples)",
        ),
        ("end − start", f"{a['growth_mib']:+,.1f} MiB (limit +{a['tolerance_mib']:,.1f} MiB)"),
        (
            f"idle after the last Bundle (committed, {SETTLE_S:.0f} s idle) / after malloc_trim(0)",
            f"{a['idle_end_mib']:,.1f} / {a['idle_end_trimmed_mib']:,.1f} MiB",
        ),
        (
            "RocksDB budget in use (block cache + memtables, each capped; /metrics), "
            "start / end window",
            f"{a['rocks_start_mib']:,.1f} / {a['rocks_end_mib']:,.1f} MiB; end − start of RSS "
            f"without it: {a['growth_mib'] - (a['rocks_end_mib'] - a['rocks_start_mib']):+,.1f} MiB"
            if a.get("rocks_start_mib") is not None and a.get("rocks_end_mib") is not None
            else "–",
        ),
        ("largest sample / peak (VmHWM)", f"{a['max_mib']:,.1f} / {a['hwm_mib']:,.1f} MiB"),
        (
            "**slope over the second half** (least squares)",
            f"**{a['slope_mib_per_100k']:+,.2f} MiB per 100,000 instances** (limit "
            f"+{a['slope_max']:.1f})",
        ),
        (
            "glibc heap when idle at the end: size / in use / free",
            " / ".join(
                f"{heap[k] / 2**20:,.0f}" for k in ("heap_bytes", "in_use_bytes", "free_bytes")
            )
            + " MiB",
        ),
        (
            "RocksDB block cache / memtables when idle at the end",
            " / ".join(f"{rocks[k] / 2**20:,.1f}" for k in ("block_cache", "write_buffers"))
            + " MiB"
            if rocks
            else "–",
        ),
        (
            "processed (first record sent → last Bundle out)",
            f"{a['rate']:,.0f} instances/s, {res['run_s']:,.0f} s; CPU {a['cpu_per_instance_us']:,.0f}"
            " µs per instance",
        ),
        (
            "all instances sent after",
            f"{res['sent_done_s']:,.0f} s" if res["sent_done_s"] is not None else "–",
        ),
        ("state dir at the end", f"{res['state_dir_bytes'] / 2**20:,.0f} MiB"),
    ]
    verdict = (
        f"RSS {'**stayed flat**' if a['flat'] else '**grew**'}: {a['growth_mib']:+,.1f} MiB from "
        f"start to end, limit +{a['tolerance_mib']:,.1f} MiB "
        f"(max({FLAT_ABS_MIB:.0f} MiB, {FLAT_REL:.0%} of the start)); slope over the second half "
        f"{a['slope_mib_per_100k']:+,.2f} MiB per 100,000 instances, limit +{a['slope_max']:.1f}."
    )
    lines = [
        f"# Soak benchmark ({info['broker']['kind']})",
        "",
        kb.machine_line(info),
        "",
        f"One process (new code, default settings{', ' + extra if extra else ''}), "
        f"input topic of {PARTITIONS} partitions; {res['instances']:,} instances in "
        f"{res['instances'] // kb.PER_STUDY:,} studies of {kb.PER_STUDY} (≈"
        f"{info['instance_bytes']:,.0f} B of DICOM JSON each), each study followed by its marker, "
        f"produced while it runs, {feed}. VmRSS sampled every {info['interval']:g} s "
        f"({len(res['samples'])} samples). **Flat** = end − start ≤ max("
        f"{FLAT_ABS_MIB:.0f} MiB, {FLAT_REL:.0%} of start) **and** a slope over the second half "
        f"of at most +{SLOPE_MAX:.1f} MiB per 100,000 instances, where start and end are both taken "
        "while instances flow: start = median of the samples in the second tenth of the run "
        "(after the warm-up: the RocksDB budget and the bounded caches fill during the first "
        "tenth; the early window is shown too), end = median of the samples of the last tenth. "
        "The idle figure (once the last Bundle is out and the commit reached the end of the "
        "input) is lower: fetch buffers and records and Bundles in flight are gone by then.",
        "",
        "| measure | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in rows),
        "",
        verdict,
        "",
    ]
    if "tracemalloc" in res:
        for label, key in (("start", "start_probe"), ("end", "end_probe")):
            pr = res.get(key) or {}
            if pr:
                r = pr.get("rocks") or {}
                lines.append(
                    f"- At the {label} ({label} window, in flight): RSS {pr['rss_kib'] / 1024:,.1f} "
                    f"MiB, glibc heap {pr['heap']['heap_bytes'] / 2**20:,.1f} MiB of which in use "
                    f"{pr['heap']['in_use_bytes'] / 2**20:,.1f} MiB; RocksDB block cache "
                    f"{r.get('block_cache', 0) / 2**20:,.1f} MiB, memtables "
                    f"{r.get('write_buffers', 0) / 2**20:,.1f} MiB."
                )
        lines.append("")
        lines += [
            "tracemalloc (this run had it on; its RSS figures are inflated): the largest growths "
            "from the start snapshot to the end one:",
            "",
            "```",
            *res["tracemalloc"]["lineno"],
            "```",
            "",
        ]
    return "\n".join(lines)


async def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--instances", type=int, default=1_000_000)
    ap.add_argument("--broker", default="apache-kafka", choices=("apache-kafka", "tansu"))
    ap.add_argument(
        "--pace", type=float, default=0, help="instances/s (default: as fast as it goes)"
    )
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between RSS samples")
    ap.add_argument("--limit", type=float, default=1800, help="give up after this many seconds")
    ap.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="a STREAMER_ setting"
    )
    ap.add_argument("--tracemalloc", action="store_true", help="diagnosis: what grows (slow)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the log and state dir here")
    ap.add_argument("--out", default=None, help="result name (default soak, soak-tansu)")
    args = ap.parse_args()
    if args.instances < 2 * WARMUP:
        raise SystemExit(f"--instances must be at least {2 * WARMUP:,}")
    name = args.out or ("soak" if args.broker == "apache-kafka" else f"soak-{args.broker}")
    started = time.perf_counter()
    info = kb.machine() | {
        "instances": args.instances,
        "pace": args.pace,
        "interval": args.interval,
        "tracemalloc": args.tracemalloc,
        # glibc tunables in the environment reach the streamer too (diagnosis runs)
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith(("MALLOC_", "GLIBC_"))},
    }
    studies = kb.Studies()
    info["instance_bytes"] = studies.instance_bytes
    broker = kb.start_broker(args.broker)
    info["broker"] = broker.info()
    try:
        with kb.workdir(args.keep, "bench-soak-") as tmp:
            res = await soak(broker, studies, args, Path(tmp))
    finally:
        broker.stop()
    info["took_s"] = time.perf_counter() - started
    info["loadavg_end"] = list(os.getloadavg())
    a = analyse(res)
    text = table(res, a, info)
    kb.write_results(name, text, {"info": info, "analysis": a, "result": res})
    chart(name, res, a)
    print(text)


if __name__ == "__main__":
    kb.run(main)
