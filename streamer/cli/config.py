"""``python -m streamer config``: print the effective settings, one ``STREAMER_NAME=value`` a line.

What the stream processor would run with: the STREAMER_* environment over the defaults. Secrets
print as ``***`` when set; unset settings print an empty value. Bad settings exit 2 like ``run``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pydantic import SecretStr

from streamer.cli.parsers import config as parser
from streamer.config import ENV_PREFIX, Settings, load_settings, unknown_env_vars

MASK = "***"
# A setting whose name contains one of these never prints its value.
_SECRET_WORDS = ("password", "secret", "token", "key")


def is_secret(name: str) -> bool:
    return any(word in name.lower() for word in _SECRET_WORDS)


def _format(name: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, SecretStr) or is_secret(name):
        return MASK
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def render(settings: Settings) -> str:
    """``STREAMER_NAME=value`` lines for every setting, in the README table's order."""
    lines = [
        f"{ENV_PREFIX}{name.upper()}={_format(name, getattr(settings, name))}"
        for name in Settings.model_fields
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
    parser().parse_args(argv)
    settings = load_settings()
    sys.stdout.write(render(settings))
    for name in unknown_env_vars():
        print(f"unknown setting ignored: {name}", file=sys.stderr)  # noqa: T201
    return 0
