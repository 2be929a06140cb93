"""`python -m streamer config`, and every command's --help against the README."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from streamer.__main__ import USAGE
from streamer.cli.config import MASK, is_secret, render
from streamer.config import Settings

REPO = Path(__file__).parents[3]
README = (REPO / "README.md").read_text()
# Every command the usage text lists (so a new command is checked as soon as it is listed).
COMMANDS = tuple(re.findall(r"^  ([a-z]+)\b", USAGE, flags=re.MULTILINE))


def streamer(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("STREAMER_")}
    return subprocess.run(
        [sys.executable, "-m", "streamer", *args],
        env={**base, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def running_it_block() -> str:
    section = README.split("## Running it", 1)[1]
    return section.split("```sh", 1)[1].split("```", 1)[0]


# ---- config ----------------------------------------------------------------------------------


def test_config_prints_every_effective_setting() -> None:
    result = streamer("config", STREAMER_GROUP_ID="ward-7", STREAMER_ADD_INSTANCES="TRUE")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split("=", 1)[0] for line in lines] == [
        f"STREAMER_{name.upper()}" for name in Settings.model_fields
    ]
    assert "STREAMER_GROUP_ID=ward-7" in lines
    assert "STREAMER_ADD_INSTANCES=true" in lines
    assert "STREAMER_HTTP_PORT=8080" in lines
    assert "STREAMER_CHANGELOG_TOPIC=" in lines  # unset
    assert result.stderr == ""


def test_config_exits_2_on_a_bad_setting_and_names_unknown_ones() -> None:
    result = streamer("config", STREAMER_HTTP_PORT="eighty")
    assert result.returncode == 2
    assert "STREAMER_HTTP_PORT" in result.stderr
    assert result.stdout == ""
    result = streamer("config", STREAMER_HTTP_PROT="80")
    assert result.returncode == 0
    assert "unknown setting ignored: STREAMER_HTTP_PROT" in result.stderr


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("sasl_password", True),
        ("ssl_key_password", True),
        ("api_token", True),
        ("client_secret", True),
        ("signing_key", True),
        ("group_id", False),
        ("http_port", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret(name) is secret


def test_config_masks_every_secret_setting() -> None:
    secret_fields = [name for name in Settings.model_fields if is_secret(name)]
    values: dict[str, object] = {name: SecretStr("s3cret-value") for name in secret_fields}
    settings = Settings.model_construct(**values)  # type: ignore[arg-type]
    out = render(settings)
    assert "s3cret-value" not in out
    for name in secret_fields:
        assert f"STREAMER_{name.upper()}={MASK}\n" in out


@pytest.mark.skipif(
    "sasl_password" not in Settings.model_fields, reason="no SASL settings in this build"
)
def test_config_masks_a_password_from_the_environment() -> None:
    result = streamer(
        "config",
        STREAMER_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        STREAMER_SASL_MECHANISM="PLAIN",
        STREAMER_SASL_USERNAME="streamer",
        STREAMER_SASL_PASSWORD="hunter2-very-secret",
    )
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    assert f"STREAMER_SASL_PASSWORD={MASK}" in result.stdout.splitlines()
    assert "STREAMER_SASL_USERNAME=streamer" in result.stdout.splitlines()


# ---- --help against the README --------------------------------------------------------------


def test_the_usage_lists_every_command() -> None:
    assert {"run", "publish", "convert", "demo", "config"} <= set(COMMANDS)
    for command in COMMANDS:
        assert streamer(command, "--help").returncode == 0, f"{command} is listed but unknown"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command_matches_the_readme(command: str) -> None:
    result = streamer(command, "--help")
    assert result.returncode == 0, result.stderr
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", result.stdout))
    assert "--help" in flags or command == "run"
    missing = sorted(flag for flag in flags if not re.search(rf"(?<![\w-]){flag}(?![\w-])", README))
    assert missing == [], f"`{command} --help` prints options the README does not name"
    block = running_it_block()
    assert re.search(rf"^python -m streamer \[?{command}\b", block, flags=re.MULTILINE), (
        f"README 'Running it' does not list `{command}`"
    )
