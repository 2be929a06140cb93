"""What the STREAMER_* variables are: the check for unknown ones and the README's tables."""

from __future__ import annotations

import os
from collections.abc import Mapping

from streamer.config.settings import ENV_PREFIX, Settings
from streamer.config.sink import SinkSettings

# Variables read by tools outside Settings (tests, local brokers); not typos.
_KNOWN_OTHER_VARS = frozenset(
    {
        "STREAMER_TEST_BROKER",
        "STREAMER_CACHE_DIR",
        "STREAMER_KAFKA_VERSION",
        "STREAMER_KAFKA_JVM_OPTS",
    }
)


def unknown_env_vars(environ: Mapping[str, str] | None = None) -> list[str]:
    """STREAMER_* variables that match no setting (likely typos), so startup can warn about them.

    ``environ`` defaults to the process environment.
    """
    environ = os.environ if environ is None else environ
    names = (*Settings.model_fields, *SinkSettings.model_fields)
    fields = {ENV_PREFIX + name.upper() for name in names}
    return sorted(
        key
        for key in environ
        if key.upper().startswith(ENV_PREFIX)
        and key.upper() not in fields
        and key.upper() not in _KNOWN_OTHER_VARS
    )


def settings_table() -> str:
    """The README's settings table, made from the fields (a test keeps the README equal to it)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = "(unset)" if field.default is None else field.default
        if isinstance(default, bool):
            default = str(default).lower()
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | `{default}` | {field.description} |")
    return "\n".join(rows) + "\n"


def sink_settings_table() -> str:
    """The README's table of the sink's own settings (a test keeps the README equal to it)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in SinkSettings.model_fields.items():
        default = "(unset)" if field.default is None else field.default
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | `{default}` | {field.description} |")
    return "\n".join(rows) + "\n"
