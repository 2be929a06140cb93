"""The ``sink`` command's own STREAMER_* settings (the processor neither reads nor validates them)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamer.config.settings import ENV_PREFIX, Settings, config_error


class SinkSettings(BaseSettings):
    """The ``sink`` command's own STREAMER_* variables; its Kafka side reads Settings as well.

    Kept apart from Settings, so the processor neither reads nor validates them; the README's sink
    section lists exactly these (``sink_settings_table()``).
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="ignore", case_sensitive=False
    )

    fhir_base_url: str | None = Field(
        None,
        description="Base URL of the FHIR server the Bundles are posted to (or `--fhir-base-url`).",
    )
    fhir_token: SecretStr | None = Field(
        None, description="Bearer token sent with every request (never logged)."
    )
    fhir_username: str | None = Field(
        None, description="User for HTTP basic auth (with STREAMER_FHIR_PASSWORD)."
    )
    fhir_password: SecretStr | None = Field(
        None, description="Password for HTTP basic auth (never logged)."
    )
    fhir_ca_file: str | None = Field(
        None,
        description="PEM CA certificates the FHIR server's certificate must chain to (default: the system's).",
    )
    fhir_timeout_seconds: float = Field(
        30.0, gt=0, description="Timeout of one request to the FHIR server (connect, send, answer)."
    )
    fhir_retry_initial_seconds: float = Field(
        0.5, gt=0, description="First wait before retrying a POST (then doubled, with jitter)."
    )
    fhir_retry_max_seconds: float = Field(
        30.0,
        gt=0,
        description="Longest wait between retries (a longer Retry-After from the server is honoured).",
    )
    sink_group_id: str | None = Field(
        None, description="Consumer group of the sink (or `--group`); default '<group id>-sink'."
    )
    sink_dlq_topic: str = Field(
        "fhir.bundles.dlq",
        min_length=1,
        description="Where Bundles the FHIR server rejects go, with its OperationOutcome.",
    )

    @field_validator(
        "fhir_base_url",
        "fhir_token",
        "fhir_username",
        "fhir_password",
        "fhir_ca_file",
        "sink_group_id",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("fhir_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        scheme, sep, rest = value.partition("://")
        if scheme.lower() not in ("http", "https") or not sep or not rest or " " in rest:
            raise ValueError(f"not an http(s) URL: {value!r}")
        return value

    @field_validator("fhir_ca_file")
    @classmethod
    def _ca_file_exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"no such file: {value!r}")
        return value

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> SinkSettings:
        if (self.fhir_username is None) != (self.fhir_password is None):
            raise ValueError("fhir_username and fhir_password go together (HTTP basic auth)")
        if self.fhir_token is not None and self.fhir_username is not None:
            raise ValueError("set either fhir_token (bearer) or fhir_username/fhir_password")
        return self

    def group_for(self, settings: Settings) -> str:
        """The sink's consumer group: STREAMER_SINK_GROUP_ID, else '<STREAMER_GROUP_ID>-sink'."""
        return self.sink_group_id or f"{settings.group_id}-sink"


def load_sink_settings(**overrides: object) -> SinkSettings:
    """The sink's settings from the environment (plus overrides); errors name the variable."""
    try:
        return SinkSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise config_error(exc) from exc
