"""`import streamer` and `python -m streamer [COMMAND] --help` stay cheap: no heavy package is loaded.

Asserted on sys.modules of a fresh interpreter, not on time (speed lives in bench/startup.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[3]
HEAVY = ("aiokafka", "fhir", "pydicom", "pydantic", "rocksdict", "prometheus_client", "orjson")

# Runs `python -m streamer ARGS` in-process (runpy, as -m does), then lists the heavy packages.
_PROBE = (
    "import contextlib, io, runpy, sys\n"
    "expect_usage = sys.argv[1] == 'usage'\n"
    "sys.argv = ['streamer', *sys.argv[2:]]\n"
    "with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):\n"
    "    runpy.run_module('streamer', run_name='__main__', alter_sys=True)\n"
    "assert not expect_usage or 'usage: python -m streamer' in out.getvalue(), out.getvalue()\n"
    f"print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n"
)


def _heavy_loaded(*argv: str, expect_usage: bool = True) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, "usage" if expect_usage else "-", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.split()


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["help"], ["run", "--help"]])
def test_help_loads_no_heavy_package(argv: list[str]) -> None:
    assert _heavy_loaded(*argv) == []


@pytest.mark.parametrize("command", ["publish", "tail", "sink", "config", "demo", "convert"])
def test_a_commands_help_loads_no_heavy_package(command: str) -> None:
    # Answered by streamer.cli.parsers, the same parser the command parses with.
    assert _heavy_loaded(command, "x", "--help") == []


def test_help_after_double_dash_is_an_argument_not_a_request() -> None:
    from streamer.cli.parsers import PARSERS

    args = PARSERS["publish"]().parse_args(["--", "--help"])
    assert [str(p) for p in args.paths] == ["--help"]


def test_import_streamer_loads_no_heavy_package() -> None:
    code = (
        "import sys, streamer\n"
        f"print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []


def test_the_probe_sees_heavy_packages_when_they_are_loaded() -> None:
    # `config` loads the settings (pydantic): the probe must notice, or the tests above prove nothing.
    assert "pydantic" in _heavy_loaded("config", expect_usage=False)


def test_the_stream_processor_does_not_load_pydicom() -> None:
    """The processor maps DICOM JSON; pydicom (with numpy) is for files only, so it is not loaded at start."""
    code = (
        "import sys, streamer.cli.run, streamer.app, streamer.publishing\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & {'pydicom', 'numpy'})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == []
