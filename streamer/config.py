"""Runtime settings of the stream processor: STREAMER_* environment variables, frozen, built once."""

from __future__ import annotations

import zoneinfo
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamer.errors import ConfigError
from streamer.fhir.options import MappingOptions

ENV_PREFIX = "STREAMER_"


class Settings(BaseSettings):
    """Every field is one STREAMER_<NAME> variable; the README table lists exactly these."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="ignore", case_sensitive=False
    )

    bootstrap_servers: str = Field(
        "localhost:9092",
        min_length=1,
        description="Kafka bootstrap servers, comma-separated host:port.",
    )
    input_topic: str = Field(
        "dicom.instances",
        min_length=1,
        description="Topic of DICOM JSON instances and end-of-study markers.",
    )
    output_topic: str = Field(
        "fhir.bundles", min_length=1, description="Topic the FHIR transaction Bundles go to."
    )
    dlq_topic: str = Field(
        "dicom.instances.dlq", min_length=1, description="Dead-letter topic for unusable input."
    )
    group_id: str = Field(
        "streamer",
        min_length=1,
        description="Consumer group id; processes with the same id share partitions.",
    )
    client_id: str = Field(
        "streamer", min_length=1, description="Kafka client id prefix (shows in broker logs)."
    )
    study_timeout_seconds: float = Field(
        300.0,
        gt=0,
        description="Close a study after this much inactivity (record time, survives restarts).",
    )
    reopen_window_seconds: float = Field(
        900.0,
        ge=0,
        description="How long a closed study is kept so a late instance can reopen it; later instances go to the DLQ.",
    )
    timer_interval_seconds: float = Field(
        1.0, gt=0, le=60, description="How often due studies are checked when no records arrive."
    )
    commit_interval_seconds: float = Field(
        5.0, gt=0, description="Offsets are committed at least this often (and after publishing)."
    )
    dicom_timezone: str | None = Field(
        None,
        description="IANA zone for DICOM dates/times without TimezoneOffsetFromUTC (0008,0201).",
    )
    add_instances: bool = Field(False, description="Emit ImagingStudy.series.instance entries.")
    add_vital_signs: bool = Field(True, description="Emit body weight/height Observations.")
    profile: Literal["core", "mii"] = Field(
        "core", description="'mii' adds the MII-KDS Bildgebung profiles."
    )
    wado_base_url: str | None = Field(
        None, description="DICOMweb WADO-RS base URL; adds an Endpoint resource."
    )
    create_topics: bool = Field(
        True,
        description="Create missing topics at startup; when false, missing topics are an error.",
    )
    topic_partitions: int = Field(
        3, ge=1, description="Partitions of created topics (output/DLQ follow the input topic)."
    )
    topic_replication_factor: int = Field(
        1, ge=1, description="Replication factor of created topics."
    )
    idempotent_producer: bool = Field(
        True,
        description="Idempotent producer (needs Apache Kafka; set false for brokers such as Tansu).",
    )
    isolation_level: Literal["read_committed", "read_uncommitted"] = Field(
        "read_committed",
        description="What the consumer reads of transactional producers' records.",
    )
    compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "zstd", description="Compression of output and DLQ records."
    )
    max_bundle_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="Largest record the producer sends (also max.message.bytes of created output topics).",
    )
    max_poll_records: int = Field(500, ge=1, description="Records fetched per poll.")
    session_timeout_ms: int = Field(10_000, ge=1000, description="Consumer group session timeout.")
    heartbeat_interval_ms: int = Field(
        3_000, ge=100, description="Consumer group heartbeat interval."
    )
    max_poll_interval_ms: int = Field(
        300_000, ge=1000, description="Longest gap between polls before the group evicts us."
    )
    shutdown_timeout_seconds: float = Field(
        10.0, gt=0, description="Budget for flushing and committing on SIGTERM."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level."
    )
    log_format: Literal["json", "text"] = Field("json", description="Log line format.")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("dicom_timezone", "wado_base_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("dicom_timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _distinct_topics(self) -> Settings:
        topics = [self.input_topic, self.output_topic, self.dlq_topic]
        if len(set(topics)) != 3:
            raise ValueError("input, output and DLQ topics must be three different topics")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be below session_timeout_ms")
        return self

    def mapping_options(self) -> MappingOptions:
        """The mapping part of the settings."""
        return MappingOptions(
            dicom_timezone=self.dicom_timezone,
            add_instances=self.add_instances,
            add_vital_signs=self.add_vital_signs,
            profile=self.profile,
            wado_base_url=self.wado_base_url,
        )


def load_settings(**overrides: object) -> Settings:
    """Read the environment (plus overrides); a bad value raises ConfigError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(part) for part in err["loc"])
            name = f"{ENV_PREFIX}{field.upper()}" if field else "settings"
            problems.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid settings: " + "; ".join(problems)) from exc


# Variables read by tools outside Settings (tests, local brokers); not typos.
_KNOWN_OTHER_VARS = frozenset(
    {
        "STREAMER_TEST_BROKER",
        "STREAMER_CACHE_DIR",
        "STREAMER_KAFKA_VERSION",
        "STREAMER_KAFKA_JVM_OPTS",
    }
)


def unknown_env_vars(environ: dict[str, str]) -> list[str]:
    """STREAMER_* variables that match no setting (likely typos), so startup can warn about them."""
    fields = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    return sorted(
        key
        for key in environ
        if key.upper().startswith(ENV_PREFIX)
        and key.upper() not in fields
        and key.upper() not in _KNOWN_OTHER_VARS
    )
