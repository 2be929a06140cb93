"""Latency: end-of-study marker produced → its Bundle read, at half the streamer's maximum rate;
and the inactivity close: last instance produced → Bundle read.

    .venv/bin/python bench/latency.py                          # Apache Kafka and Tansu
    .venv/bin/python bench/latency.py --broker kafka --studies 3000

Per broker, one `python -m streamer` (this tree, default settings, 4 partitions) in a fresh group:

0. **Broker warm-up**, Apache Kafka only (`--warm-s`, default 20 s): a throwaway streamer on its
   own topics is fed paced studies at `--warm-rate` instances/s; nothing of it is measured but the
   broker's CPU and the p99 per pass (reported). A fresh JVM broker spends its first ≈ 15 s of
   such load compiling its hot paths: the same paced load took 1.0 core of its CPU at first and
   0.27–0.3 once warm, and the p99 of its passes fell from 228–819 ms to 21–80 ms (2026-12-07,
   bench/README). A production broker is warm; measuring its compiler says nothing about the
   streamer. Tansu is native code, and its memory:// store only slows as it fills (the same
   warm-up there: 0.38 → 0.65 cores, p99 41 → 394 ms), so it gets none.
1. **Maximum rate** (a probe in the same run, unless `--rate`): a warm-up study per partition and
   then `--probe-studies` studies of 10 instances + marker are in the input topic before the
   process starts, so it works through a backlog as fast as it can (not as fast as this process
   can produce); rate = instances of all probe studies but the first / (first probe Bundle read →
   last probe Bundle read), which leaves out the start and the first Bundle's one-time set-up.
2. **Marker → Bundle** at half that rate, once the streamer and the broker are idle again after
   the probe (`settle`): `--studies` studies (10 instances, then the marker), paced evenly; the
   producer (acks=all, linger 1 ms, lz4) and the reader of the output topic are in
   this process, so both time stamps come from one clock: t0 = just before the marker is handed
   to the producer, t1 = the Bundle read. p50/p95/p99/max. Target: p99 < 50 ms.
3. **Inactivity close**: a second process in its own group with STREAMER_STUDY_TIMEOUT_SECONDS=T
   (default 3); `--idle-studies` studies without a marker, one every 50 ms; t0 = just before the
   last instance of a study is handed to the producer, t1 = its Bundle read. Target:
   every close ≤ T + 1 s. (The study's deadline runs from the record time stamp the producer
   sets, t0 + a few ms.)

`--pin` runs the streamers on the last CPU and the broker and this process (the load generator
and the reader) on the others, as where the broker has machines of its own; without it all share
every CPU (the default, and the README's figures).

On Tansu the streamer gets STREAMER_IDEMPOTENT_PRODUCER=false and STREAMER_ISOLATION_LEVEL=
read_uncommitted (`_kafkabench.streamer_env`). Output: bench/results/latency.{md,json,png} and the
README block `latency`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import time
import urllib.request
from pathlib import Path
from typing import Any

import _kafkabench as kb
from aiokafka import AIOKafkaProducer
from charts import bar_chart

from streamer.messages import encode_marker

TARGET_P99_S = 0.050
_WARM_PASS_S = 2.5  # the broker warm-up is reported per pass of this many seconds of load
_QUIET_CORES = 0.1  # settle(): a process using less than this is idle
_SETTLE_MAX_S = 20.0
IDLE_SLACK_S = 1.0
TREE = kb.REPO  # --tree: another copy of the package, for A/B diagnostics
STREAMER_CPUS: frozenset[int] | None = None  # --pin: the streamer's CPU, away from the rest
BROKERS = {"kafka": "apache-kafka", "apache-kafka": "apache-kafka", "tansu": "tansu"}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def dist(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": pct(values, 0.50),
        "p95": pct(values, 0.95),
        "p99": pct(values, 0.99),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


class Feeder:
    """A producer for paced studies, recording when each study's last record was handed over."""

    def __init__(self, broker: kb.Broker, topic: str) -> None:
        self.topic = topic
        # linger 1 ms: with 0 the producer sent 4,255 and 4,770 records/s where 5,616 and 10,175
        # were asked (two runs), so late slots piled up; the ms is part of every measured latency.
        self.producer = AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap, linger_ms=1, compression_type="lz4", acks="all"
        )
        self.pending: list[asyncio.Future[Any]] = []

    async def __aenter__(self) -> Feeder:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def study(self, uid: str, instances: list[bytes], marker: bool) -> float:
        """Send a study; returns the wall clock just before its last record was handed over."""
        key = uid.encode()
        for value in instances[:-1]:
            self.pending.append(await self.producer.send(self.topic, value=value, key=key))
        last = instances[-1]
        if marker:
            self.pending.append(await self.producer.send(self.topic, value=last, key=key))
            last = encode_marker(uid, len(instances))
        t0 = time.time()
        self.pending.append(await self.producer.send(self.topic, value=last, key=key))
        if len(self.pending) > 2000:
            await asyncio.gather(*self.pending)
            self.pending.clear()
        return t0

    async def paced(
        self, studies: list[tuple[str, list[bytes]]], per_s: float, marker: bool
    ) -> dict[str, float]:
        """Each study at its slot (start + i / per_s); never faster, late slots are sent at once."""
        sent: dict[str, float] = {}
        start = time.monotonic() + 0.1
        for i, (uid, instances) in enumerate(studies):
            delay = start + i / per_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[uid] = await self.study(uid, instances, marker)
        await asyncio.gather(*self.pending)
        self.pending.clear()
        return sent


def fresh(studies: kb.Studies, first: int, count: int) -> list[tuple[str, list[bytes]]]:
    return [studies.study(n) for n in range(first, first + count)]


async def start_streamer(
    broker: kb.Broker,
    name: str,
    partitions: int,
    work: Path,
    preload: list[tuple[bytes, bytes, int | None]] | None = None,
    **settings: object,
) -> tuple[kb.Proc, kb.Topics]:
    """A streamer on fresh topics, ready; ``preload`` is put in its input topic before it starts."""
    topics = kb.Topics.unique(name)
    await kb.create_topics(broker, topics, partitions)
    if preload:
        await kb.produce(broker, topics.input, preload)
    env = kb.streamer_env(
        "new",
        broker,
        topics,
        work / f"state-{name}",
        topic_partitions=partitions,
        http_port=free_port(),
        **settings,
    )
    proc = kb.Proc(name, env, TREE, work / f"{name}.log", cpus=STREAMER_CPUS).start()
    await proc.wait_for(lambda p: kb.ready_at(p), "ready", 120)
    return proc, topics


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def histograms(proc: kb.Proc) -> dict[str, dict[str, float]]:
    """The streamer's own timings from /metrics: count, sum and mean of each histogram."""
    url = f"http://127.0.0.1:{proc.env['STREAMER_HTTP_PORT']}/metrics"

    def get() -> str:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return str(resp.read().decode())

    out: dict[str, dict[str, float]] = {}
    for line in (await asyncio.to_thread(get)).splitlines():
        name, _, value = line.rpartition(" ")
        for part in ("_sum", "_count"):
            if name.startswith("streamer_") and name.endswith(part) and "{" not in name:
                out.setdefault(name[len("streamer_") : -len(part)], {})[part[1:]] = float(value)
    for h in out.values():
        h["mean"] = h.get("sum", 0.0) / h["count"] if h.get("count") else 0.0
    return out


async def warm_up(
    broker: kb.Broker,
    topics: kb.Topics,
    partitions: int,
    studies: kb.Studies,
    watch: kb.Watcher,
    proc: kb.Proc,
) -> None:
    """One small complete study per partition, until its Bundle is out (the first Bundle of a
    process pays for building the FHIR models; that is start-up, not latency)."""
    warm = kb.probe_records(partitions, studies)
    await kb.produce(broker, topics.input, warm)
    await watch.wait_keys({k.decode() for k, _, _ in warm}, 120, [proc])


async def settle(proc: kb.Proc, broker: kb.Broker) -> float:
    """Wait until the streamer and the broker are idle (each under _QUIET_CORES over a second),
    at most _SETTLE_MAX_S; returns the seconds waited. After the probe's backlog both still work
    for a while (RocksDB flushes and compactions, the broker's log cleaner on the compacted
    changelog, the trims after a burst), and a paced phase started at once measured part of that
    (on Kafka, p99 per 150 markers reached 110–184 ms in its first 1.3 s against 15–80 ms after;
    with this wait still 75–92 ms in its first 0.7 s, so not all of it: bench/README, 2026-12-07)."""
    started = time.monotonic()
    pid = broker.handle.process.pid
    while time.monotonic() - started < _SETTLE_MAX_S:
        a = (kb.cpu_seconds(proc), kb.pid_cpu_seconds(pid), time.monotonic())
        await asyncio.sleep(1.0)
        b = (kb.cpu_seconds(proc), kb.pid_cpu_seconds(pid), time.monotonic())
        span = b[2] - a[2]
        if (b[0] - a[0]) / span < _QUIET_CORES and (b[1] - a[1]) / span < _QUIET_CORES:
            break
    return time.monotonic() - started


async def warm_broker(
    broker: kb.Broker, args: argparse.Namespace, studies: kb.Studies, first: int, work: Path
) -> tuple[list[dict[str, float]], int]:
    """Phase 0: paced load through a throwaway streamer for ``args.warm_s``; per pass of
    ``_WARM_PASS_S``: the broker's and the streamer's CPU (cores) and the pass's p99. Returns
    them and the next unused study number."""
    passes: list[dict[str, float]] = []
    if args.warm_s <= 0 or broker.kind != "apache-kafka":  # why only Kafka: the module's doc
        return passes, first
    proc, topics = await start_streamer(broker, "lat-warm", args.partitions, work)
    per_s = args.warm_rate / args.per_study
    try:
        async with kb.Watcher(broker, topics.output) as watch, Feeder(broker, topics.input) as feed:
            await warm_up(broker, topics, args.partitions, studies, watch, proc)
            end = time.monotonic() + args.warm_s
            while time.monotonic() < end:
                batch = fresh(studies, first, max(1, round(per_s * _WARM_PASS_S)))
                first += len(batch)
                cpu0, others0 = kb.cpu_seconds(proc), cpu_others(broker)
                sent = await feed.paced(batch, per_s, marker=True)
                await watch.wait_keys(sent, 600, [proc])
                others = cpu_others(broker, since=others0)
                span = span_s(others)
                lat = dist([watch.keys[u][0].received - t for u, t in sent.items()])
                passes.append(
                    {
                        "broker_cores": others["broker"] / span,
                        "streamer_cores": (kb.cpu_seconds(proc) - cpu0) / span,
                        "p99_s": lat["p99"],
                    }
                )
                kb.log(
                    f"{broker.kind}: warm-up pass {len(passes)}: broker "
                    f"{passes[-1]['broker_cores']:.2f} cores, p99 {lat['p99'] * 1000:.0f} ms"
                )
    finally:
        proc.terminate()
        proc.close()
    return passes, first


async def run_broker(kind: str, args: argparse.Namespace, studies: kb.Studies) -> dict[str, Any]:
    broker = kb.start_broker(kind)
    out: dict[str, Any] = {"broker": broker.info()}
    next_study = 0
    try:
        with kb.workdir(args.keep, "bench-latency-") as tmp:
            work = Path(tmp)
            out["warm_up"], next_study = await warm_broker(broker, args, studies, next_study, work)
            # 1 + 2: one process, the probe (a preloaded backlog) then the paced studies.
            rate = args.rate
            probe: list[tuple[str, list[bytes]]] = []
            preload: list[tuple[bytes, bytes, int | None]] = []
            if rate is None:
                preload = list(kb.probe_records(args.partitions, studies))
                probe = fresh(studies, next_study, args.probe_studies)
                next_study += len(probe)
                for uid, instances in probe:
                    key = uid.encode()
                    preload += [(key, v, None) for v in instances]
                    preload.append((key, encode_marker(uid, len(instances)), None))
            proc, topics = await start_streamer(
                broker, "lat-marker", args.partitions, work, preload=preload
            )
            try:
                async with (
                    kb.Watcher(broker, topics.output) as watch,
                    Feeder(broker, topics.input) as feed,
                ):
                    if rate is None:
                        await watch.wait_keys([u for u, _ in probe], 600, [proc])
                        reads = sorted(watch.keys[u][0].received for u, _ in probe)
                        seconds = reads[-1] - reads[0]
                        rate = (len(probe) - 1) * args.per_study / seconds
                        kb.log(f"{kind}: maximum rate {rate:,.0f} instances/s (backlog probe)")
                        out["probe"] = {"studies": len(probe), "seconds": seconds}
                    else:
                        await warm_up(broker, topics, args.partitions, studies, watch, proc)
                    out["max_rate"] = rate
                    out["paced_rate"] = rate / 2
                    per_s = rate / 2 / args.per_study
                    batch = fresh(studies, next_study, args.studies)
                    next_study += len(batch)
                    out["settle_s"] = await settle(proc, broker)
                    cpu0 = kb.cpu_seconds(proc)
                    h0 = await histograms(proc)
                    # Who else used the two cores meanwhile: the broker, this process (producer
                    # and reader), and the machine as a whole.
                    others0 = cpu_others(broker)
                    sent = await feed.paced(batch, per_s, marker=True)
                    await watch.wait_keys(sent, 600, [proc])
                    cpu = kb.cpu_seconds(proc) - cpu0
                    others = cpu_others(broker, since=others0)
                    wall = max(sent.values()) - min(sent.values())
                    h1 = await histograms(proc)
                    hist = {  # the paced phase only
                        k: {
                            "count": v.get("count", 0.0) - h0.get(k, {}).get("count", 0.0),
                            "sum": v.get("sum", 0.0) - h0.get(k, {}).get("sum", 0.0),
                        }
                        for k, v in h1.items()
                    }
                    lat = [watch.keys[u][0].received - t for u, t in sent.items()]
                    # Split: marker sent → Bundle handed to the streamer's producer (its record
                    # time stamp) and from there → read here.
                    stamped = [watch.keys[u][0].timestamp_ms / 1000 - t for u, t in sent.items()]
                    out["marker"] = {
                        "studies_per_s": per_s,
                        "latencies_s": lat,
                        "to_stamp": dist(stamped),
                        "sent_at": list(sent.values()),
                        "streamer_histograms": hist,
                        "cpu_s": cpu,
                        "wall_s": wall,
                        # CPU seconds over the same phase (till the last Bundle read, like cpu_s)
                        "cpu_others_s": others,
                        # What the producer here achieved (it may fall behind the slots).
                        "sent_rate": (len(sent) - 1) * args.per_study / wall,
                    } | dist(lat)
                    m = out["marker"]
                    kb.log(
                        f"{kind}: marker → Bundle at {rate / 2:,.0f} instances/s: "
                        f"p50 {m['p50'] * 1000:.1f} ms, p99 {m['p99'] * 1000:.1f} ms, "
                        f"max {m['max'] * 1000:.1f} ms"
                    )
            finally:
                proc.terminate()
                proc.close()
            # 3: inactivity close, its own process and group.
            proc, topics = await start_streamer(
                broker,
                "lat-idle",
                args.partitions,
                work,
                study_timeout_seconds=args.idle_timeout,
            )
            try:
                async with (
                    kb.Watcher(broker, topics.output) as watch,
                    Feeder(broker, topics.input) as feed,
                ):
                    await warm_up(broker, topics, args.partitions, studies, watch, proc)
                    batch = fresh(studies, next_study, args.idle_studies)
                    next_study += len(batch)
                    sent = await feed.paced(batch, 20.0, marker=False)
                    await watch.wait_keys(sent, 120 + args.idle_timeout, [proc])
                    lat = [watch.keys[u][0].received - t for u, t in sent.items()]
                    out["idle"] = {"timeout_s": args.idle_timeout, "latencies_s": lat} | dist(lat)
                    i = out["idle"]
                    kb.log(
                        f"{kind}: last instance → Bundle, timeout {args.idle_timeout} s: "
                        f"p50 {i['p50']:.2f} s, max {i['max']:.2f} s"
                    )
            finally:
                proc.terminate()
                proc.close()
    finally:
        broker.stop()
    return out


def cpu_others(broker: kb.Broker, since: dict[str, float] | None = None) -> dict[str, float]:
    """CPU seconds so far of the broker, of this process and of the machine (busy, total); with
    ``since`` (an earlier reading), the seconds between the two readings."""
    busy, total = kb.machine_cpu_seconds()
    now = {
        "broker": kb.pid_cpu_seconds(broker.handle.process.pid),
        "bench": time.process_time(),
        "machine_busy": busy,
        "machine_total": total,
    }
    return now if since is None else {k: v - since[k] for k, v in now.items()}


def span_s(others: dict[str, float]) -> float:
    """The wall seconds a difference of two ``cpu_others`` readings covers."""
    return others["machine_total"] / (os.cpu_count() or 1)


def cpu_line(marker: dict[str, Any]) -> str:
    """The paced phase's CPU, in cores (of the machine's); '' for a result without it."""
    o = marker.get("cpu_others_s")
    if not o:
        return ""
    # From the paced phase's start to its last Bundle read: the span all four were read over.
    span = span_s(o)
    return (
        f" CPU over the paced phase, in cores of {os.cpu_count()}: streamer "
        f"{marker['cpu_s'] / span:.2f}, broker {o['broker'] / span:.2f}, this process (producer "
        f"and reader) {o['bench'] / span:.2f}, machine {o['machine_busy'] / span:.2f}."
    )


def settle_line(result: dict[str, Any]) -> str:
    """How long after the probe (or, with --rate, the warm-up study) the paced phase began."""
    waited = result.get("settle_s")
    if waited is None:
        return ""
    quiet = "idle by then" if waited < _SETTLE_MAX_S else "not idle yet: the wait's limit"
    return f" The paced phase began {waited:.1f} s after the Bundles before it were read ({quiet})."


def warm_line(result: dict[str, Any]) -> str:
    """The broker warm-up, first and last pass; '' for a result without one."""
    passes = result.get("warm_up")
    if not passes:
        return ""
    first, last = passes[0], passes[-1]
    return (
        f" Broker warm-up before all this: {len(passes)} passes of {_WARM_PASS_S:g} s of paced "
        f"load; broker CPU {first['broker_cores']:.2f} → {last['broker_cores']:.2f} cores, p99 "
        f"{first['p99_s'] * 1000:.0f} → {last['p99_s'] * 1000:.0f} ms (first → last pass)."
    )


def sent_rate(marker: dict[str, Any]) -> str:
    rate = marker.get("sent_rate")
    return f"{rate:,.0f}" if rate is not None else "–"


def table(results: list[dict[str, Any]], info: dict[str, Any]) -> str:
    rows, idle_rows, verdicts = [], [], []
    for r in results:
        label = "Apache Kafka" if r["broker"]["kind"] == "apache-kafka" else "Tansu"
        m, i = r["marker"], r["idle"]
        ok = m["p99"] < TARGET_P99_S
        verdicts.append(f"{label}: p99 {m['p99'] * 1000:.0f} ms ({'met' if ok else '**missed**'})")
        rows.append(
            f"| {label} | {r['max_rate']:,.0f} | {r['paced_rate']:,.0f} ({m['studies_per_s']:.0f} "
            f"studies/s) | {sent_rate(m)} | {m['n']:,} | {m['p50'] * 1000:.1f} | {m['p95'] * 1000:.1f} | "
            f"**{m['p99'] * 1000:.1f}** | {m['max'] * 1000:.1f} | {m['cpu_s'] / m['wall_s']:.0%} |"
        )
        limit = i["timeout_s"] + IDLE_SLACK_S
        iok = i["max"] <= limit
        verdicts.append(
            f"{label} inactivity close: max {i['max']:.2f} s vs {limit:.0f} s "
            f"({'met' if iok else '**missed**'})"
        )
        idle_rows.append(
            f"| {label} | {i['timeout_s']:.0f} | {i['n']:,} | {min(i['latencies_s']):.2f} | "
            f"{i['p50']:.2f} | {i['p95']:.2f} | {i['p99']:.2f} | **{i['max']:.2f}** |"
        )
    inside = []
    for r in results:
        label = "Apache Kafka" if r["broker"]["kind"] == "apache-kafka" else "Tansu"
        h = r["marker"].get("streamer_histograms", {})

        def mean_ms(name: str, h: dict[str, dict[str, float]] = h) -> str:
            v = h.get(name, {})
            return f"{v['sum'] / v['count'] * 1000:.1f} ms" if v.get("count") else "–"

        st = r["marker"]["to_stamp"]
        inside.append(
            f"{label}: marker sent → Bundle stamped by the streamer's producer p50 "
            f"{st['p50'] * 1000:.1f} / p99 {st['p99'] * 1000:.1f} ms; in the streamer (its "
            f"/metrics, paced phase): Bundle build mean {mean_ms('bundle_build_seconds')}, "
            f"checkpoint mean {mean_ms('checkpoint_seconds')} "
            f"(×{h.get('checkpoint_seconds', {}).get('count', 0):.0f}), commit mean "
            f"{mean_ms('commit_seconds')}.{cpu_line(r['marker'])}{settle_line(r)}{warm_line(r)}"
        )
    brokers = "; ".join(r["broker"]["label"] for r in results)
    pinned = info.get("pinned")
    pin_line = (
        f" Pinned (`--pin`): the streamers on CPU {pinned['streamer']}, the broker and this "
        f"process on CPU {pinned['broker_and_bench']}."
        if pinned
        else ""
    )
    return "\n".join(
        [
            "# Latency: end-of-study marker → Bundle, and the inactivity close",
            "",
            # No old commit runs here: drop that part of the shared line.
            kb.machine_line(info | {"broker": {"label": brokers}}).replace(
                f"; old = {kb.OLD_COMMIT}", ""
            )
            + pin_line,
            "",
            f"First, Apache Kafka is warmed up: a throwaway streamer on its own topics gets "
            f"{info.get('warm_s', 0):g} s of paced load at {info.get('warm_rate', 0):,.0f} "
            "instances/s (a fresh JVM broker compiles its hot paths under load; Tansu, native, "
            "gets none; bench/README). Then one `python -m streamer` (default settings, "
            f"{info['partitions']} partitions), fed by "
            "this process while it reads the output topic (one clock). Maximum rate: "
            f"{info['probe_studies']:,} studies of {info['per_study']} instances + marker in the "
            "input topic before the process starts (a backlog), the instances of all but the "
            "first / (first probe Bundle read → last one read) (or `--rate`). Then, once the "
            "streamer and the broker are idle again (each under 0.1 core for a second), studies at "
            "half that rate, evenly paced: marker handed to the producer (acks=all, linger 1 ms) → "
            "its Bundle read. Sent = the rate this process achieved (late slots are sent at once).",
            "",
            "| broker | max instances/s | paced at instances/s | sent instances/s | studies | "
            "p50 ms | p95 ms | p99 ms | max ms | streamer CPU busy |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            *(f"- {line}" for line in inside),
            "",
            "Inactivity close: studies without a marker, one every 50 ms, a process with "
            "STREAMER_STUDY_TIMEOUT_SECONDS=T; last instance handed to the producer → Bundle read, "
            "seconds.",
            "",
            "| broker | T, s | studies | min | p50 | p95 | p99 | max |",
            "|---|---|---|---|---|---|---|---|",
            *idle_rows,
            "",
            f"Targets: marker → Bundle p99 < {TARGET_P99_S * 1000:.0f} ms; inactivity close ≤ T + "
            f"{IDLE_SLACK_S:.0f} s. " + "; ".join(verdicts) + ".",
            "",
        ]
    )


async def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--broker", default="kafka,tansu", help="comma-separated: kafka, tansu")
    ap.add_argument("--studies", type=int, default=3000, help="paced studies with a marker")
    ap.add_argument(
        "--warm-s", type=float, default=20.0, help="Apache Kafka warm-up, seconds (0: none)"
    )
    ap.add_argument("--warm-rate", type=float, default=3000.0, help="warm-up instances/s")
    ap.add_argument("--per-study", type=int, default=10)
    ap.add_argument("--probe-studies", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=None, help="maximum instances/s (no probe)")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--idle-timeout", type=float, default=3.0)
    ap.add_argument("--idle-studies", type=int, default=200)
    ap.add_argument("--keep", type=Path, default=None, help="keep logs and state dirs here")
    ap.add_argument("--out", default="latency", help="result name")
    ap.add_argument("--tree", type=Path, default=None, help="dir holding another streamer/")
    ap.add_argument(
        "--pin",
        action="store_true",
        help="the streamers on the last CPU; the broker, this process (load and reader) on the others",
    )
    args = ap.parse_args()
    global TREE, STREAMER_CPUS
    if args.tree is not None:
        TREE = args.tree
    kinds = [BROKERS[b.strip()] for b in args.broker.split(",")]
    started = time.perf_counter()
    studies = kb.Studies(per_study=args.per_study)
    info = kb.machine() | {
        "studies": args.studies,
        "per_study": args.per_study,
        "probe_studies": args.probe_studies,
        "partitions": args.partitions,
        "idle_timeout_s": args.idle_timeout,
        "idle_studies": args.idle_studies,
        "warm_s": args.warm_s,
        "warm_rate": args.warm_rate,
    }
    if args.pin:  # after kb.machine(), which counts the CPUs this process may use
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise SystemExit("--pin needs at least two CPUs")
        STREAMER_CPUS = frozenset(cpus[-1:])
        os.sched_setaffinity(0, cpus[:-1])  # the brokers started from here inherit it
        info["pinned"] = {"streamer": cpus[-1:], "broker_and_bench": cpus[:-1]}
    results = [await run_broker(kind, args, studies) for kind in kinds]
    info["took_s"] = time.perf_counter() - started
    info["loadavg_end"] = list(os.getloadavg())
    text = table(results, info)
    kb.write_results(args.out, text, {"info": info, "results": results})
    labels = ["Kafka" if r["broker"]["kind"] == "apache-kafka" else "Tansu" for r in results]
    bar_chart(
        args.out,
        "Marker → Bundle latency at half the maximum rate",
        labels,
        {q: [r["marker"][q] * 1000 for r in results] for q in ("p50", "p95", "p99", "max")},
        "ms",
        target=TARGET_P99_S * 1000,
        target_label="p99 target",
    )
    print(text)


if __name__ == "__main__":
    kb.run(main)
