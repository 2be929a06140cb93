"""`python -m streamer [run|publish|convert|demo|tail|config]`: picks the command's module in `streamer.cli`."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from streamer.errors import ConfigError

USAGE = """usage: python -m streamer [COMMAND] [ARGS]

commands:
  run                  consume dicom.instances, publish fhir.bundles (default; STREAMER_* settings)
  publish PATH...      publish DICOM files (or DICOM JSON .json/.jsonl files) as instance
                       messages plus end-of-study markers [--rate N] [--quiet]
  convert PATH... [-o OUTDIR]
                       convert DICOM files to one Bundle file per study (no broker)
  demo                 start a local broker, the streamer and sample studies; print the Bundles
  tail                 print the Bundles of fhir.bundles as they arrive, one line per study
                       [--from-beginning] [--json] [--show-patient]
  config               print the effective settings (secrets masked) and exit
  sink --fhir-base-url URL
                       POST every Bundle of fhir.bundles to a FHIR server [--group G]

COMMAND --help shows a command's options.
"""

Command = Callable[[Sequence[str]], int]


def _command(name: str) -> Command | None:
    """The command's ``main``, imported only when chosen (``run`` never loads the tools)."""
    if name == "run":
        from streamer.cli.run import main as run_main

        return run_main
    if name == "publish":
        from streamer.cli.publish import main as publish_main

        return publish_main
    if name == "convert":
        from streamer.cli.convert import main as convert_main

        return convert_main
    if name == "demo":
        from streamer.cli.demo import main as demo_main

        return demo_main
    if name == "tail":
        from streamer.cli.tail import main as tail_main

        return tail_main
    if name == "config":
        from streamer.cli.config import main as config_main

        return config_main
    if name == "sink":
        from streamer.cli.sink import main as sink_main

        return sink_main
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch the subcommand; settings errors exit 2 with a message naming the setting."""
    args = list(sys.argv[1:] if argv is None else argv)
    name = args.pop(0) if args and not args[0].startswith("-") else "run"
    if name in {"-h", "--help", "help"} or (name == "run" and args[:1] in (["-h"], ["--help"])):
        print(USAGE)  # noqa: T201
        return 0
    if "-h" in args or "--help" in args:
        from streamer.cli.parsers import PARSERS

        if name in PARSERS:
            # The command's own parser, without its module's imports: prints the help and exits 0
            # (a "--help" after "--" is a file name: parsing passes and the command runs as usual).
            PARSERS[name]().parse_args(args)
    try:
        command = _command(name)
        if command is None:
            print(f"unknown command {name!r}\n\n{USAGE}", file=sys.stderr)  # noqa: T201
            return 2
        if name not in {"run", "config", "tail", "sink"}:
            from streamer.dicom.files import quiet_pydicom

            # The tools read files from disk: pydicom must not print their odd values.
            quiet_pydicom()
        return command(args)
    except ConfigError as exc:
        print(f"streamer: {exc}", file=sys.stderr)  # noqa: T201
        return 2


if __name__ == "__main__":
    sys.exit(main())
