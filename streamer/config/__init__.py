"""Runtime settings: the STREAMER_* environment variables of the processor and of the sink.

This package is the only place that reads the environment (``devbroker/``, ``devfhir/`` aside).
"""

from streamer.config.settings import (
    ENV_PREFIX,
    LogLevel,
    MappingSettings,
    Settings,
    load_log_level,
    load_mapping_options,
    load_settings,
)
from streamer.config.sink import SinkSettings, load_sink_settings
from streamer.config.variables import settings_table, sink_settings_table, unknown_env_vars

__all__ = [
    "ENV_PREFIX",
    "LogLevel",
    "MappingSettings",
    "Settings",
    "SinkSettings",
    "load_log_level",
    "load_mapping_options",
    "load_settings",
    "load_sink_settings",
    "settings_table",
    "sink_settings_table",
    "unknown_env_vars",
]
