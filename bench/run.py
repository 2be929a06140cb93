"""Conversion benchmark: the seed (dicom2fhir 0.1.25) and streamer side by side, in one run.

    .venv/bin/python bench/run.py [--repeat N] [--scenarios a,b,a+i,b-i]

Sets up bench/.seed-venv when missing (bench/setup_seed.sh), then starts bench/seed_driver.py with the
seed venv's python and bench/streamer_driver.py with the project venv's python, both in ``--serve`` mode,
generates the same deterministic workload (bench/workload.py) in each (the run stops if the two
fingerprints differ) and times the two sides pass by pass, alternating, so that load from elsewhere on
the machine hits both alike. Prints a Markdown table and writes it to
bench/results/latest.md, with the raw numbers in bench/results/latest.json. Then runs bench/library.py
(the library API vs the seed; ``--no-library`` skips it), so ``make bench`` is one command for both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402  (bench/ is not a package)
import workload  # noqa: E402

ROOT = BENCH.parent
RESULTS = BENCH / "results"
SEED_PY = BENCH / ".seed-venv" / "bin" / "python"
HEADLINE = ("a", "b")  # the two scenarios the seed's speed was first measured on


def _project_python() -> Path:
    venv = ROOT / ".venv" / "bin" / "python"
    return venv if venv.exists() else Path(sys.executable)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _machine() -> dict[str, Any]:
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu": _cpu_model(),
        "platform": platform.platform(),
        "loadavg_at_start": os.getloadavg(),
    }


class Driver:
    """One side's driver process in ``--serve`` mode; ``ask`` sends a command and returns the reply."""

    def __init__(
        self, python: Path, script: str, side: str, extra: list[str], log_name: str | None = None
    ) -> None:
        cmd = [str(python), str(BENCH / script), "--serve", *extra]
        print(f"starting {side}: {' '.join(cmd)}", file=sys.stderr, flush=True)
        self.side = side
        self.stderr_path = RESULTS / f"{log_name or side}.stderr.txt"
        self._stderr = self.stderr_path.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=ROOT,
        )

    def ask(self, *words: object) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(" ".join(map(str, words)) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.close()
            tail = self.stderr_path.read_text(encoding="utf-8")[-4000:]
            sys.exit(f"{self.side} driver died (exit {self.proc.returncode}) on {words}:\n{tail}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            self.close()
            sys.exit(
                f"{self.side} driver failed on {words}: {reply['error']}\n{reply.get('traceback')}"
            )
        return reply

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            except (BrokenPipeError, ValueError):  # already gone or closed
                pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()

    def kill(self) -> None:
        """On failure or Ctrl-C: stop this driver process (only this one) without asking."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


def measure(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both sides, scenario by scenario, timed passes alternating seed/streamer (order flipped every
    round) so load changes on the machine hit both sides alike."""
    seed = Driver(SEED_PY, "seed_driver.py", "seed", [])
    ours = Driver(_project_python(), "streamer_driver.py", "streamer", ["--profile", args.profile])
    sides = (seed, ours)
    out: dict[str, dict[str, Any]] = {d.side: {"scenarios": {}} for d in sides}
    for key in args.scenarios.split(","):
        sc = workload.SCENARIOS[key]

        def load(seed: int, key: str = key) -> str:
            digests = {d.side: d.ask("load", key, seed)["workload_sha256"] for d in sides}
            if len(set(digests.values())) != 1:
                sys.exit(
                    f"workload differs between the two processes for scenario {key}: {digests}"
                )
            return next(iter(digests.values()))

        # Warm up on a workload of its own; every timed pass then converts studies neither side has
        # seen (fresh UIDs, patients, dates), so no cache of ours is warm with the timed values.
        load(args.seed - 1)
        for d in sides:
            d.ask("warmup", key)
        runs: dict[str, list[dict[str, Any]]] = {d.side: [] for d in sides}
        digests: dict[str, str] = {}
        for r in range(args.repeat):
            digest = load(args.seed + r)
            digests = {d.side: digest for d in sides}
            for d in sides if r % 2 == 0 else sides[::-1]:
                runs[d.side].append(d.ask("pass", key))
            print(f"  {key} pass {r + 1}/{args.repeat}", file=sys.stderr, flush=True)
        for d in sides:
            times = [p["time_s"] for p in runs[d.side]]
            nbytes = runs[d.side][-1]["json_bytes"]
            out[d.side]["scenarios"][key] = harness.summarize(sc, digests[d.side], times, nbytes)
            d.ask("sample", key, RESULTS)
    for d in sides:
        out[d.side]["memory"] = d.ask("memory", args.seed)
        out[d.side] |= d.ask("info") | {"repeat": args.repeat, "seed": args.seed}
        d.close()
        out[d.side]["stderr_lines"] = len(d.stderr_path.read_text(encoding="utf-8").splitlines())
    return out["seed"], out["streamer"]


def _fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def render(seed: dict[str, Any], ours: dict[str, Any], machine: dict[str, Any]) -> str:
    lines = [
        "| scenario | seed instances/s | streamer instances/s | ratio |",
        "|---|---:|---:|---:|",
    ]
    for key, s in seed["scenarios"].items():
        o = ours["scenarios"][key]
        star = " **(headline)**" if key in HEADLINE else ""
        lines.append(
            f"| {key}: {s['label']}{star} | {_fmt_rate(s['instances_per_s'])} | "
            f"{_fmt_rate(o['instances_per_s'])} | {o['instances_per_s'] / s['instances_per_s']:.1f}x |"
        )
    lines += [
        "",
        "| scenario | seed median s (min-max) | streamer median s (min-max) | ratio of best passes "
        "| seed JSON bytes/instance | streamer JSON bytes/instance |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, s in seed["scenarios"].items():
        o = ours["scenarios"][key]
        lines.append(
            f"| {key} | {s['median_s']:.3f} ({min(s['times_s']):.3f}-{max(s['times_s']):.3f}) "
            f"| {o['median_s']:.4f} ({min(o['times_s']):.4f}-{max(o['times_s']):.4f}) "
            f"| {min(s['times_s']) / min(o['times_s']):.1f}x "
            f"| {s['json_bytes'] / s['instances']:,.0f} | {o['json_bytes'] / o['instances']:,.0f} |"
        )
    sm, om = seed.get("memory", {}), ours.get("memory", {})
    lines += ["", "Memory per held instance (1,000-instance study):", ""]
    if "tracemalloc_bytes_per_instance" in sm:
        lines.append(
            f"- seed: {sm['tracemalloc_bytes_per_instance']:,.0f} B of Python heap per instance "
            "held by `Dicom2FHIRBundle` until the Bundle is built (tracemalloc)"
        )
    if om:
        lines.append(
            f"- streamer: `slim_instance` {om['slim_orjson_bytes_per_instance']:,.0f} B as orjson, "
            f"{om['tracemalloc_bytes_per_instance']:,.0f} B of Python heap (tracemalloc)"
        )
    else:
        lines.append("- streamer: `streamer.fhir.slim_instance` not available; not measured")
    sv, ov = seed["versions"], ours["versions"]
    lines += [
        "",
        f"Median of {seed['repeat']} timed passes per side (alternating seed/streamer) after one "
        "untimed warm-up on its own workload; each pass converts a new workload (seed + pass number) "
        "that neither side has seen; workload seed "
        f"{seed['seed']}; workload sha256 identical on both sides; streamer profile "
        f"`{ours['profile']}` (the seed always adds its MII extensions).",
        f"Machine: {machine['nproc']} CPUs usable ({machine['cpu']}), {machine['platform']}, "
        f"1-min load average {machine['loadavg_at_start'][0]:.2f} at start, "
        f"{machine['loadavg_at_end'][0]:.2f} at end.",
        f"Seed: CPython {seed['python']}, " + ", ".join(f"{k} {v}" for k, v in sv.items()) + ".",
        f"streamer: CPython {ours['python']}, "
        + ", ".join(f"{k} {v}" for k, v in ov.items())
        + ".",
        f"Peak RSS: seed {seed['max_rss_kb'] / 1024:.0f} MiB, streamer {ours['max_rss_kb'] / 1024:.0f}"
        " MiB (whole driver process: imports and the generated workloads included).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeat", type=int, default=5, help="timed passes per scenario and side")
    p.add_argument("--scenarios", default="a,b,a+i,b-i", help="comma-separated scenario keys")
    p.add_argument("--seed", type=int, default=workload.DEFAULT_SEED, help="workload RNG seed")
    p.add_argument(
        "--profile",
        choices=("core", "mii"),
        default="core",
        help="streamer's MappingOptions.profile",
    )
    p.add_argument(
        "--no-library",
        action="store_true",
        help="skip bench/library.py (the library API vs the seed), which runs after the core bench",
    )
    args = p.parse_args()

    RESULTS.mkdir(parents=True, exist_ok=True)
    subprocess.run(["bash", str(BENCH / "setup_seed.sh")], check=True, stdout=sys.stderr)
    machine = _machine()
    t0 = time.monotonic()
    seed, ours = measure(args)
    machine["loadavg_at_end"] = os.getloadavg()
    table = render(seed, ours, machine)
    print(table)
    (RESULTS / "latest.md").write_text(table, encoding="utf-8")
    raw = {"machine": machine, "seed": seed, "streamer": ours, "wall_s": time.monotonic() - t0}
    (RESULTS / "latest.json").write_text(json.dumps(raw, indent=2), encoding="utf-8")
    if not args.no_library:  # `make bench` is one command for both
        library = [str(_project_python()), str(BENCH / "library.py"), "--repeat", str(args.repeat)]
        subprocess.run([*library, "--profile", args.profile], check=True)


if __name__ == "__main__":
    main()
