"""`python -m streamer` start-up failures: clear messages, non-zero exit codes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamer.config import load_log_level

REPO = Path(__file__).parents[3]


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("STREAMER_")}
    return subprocess.run(
        [sys.executable, "-m", "streamer", *args],
        env={**base, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_setting_exits_2_naming_it() -> None:
    result = run(STREAMER_STUDY_TIMEOUT_SECONDS="-1")
    assert result.returncode == 2
    assert "STREAMER_STUDY_TIMEOUT_SECONDS" in result.stderr


def test_unreachable_broker_exits_non_zero_naming_it() -> None:
    result = run(STREAMER_BOOTSTRAP_SERVERS="127.0.0.1:9")
    assert result.returncode == 2
    assert "127.0.0.1:9" in result.stderr


def test_help_and_unknown_command() -> None:
    assert "publish PATH" in run("--help").stdout
    result = run("frobnicate")
    assert result.returncode == 2
    assert "unknown command 'frobnicate'" in result.stderr


def test_publish_rejects_a_bad_log_level_naming_it() -> None:
    result = run("publish", "no-such-dir", STREAMER_LOG_LEVEL="chatty")
    assert result.returncode == 2
    assert "STREAMER_LOG_LEVEL" in result.stderr


def test_log_level_comes_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMER_LOG_LEVEL", raising=False)
    assert load_log_level("WARNING") == "WARNING"
    monkeypatch.setenv("STREAMER_LOG_LEVEL", "debug")
    assert load_log_level("WARNING") == "DEBUG"


def test_devbroker_help_names_its_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streamer.devbroker", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for command in ("fetch-kafka", "tansu", "kafka"):
        assert command in result.stdout
