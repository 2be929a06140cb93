"""The sink's settings: validated apart from the processor's, listed in the README."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.cli.sink import main as sink_main
from streamer.config import (
    load_settings,
    load_sink_settings,
    sink_settings_table,
    unknown_env_vars,
)
from streamer.errors import ConfigError
from streamer.sink.metrics import sink_metrics_table

README = Path(__file__).parents[3] / "README.md"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("STREAMER_"):
            monkeypatch.delenv(name)


def test_defaults_and_group() -> None:
    sink = load_sink_settings()
    assert sink.fhir_base_url is None and sink.sink_dlq_topic == "fhir.bundles.dlq"
    assert sink.group_for(load_settings(group_id="g")) == "g-sink"
    assert load_sink_settings(sink_group_id="mine").group_for(load_settings()) == "mine"


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMER_FHIR_BASE_URL", "https://fhir.example/r4b/")
    monkeypatch.setenv("STREAMER_FHIR_TOKEN", "t0ken")
    sink = load_sink_settings()
    assert sink.fhir_base_url == "https://fhir.example/r4b"
    assert sink.fhir_token is not None and sink.fhir_token.get_secret_value() == "t0ken"
    assert "t0ken" not in repr(sink)
    assert unknown_env_vars() == []


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"fhir_base_url": "ftp://x"}, "STREAMER_FHIR_BASE_URL"),
        ({"fhir_base_url": "fhir.example"}, "STREAMER_FHIR_BASE_URL"),
        ({"fhir_username": "u"}, "fhir_username and fhir_password"),
        ({"fhir_token": "t", "fhir_username": "u", "fhir_password": "p"}, "either fhir_token"),
        ({"fhir_retry_max_seconds": 0}, "STREAMER_FHIR_RETRY_MAX_SECONDS"),
        ({"fhir_ca_file": "/no/such/ca.pem"}, "STREAMER_FHIR_CA_FILE"),
    ],
)
def test_bad_values_name_the_variable(overrides: dict[str, object], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        load_sink_settings(**overrides)


def test_the_command_needs_a_base_url() -> None:
    with pytest.raises(ConfigError, match="--fhir-base-url"):
        sink_main([])


def test_readme_lists_the_sink_settings_and_metrics() -> None:
    text = README.read_text()
    assert sink_settings_table() in text
    assert sink_metrics_table() in text
