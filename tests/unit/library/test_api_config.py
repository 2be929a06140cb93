"""The library config dict: the seed's keys (nested or dotted), ours, and clear errors (B16, B19, B21)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from streamer.errors import ConfigError
from streamer.fhir.instance import DatasetView
from streamer.fhir.options import MappingOptions
from streamer.library.config import KNOWN_KEYS, options_from_config, parse_config


def _id(resource_type: str, ds: DatasetView, extra: str = "") -> str:
    return f"{resource_type.lower()}-x{extra}"


def test_none_and_empty_give_the_defaults() -> None:
    assert options_from_config(None) == MappingOptions()
    assert options_from_config({}) == MappingOptions()
    assert parse_config(None).skip_invalid_files is True


def test_seed_readme_config_nested() -> None:
    cfg = {
        "dicom_timezone": "Europe/Berlin",
        "generator": {
            "imaging_study": {"add_instances": True},
            "observation": {"add_vital_signs": False},
        },
        "id_function": _id,
    }
    opts = options_from_config(cfg)
    assert opts.dicom_timezone == "Europe/Berlin"
    assert opts.add_instances is True
    assert opts.add_vital_signs is False
    assert opts.id_function is _id


def test_flat_dotted_keys_work_like_nested() -> None:
    flat = {
        "generator.imaging_study.add_instances": True,
        "generator.observation.add_vital_signs": False,
        "directory_parser.skip_invalid_files": False,
    }
    nested = {
        "generator": {
            "imaging_study": {"add_instances": True},
            "observation": {"add_vital_signs": False},
        },
        "directory_parser": {"skip_invalid_files": False},
    }
    assert parse_config(flat) == parse_config(nested)
    assert parse_config(flat).skip_invalid_files is False
    # mixed: a group given as a dict with a dotted sub-key
    assert options_from_config({"generator": {"imaging_study.add_instances": True}}).add_instances


def test_seed_readme_misspelling_add_instance_is_accepted() -> None:
    """B21: the seed README and tests say `add_instance`; the seed ignored it, we honour it."""
    assert options_from_config(
        {"generator": {"imaging_study": {"add_instance": True}}}
    ).add_instances
    assert options_from_config({"generator.imaging_study.add_instance": True}).add_instances
    both = {"generator": {"imaging_study": {"add_instance": True, "add_instances": True}}}
    assert options_from_config(both).add_instances


def test_add_instance_and_add_instances_disagreeing_is_an_error() -> None:
    cfg = {"generator": {"imaging_study": {"add_instance": True, "add_instances": False}}}
    with pytest.raises(ConfigError, match="add_instance"):
        options_from_config(cfg)


def test_our_keys() -> None:
    opts = options_from_config(
        {"profile": "mii", "wado_base_url": "https://pacs.example.org/dicom-web"}
    )
    assert opts.profile == "mii"
    assert opts.wado_base_url == "https://pacs.example.org/dicom-web"


def test_none_values_mean_default_like_the_seeds_get_or() -> None:
    cfg = {"dicom_timezone": None, "generator": None, "profile": None, "id_function": None}
    assert options_from_config(cfg) == MappingOptions()


@pytest.mark.parametrize(
    ("cfg", "named"),
    [
        ({"dicom_timezne": "UTC"}, "dicom_timezne"),
        (
            {"generator": {"imaging_study": {"add_instancess": True}}},
            "generator.imaging_study.add_instancess",
        ),
        ({"generator.observation.vital_signs": True}, "generator.observation.vital_signs"),
        ({"kafka": {}}, "kafka"),
    ],
)
def test_unknown_key_is_an_error_naming_it(cfg: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=f"'{named}'"):
        options_from_config(cfg)


def test_unknown_key_suggests_the_close_one() -> None:
    with pytest.raises(ConfigError, match="did you mean 'dicom_timezone'"):
        options_from_config({"dicom_timezon": "UTC"})


@pytest.mark.parametrize("zone", ["Mars/Base", "+01:00", "", "europe/berlin", "../etc/passwd"])
def test_invalid_time_zone_is_a_config_error(zone: str) -> None:
    """B16: the seed left the datetime naive and crashed later in validation."""
    with pytest.raises(ConfigError, match="dicom_timezone"):
        options_from_config({"dicom_timezone": zone})


@pytest.mark.parametrize(
    ("cfg", "named"),
    [
        ({"dicom_timezone": 1}, "dicom_timezone"),
        ({"generator": {"imaging_study": {"add_instances": "yes"}}}, "add_instances"),
        ({"generator": {"observation": {"add_vital_signs": 0}}}, "add_vital_signs"),
        ({"generator": True}, "generator"),
        ({"generator": {"imaging_study": ["add_instances"]}}, "generator.imaging_study"),
        ({"id_function": "sha256"}, "id_function"),
        ({"profile": "MII-KDS"}, "profile"),
        ({"wado_base_url": "pacs.example.org"}, "wado_base_url"),
        ({"directory_parser": {"skip_invalid_files": "false"}}, "skip_invalid_files"),
    ],
)
def test_wrong_value_is_an_error_naming_the_key(cfg: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        options_from_config(cfg)


def test_same_key_twice_with_different_values_is_an_error() -> None:
    cfg = {
        "generator.observation.add_vital_signs": True,
        "generator": {"observation": {"add_vital_signs": False}},
    }
    with pytest.raises(ConfigError, match="given twice"):
        options_from_config(cfg)


def test_non_mapping_config_is_an_error() -> None:
    with pytest.raises(ConfigError):
        options_from_config(["dicom_timezone"])  # type: ignore[arg-type]


def test_callers_dict_is_never_mutated() -> None:
    """B19: the seed inserted `id_function` into the caller's dict (and into its shared default)."""
    cfg: dict[str, Any] = {
        "dicom_timezone": "Europe/Berlin",
        "generator": {"imaging_study": {"add_instance": True}},
        "id_function": _id,
    }
    before = copy.deepcopy(cfg)
    parse_config(cfg)
    parse_config(cfg)
    assert cfg == before
    assert "id_function" in cfg and cfg["generator"] == {"imaging_study": {"add_instance": True}}


def test_known_keys_are_the_documented_ones() -> None:
    assert {
        "dicom_timezone",
        "generator.imaging_study.add_instances",
        "generator.imaging_study.add_instance",
        "generator.observation.add_vital_signs",
        "id_function",
        "profile",
        "wado_base_url",
        "directory_parser.skip_invalid_files",
    } == KNOWN_KEYS
