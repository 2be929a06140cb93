"""``python -m streamer.devbroker fetch-kafka|tansu|kafka``: fetch the jars, or run a broker."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from streamer.devbroker.apache_kafka import start_apache_kafka
from streamer.devbroker.kafka_jars import DEFAULT_KAFKA_VERSION, ensure_kafka_jars
from streamer.devbroker.process import log_tail
from streamer.devbroker.tansu import start_tansu

_log = logging.getLogger("streamer.devbroker")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m streamer.devbroker",
        description="Start a local Kafka-protocol broker for the demo and the tests.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch-kafka", help="download the Apache Kafka jars; print their dir")
    fetch.add_argument("--version", default=DEFAULT_KAFKA_VERSION)
    tansu = sub.add_parser("tansu", help="run Tansu (memory://) until Ctrl-C/SIGTERM")
    tansu.add_argument("--port", type=int, default=None)
    tansu.add_argument("--log-dir", type=Path, default=None)
    kafka = sub.add_parser("kafka", help="run Apache Kafka (KRaft) until Ctrl-C/SIGTERM")
    kafka.add_argument("--version", default=DEFAULT_KAFKA_VERSION)
    kafka.add_argument("--port", type=int, default=None)
    kafka.add_argument("--log-dir", type=Path, default=None)
    kafka.add_argument(
        "--full-jit", action="store_true", help="C2 JIT: slower start, faster broker (benchmarks)"
    )
    return parser


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT/SIGTERM, so the broker is stopped (and its temp dirs removed)."""
    stop = threading.Event()
    old = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield stop
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _fetch(version: str) -> int:
    started = time.monotonic()
    libs = ensure_kafka_jars(version)
    _log.info("jars ready in %.1f s", time.monotonic() - started)
    print(libs)  # noqa: T201 - the CLI's output
    return 0


def _serve(args: argparse.Namespace) -> int:
    """Start the broker, print its bootstrap address, and keep it up until a signal arrives."""
    started = time.monotonic()
    with _stop_on_signals() as stop:
        if args.command == "tansu":
            broker = start_tansu(port=args.port, log_dir=args.log_dir)
        else:
            broker = start_apache_kafka(
                args.version, args.log_dir, port=args.port, quick_jit=not args.full_jit
            )
        with broker:
            _log.info(
                "%s ready in %.2f s (pid %d, log %s)",
                broker.kind,
                time.monotonic() - started,
                broker.process.pid,
                broker.log_path,
            )
            print(broker.bootstrap, flush=True)  # noqa: T201 - the CLI's output
            while not stop.wait(0.5):
                if broker.process.poll() is not None:
                    _log.error(
                        "broker exited with %s; log tail:\n%s",
                        broker.process.returncode,
                        log_tail(broker.log_path),
                    )
                    return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "fetch-kafka":
        return _fetch(args.version)
    return _serve(args)


if __name__ == "__main__":
    raise SystemExit(main())
