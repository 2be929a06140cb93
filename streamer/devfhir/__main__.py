"""``python -m streamer.devfhir fetch|run``: fetch and compile the HAPI FHIR JPA server, or run it."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from streamer.devfhir.hapi_jpa import HAPI_JPA_VERSION, ensure_server, fhir_cache_dir
from streamer.devfhir.server import DEFAULT_HEAP, start_fhir_server

_log = logging.getLogger("streamer.devfhir")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m streamer.devfhir",
        description="A local HAPI FHIR JPA server (R4B, in-memory) for trying the sink and for tests.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download the jars and compile the server; print its dir")
    fetch.add_argument("--version", default=HAPI_JPA_VERSION)
    run = sub.add_parser("run", help="run the server until Ctrl-C/SIGTERM; print its base URL")
    run.add_argument("--version", default=HAPI_JPA_VERSION)
    run.add_argument("--port", type=int, default=None, help="default: a free port")
    run.add_argument("--heap", default=DEFAULT_HEAP, help="JVM -Xmx (default %(default)s)")
    run.add_argument("--log-file", type=Path, default=None, help="default: a temp file")
    return parser


def _fetch(version: str) -> int:
    started = time.monotonic()
    ensure_server(version)
    _log.info("HAPI FHIR %s JPA server ready in %.1f s", version, time.monotonic() - started)
    print(fhir_cache_dir(version))  # noqa: T201 - the CLI's output
    return 0


def _run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    old = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with start_fhir_server(
            args.port, log_path=args.log_file, heap=args.heap, version=args.version
        ) as server:
            _log.info("log: %s (pid %d)", server.log_path, server.process.pid)
            print(server.base_url, flush=True)  # noqa: T201 - the CLI's output
            while not stop.wait(0.5):
                if server.process.poll() is not None:
                    _log.error(
                        "FHIR server exited with %s; output tail:\n%s",
                        server.process.returncode,
                        server.log_tail(),
                    )
                    return 1
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "fetch":
        return _fetch(args.version)
    return _run(args)


if __name__ == "__main__":
    raise SystemExit(main())
