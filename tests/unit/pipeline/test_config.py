import re
from pathlib import Path

import pytest

from streamer.config import (
    MappingSettings,
    Settings,
    SinkSettings,
    load_mapping_options,
    load_settings,
    settings_table,
    unknown_env_vars,
)
from streamer.errors import ConfigError

README = Path(__file__).parents[3] / "README.md"


def test_defaults_match_the_public_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("STREAMER_"):
            monkeypatch.delenv(key)
    s = load_settings()
    assert s.bootstrap_servers == "localhost:9092"
    assert (s.input_topic, s.output_topic, s.dlq_topic) == (
        "dicom.instances",
        "fhir.bundles",
        "dicom.instances.dlq",
    )
    assert s.group_id == "streamer"
    assert s.study_timeout_seconds == 300
    assert s.fetch_max_wait_ms == 100


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMER_STUDY_TIMEOUT_SECONDS", "12.5")
    monkeypatch.setenv("STREAMER_ADD_INSTANCES", "true")
    monkeypatch.setenv("STREAMER_DICOM_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("STREAMER_LOG_LEVEL", "debug")
    monkeypatch.setenv("STREAMER_FETCH_MAX_WAIT_MS", "10")
    s = load_settings()
    assert s.study_timeout_seconds == 12.5
    assert s.fetch_max_wait_ms == 10
    assert s.add_instances is True
    assert s.log_level == "DEBUG"
    options = s.mapping_options()
    assert options.dicom_timezone == "Europe/Berlin"
    assert options.add_instances is True


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STREAMER_STUDY_TIMEOUT_SECONDS", "soon"),
        ("STREAMER_STUDY_TIMEOUT_SECONDS", "0"),
        ("STREAMER_DICOM_TIMEZONE", "Mars/Base"),
        ("STREAMER_ADD_VITAL_SIGNS", "perhaps"),
        ("STREAMER_TOPIC_PARTITIONS", "0"),
        ("STREAMER_PROFILE", "fancy"),
        ("STREAMER_WADO_BASE_URL", "pacs.example/dicomweb"),
        ("STREAMER_LOG_LEVEL", "LOUD"),
        ("STREAMER_FETCH_MAX_WAIT_MS", "0"),
        ("STREAMER_PARTITION_ASSIGNMENT", "some"),
    ],
)
def test_bad_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_same_topic_twice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMER_OUTPUT_TOPIC", "dicom.instances")
    with pytest.raises(ConfigError, match="must all be different"):
        load_settings()


@pytest.mark.parametrize(
    "other",
    [
        {
            "processing_guarantee": "exactly_once",
            "isolation_level": "read_committed",
            "idempotent_producer": True,
        },
        {"group_instance_id": "streamer-1"},
    ],
)
def test_all_partitions_refuses_what_needs_the_group(other: dict[str, object]) -> None:
    assert load_settings(partition_assignment="all").partition_assignment == "all"
    with pytest.raises(ConfigError, match="partition_assignment all joins no group"):
        load_settings(partition_assignment="all", **other)


def test_typo_variables_are_reported() -> None:
    env = {
        "STREAMER_STUDY_TIMEOUT_SECOND": "3",
        "STREAMER_GROUP_ID": "g",
        "STREAMER_TEST_BROKER": "tansu",
    }
    assert unknown_env_vars(env) == ["STREAMER_STUDY_TIMEOUT_SECOND"]


def test_readme_settings_table_lists_exactly_the_settings() -> None:
    documented = set(re.findall(r"^\| `(STREAMER_[A-Z_]+)` \|", README.read_text(), flags=re.M))
    # The sink's own settings have their table in the sink's section (tests/unit/sink).
    names = (*Settings.model_fields, *SinkSettings.model_fields)
    expected = {f"STREAMER_{name.upper()}" for name in names}
    assert documented == expected
    # Defaults and meanings too: the table is the one settings_table() makes from the fields.
    assert settings_table() in README.read_text()


def test_mapping_settings_are_the_processors_own() -> None:
    # convert reads these; same variables, defaults, meanings and checks as the processor.
    for name, field in MappingSettings.model_fields.items():
        mine = Settings.model_fields[name]
        assert (field.annotation, field.default, field.description) == (
            mine.annotation,
            mine.default,
            mine.description,
        )
    assert set(MappingSettings.model_fields) == {
        "dicom_timezone",
        "add_instances",
        "add_vital_signs",
        "profile",
        "wado_base_url",
    }


def test_mapping_options_alone_skip_the_other_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMER_PROFILE", "mii")
    monkeypatch.setenv("STREAMER_WADO_BASE_URL", " ")  # blank: unset, as for the processor
    monkeypatch.setenv("STREAMER_SESSION_TIMEOUT_MS", "soon")  # not a mapping setting
    options = load_mapping_options()
    assert (options.profile, options.wado_base_url) == ("mii", None)
    with pytest.raises(ConfigError, match="STREAMER_SESSION_TIMEOUT_MS"):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STREAMER_DICOM_TIMEZONE", "Mars/Base"),
        ("STREAMER_ADD_INSTANCES", "perhaps"),
        ("STREAMER_PROFILE", "fancy"),
        ("STREAMER_WADO_BASE_URL", "ftp://pacs.example"),
    ],
)
def test_bad_mapping_setting_is_the_same_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as alone:
        load_mapping_options()
    with pytest.raises(ConfigError) as full:
        load_settings()
    assert str(alone.value) == str(full.value)
    assert str(alone.value).startswith(f"invalid settings: {variable}: ")
