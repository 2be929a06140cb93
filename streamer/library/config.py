"""The library's config dict (the seed dicom2fhir's keys, plus ours) -> frozen options.

Accepted keys, nested (``{"generator": {"imaging_study": {"add_instances": True}}}``, as the seed read them
with ``get_or``) or flat with dots (``{"generator.imaging_study.add_instances": True}``), or mixed:

=============================================  ==========================  ========================================
key                                            type (default)              effect
=============================================  ==========================  ========================================
``dicom_timezone``                             IANA zone name (None)       zone for DA/TM when (0008,0201) is absent
``generator.imaging_study.add_instances``      bool (False)                emit ``ImagingStudy.series.instance[]``
``generator.imaging_study.add_instance``       bool                        the seed README's spelling of the above
``generator.observation.add_vital_signs``      bool (True)                 body weight / height Observations
``id_function``                                callable (None)             ``f(resource_type, ds, extra="") -> id``
``profile``                                    ``"core"``/``"mii"``        add the MII-KDS Bildgebung profiles
``wado_base_url``                              http(s) URL (None)          add a DICOMweb WADO-RS Endpoint
``directory_parser.skip_invalid_files``        bool (True)                 ``from_directory`` only, see ``api``
=============================================  ==========================  ========================================

A value of ``None`` means "the default", as with the seed's ``get_or``. Anything else that is wrong (an
unknown key, a wrong type, an unknown time zone, the same key twice with different values) raises
:class:`streamer.errors.ConfigError` naming the key. The caller's dict is only read, never changed.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streamer.errors import ConfigError
from streamer.fhir.options import MappingOptions

_TIMEZONE: Final = "dicom_timezone"
_ADD_INSTANCES: Final = "generator.imaging_study.add_instances"
_ADD_INSTANCE_SEED_README: Final = "generator.imaging_study.add_instance"
_ADD_VITAL_SIGNS: Final = "generator.observation.add_vital_signs"
_ID_FUNCTION: Final = "id_function"
_PROFILE: Final = "profile"
_WADO_BASE_URL: Final = "wado_base_url"
_SKIP_INVALID_FILES: Final = "directory_parser.skip_invalid_files"

#: Every leaf key the library understands (dotted form).
KNOWN_KEYS: Final[frozenset[str]] = frozenset(
    {
        _TIMEZONE,
        _ADD_INSTANCES,
        _ADD_INSTANCE_SEED_README,
        _ADD_VITAL_SIGNS,
        _ID_FUNCTION,
        _PROFILE,
        _WADO_BASE_URL,
        _SKIP_INVALID_FILES,
    }
)
# Dotted prefixes that group leaf keys (may be given as nested mappings).
_GROUPS: Final[frozenset[str]] = frozenset(
    prefix
    for key in KNOWN_KEYS
    for prefix in (".".join(key.split(".")[:n]) for n in range(1, key.count(".") + 1))
)
_PROFILES: Final = ("core", "mii")


@dataclass(frozen=True, slots=True)
class LibraryConfig:
    """The parsed library config: the mapping options plus the directory reader's switches."""

    mapping: MappingOptions = field(default_factory=MappingOptions)
    skip_invalid_files: bool = (
        True  # False: an unreadable / non-DICOM file raises instead of being skipped
    )


def parse_config(config: Mapping[str, Any] | None) -> LibraryConfig:
    """Check a seed-style config dict and turn it into a :class:`LibraryConfig`.

    Args:
        config: ``None``, or a mapping with the keys listed in this module's docstring (nested or dotted).

    Raises:
        ConfigError: an unknown key, a value of the wrong type or an invalid value; the message names the key.
    """
    values = _flatten(config)

    add_instances = _bool(values, _ADD_INSTANCES)
    add_instance = _bool(values, _ADD_INSTANCE_SEED_README)
    if add_instances is not None and add_instance is not None and add_instances != add_instance:
        raise ConfigError(
            f"config keys {_ADD_INSTANCES!r} and {_ADD_INSTANCE_SEED_README!r} (the same setting) "
            f"disagree: {add_instances!r} vs {add_instance!r}"
        )
    if add_instances is None:
        add_instances = add_instance
    add_vital_signs = _bool(values, _ADD_VITAL_SIGNS)
    skip_invalid = _bool(values, _SKIP_INVALID_FILES)

    options = MappingOptions(
        dicom_timezone=_timezone(values.get(_TIMEZONE)),
        add_instances=bool(add_instances) if add_instances is not None else False,
        add_vital_signs=add_vital_signs if add_vital_signs is not None else True,
        id_function=_id_function(values.get(_ID_FUNCTION)),
        profile=_profile(values.get(_PROFILE)),
        wado_base_url=_wado_base_url(values.get(_WADO_BASE_URL)),
    )
    return LibraryConfig(
        mapping=options, skip_invalid_files=skip_invalid if skip_invalid is not None else True
    )


def options_from_config(config: Mapping[str, Any] | None) -> MappingOptions:
    """The :class:`MappingOptions` for a seed-style config dict (see :func:`parse_config`)."""
    return parse_config(config).mapping


# --- parsing helpers ----------------------------------------------------------------------------------


def _flatten(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Nested and/or dotted keys -> ``{dotted_key: value}``; unknown keys and clashes raise ConfigError."""
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise ConfigError(f"config must be a dict (mapping), not {type(config).__name__}")
    out: dict[str, Any] = {}
    _walk(config, "", out)
    return out


def _walk(node: Mapping[Any, Any], prefix: str, out: dict[str, Any]) -> None:
    for raw_key, value in node.items():
        if not isinstance(raw_key, str):
            raise ConfigError(
                f"config key {raw_key!r} under {prefix or 'the top level'!r} is not a str"
            )
        key = f"{prefix}{raw_key}"
        if key in KNOWN_KEYS:
            if key in out and out[key] is not value and out[key] != value:
                raise ConfigError(f"config key {key!r} is given twice with different values")
            out[key] = value
        elif key in _GROUPS:
            if value is None:
                continue  # get_or semantics: None means "use the defaults"
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"config key {key!r} must be a dict of settings, not {type(value).__name__}"
                )
            _walk(value, f"{key}.", out)
        else:
            raise ConfigError(_unknown_key_message(key))


def _unknown_key_message(key: str) -> str:
    close = difflib.get_close_matches(key, sorted(KNOWN_KEYS | _GROUPS), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    known = ", ".join(sorted(KNOWN_KEYS))
    return f"unknown config key {key!r}{hint} (known keys: {known})"


def _bool(values: Mapping[str, Any], key: str) -> bool | None:
    value = values.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise ConfigError(f"config key {key!r} must be true or false, not {value!r}")


def _timezone(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(
            f"config key {_TIMEZONE!r} must be an IANA time zone name such as 'Europe/Berlin', "
            f"not {type(value).__name__}"
        )
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ConfigError(
            f"config key {_TIMEZONE!r}: {value!r} is not an IANA time zone name "
            "(examples: 'Europe/Berlin', 'UTC', 'America/New_York')"
        ) from exc
    return value


def _id_function(value: Any) -> Any:
    if value is None or callable(value):
        return value
    raise ConfigError(
        f"config key {_ID_FUNCTION!r} must be a callable "
        f"f(resource_type, ds, extra='') -> str, not {type(value).__name__}"
    )


def _profile(value: Any) -> Literal["core", "mii"]:
    if value is None:
        return "core"
    if value not in _PROFILES:
        raise ConfigError(f"config key {_PROFILE!r} must be 'core' or 'mii', not {value!r}")
    return cast(Literal["core", "mii"], value)


def _wado_base_url(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")) or " " in value:
        raise ConfigError(
            f"config key {_WADO_BASE_URL!r} must be an http(s) URL such as "
            f"'https://pacs.example.org/dicom-web', not {value!r}"
        )
    return value
