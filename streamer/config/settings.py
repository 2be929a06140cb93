"""Runtime settings of the stream processor: STREAMER_* environment variables, frozen, built once."""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamer.errors import ConfigError
from streamer.fhir.options import MappingOptions

ENV_PREFIX = "STREAMER_"

# Accepted in any case ("info" too); logging itself wants the upper-case name.
LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR"],
    BeforeValidator(lambda value: value.upper() if isinstance(value, str) else value),
]

# Accepted in any case ("sasl_ssl", "scram-sha-256") and with surrounding blanks.
SecurityProtocol = Annotated[
    Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"],
    BeforeValidator(lambda value: value.strip().upper() if isinstance(value, str) else value),
]
SaslMechanism = Annotated[
    Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"],
    BeforeValidator(lambda value: value.strip().upper() if isinstance(value, str) else value),
]

_ENV_CONFIG = SettingsConfigDict(
    env_prefix=ENV_PREFIX, frozen=True, extra="ignore", case_sensitive=False
)


def _blank_is_none(value: object) -> object:
    """An empty or blank variable (``STREAMER_X=`` in a compose file) means unset."""
    return None if isinstance(value, str) and not value.strip() else value


def _known_zone(value: str | None) -> str | None:
    if value is not None:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
    return value


def _http_url(value: str | None) -> str | None:
    # The library's config refuses anything else too: an Endpoint needs an address it can use.
    if value is not None and (not value.startswith(("http://", "https://")) or " " in value):
        raise ValueError(
            f"must be an http(s) URL such as 'https://pacs.example/dicomweb', not {value!r}"
        )
    return value


# The mapping settings: declared once, used by Settings (the processor) and MappingSettings (convert).
_DICOM_TIMEZONE: Any = Field(
    None,
    description="IANA zone for DICOM dates/times without TimezoneOffsetFromUTC (0008,0201).",
)
_ADD_INSTANCES: Any = Field(False, description="Emit ImagingStudy.series.instance entries.")
_ADD_VITAL_SIGNS: Any = Field(True, description="Emit body weight/height Observations.")
_PROFILE: Any = Field("core", description="'mii' adds the MII-KDS Bildgebung profiles.")
_WADO_BASE_URL: Any = Field(
    None, description="DICOMweb WADO-RS base URL; adds an Endpoint resource."
)


class MappingSettings(BaseSettings):
    """The mapping settings alone, for ``convert``: the broker's, the state's and the rest are not read."""

    model_config = _ENV_CONFIG

    dicom_timezone: str | None = _DICOM_TIMEZONE
    add_instances: bool = _ADD_INSTANCES
    add_vital_signs: bool = _ADD_VITAL_SIGNS
    profile: Literal["core", "mii"] = _PROFILE
    wado_base_url: str | None = _WADO_BASE_URL

    @field_validator("dicom_timezone", "wado_base_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return _blank_is_none(value)

    @field_validator("dicom_timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return _known_zone(value)

    @field_validator("wado_base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _http_url(value)

    def mapping_options(self) -> MappingOptions:
        """The options every mapper reads."""
        return _mapping_options(self)


class Settings(BaseSettings):
    """Every field is one STREAMER_<NAME> variable; the README table lists exactly these."""

    model_config = _ENV_CONFIG

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
    security_protocol: SecurityProtocol = Field(
        "PLAINTEXT",
        description="How every Kafka client connects: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL.",
    )
    ssl_cafile: str | None = Field(
        None,
        description="PEM file of the CA certificates the brokers' certificates must chain to (default: the system's CAs).",
    )
    ssl_certfile: str | None = Field(
        None,
        description="PEM client certificate (chain) for brokers that require one (mutual TLS).",
    )
    ssl_keyfile: str | None = Field(
        None,
        description="PEM private key of STREAMER_SSL_CERTFILE (default: read from the certificate file).",
    )
    ssl_key_password: SecretStr | None = Field(
        None, description="Password of an encrypted client private key."
    )
    ssl_check_hostname: bool = Field(
        True, description="The broker's certificate must name the host connected to."
    )
    sasl_mechanism: SaslMechanism | None = Field(
        None, description="SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password (never logged).")
    study_timeout_seconds: float = Field(
        300.0,
        gt=0,
        description="Close a study after this much inactivity (record time, survives restarts).",
    )
    state_dir: str = Field(
        "./state",
        min_length=1,
        description="Local study store: one sub-directory per group and input partition.",
    )
    state_engine: Literal["rocksdb", "sqlite"] = Field(
        "rocksdb", description="Engine of the local study store (sqlite is the fallback)."
    )
    changelog_topic: str | None = Field(
        None,
        description="Compacted topic backing the study store; default '<group id>.study-state'.",
    )
    state_retention_days: float = Field(
        30.0,
        gt=0,
        description="How long a closed study is kept so a late instance reopens it; later ones go to the DLQ.",
    )
    timer_interval_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Longest wait between checks for due studies when no records arrive "
        "(the loop also wakes at the next inactivity deadline).",
    )
    commit_interval_seconds: float = Field(
        5.0, gt=0, description="Offsets are committed at least this often (and after publishing)."
    )
    dicom_timezone: str | None = _DICOM_TIMEZONE
    add_instances: bool = _ADD_INSTANCES
    add_vital_signs: bool = _ADD_VITAL_SIGNS
    profile: Literal["core", "mii"] = _PROFILE
    wado_base_url: str | None = _WADO_BASE_URL
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
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once",
        description="exactly_once: Bundles, dead letters, state and offsets in one transaction per partition.",
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
    max_record_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Input records larger than this go to the dead-letter topic.",
    )
    max_instances_per_study: int = Field(
        50_000,
        ge=1,
        description="Instances a study may hold; more go to the dead-letter topic.",
    )
    max_record_attempts: int = Field(
        2,
        ge=1,
        description="Starts in a row on which handling one record may fail unexpectedly (an "
        "internal error, not bad input) before it goes to the dead-letter topic (RecordFailedError).",
    )
    max_poll_records: int = Field(500, ge=1, description="Records fetched per poll.")
    fetch_max_wait_ms: int = Field(
        100,
        ge=1,
        le=30_000,
        description="Longest wait of an idle fetch. Kafka answers as soon as records arrive; Tansu "
        "only when the wait ends, so lower it there (e.g. 10) for low latency.",
    )
    session_timeout_ms: int = Field(
        6_000,
        ge=1000,
        description="Consumer group session timeout: how long a crashed process holds its partitions.",
    )
    heartbeat_interval_ms: int = Field(
        1_500, ge=100, description="Consumer group heartbeat interval."
    )
    group_instance_id: str | None = Field(
        None,
        description="Static group membership id (one per process, stable across restarts).",
    )
    partition_assignment: Literal["group", "all"] = Field(
        "group",
        description="group: the processes of the group share the input partitions (the broker "
        "assigns them). all: this process reads every partition without joining the group (offsets "
        "are still committed as the group); for a single process, it skips the group join (3 s on "
        "Tansu) and stops if a group member appears. Not with exactly_once.",
    )
    max_poll_interval_ms: int = Field(
        300_000, ge=1000, description="Longest gap between polls before the group evicts us."
    )
    shutdown_timeout_seconds: float = Field(
        10.0, gt=0, description="Budget for flushing and committing on SIGTERM."
    )
    http_port: int = Field(
        8080,
        ge=0,
        le=65535,
        description="Port of /metrics, /healthz and /readyz; 0 turns the HTTP server off.",
    )
    http_host: str = Field(
        "0.0.0.0",  # probes and scrapers reach the container from outside
        min_length=1,
        description="Address the HTTP server listens on.",
    )
    log_level: LogLevel = Field("INFO", description="Log level.")
    log_format: Literal["json", "text"] = Field("json", description="Log line format.")
    malloc_mmap_threshold_bytes: int = Field(
        128 * 1024,
        ge=0,
        le=32 * 1024 * 1024,
        description="C allocations from this size up get their own memory map, returned when freed "
        "(glibc; fixed, so that its sliding default does not let large buffers fragment the heap). "
        "0 keeps glibc's default.",
    )

    @field_validator(
        "dicom_timezone",
        "wado_base_url",
        "changelog_topic",
        "group_instance_id",
        "ssl_cafile",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_key_password",
        "sasl_mechanism",
        "sasl_username",
        "sasl_password",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return _blank_is_none(value)

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile")
    @classmethod
    def _file_exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"no such file: {value!r}")
        return value

    @field_validator("dicom_timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return _known_zone(value)

    @field_validator("wado_base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _http_url(value)

    @property
    def changelog(self) -> str:
        """The changelog topic's name."""
        return self.changelog_topic or f"{self.group_id}.study-state"

    @model_validator(mode="after")
    def _distinct_topics(self) -> Settings:
        topics = [self.input_topic, self.output_topic, self.dlq_topic, self.changelog]
        if len(set(topics)) != 4:
            raise ValueError("input, output, DLQ and changelog topics must all be different")
        if self.processing_guarantee == "exactly_once" and (
            self.isolation_level != "read_committed" or not self.idempotent_producer
        ):
            raise ValueError(
                "processing_guarantee exactly_once needs isolation_level read_committed "
                "and idempotent_producer true (Apache Kafka, not Tansu)"
            )
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be below session_timeout_ms")
        if self.partition_assignment == "all" and (
            self.processing_guarantee == "exactly_once" or self.group_instance_id is not None
        ):
            raise ValueError(
                "partition_assignment all joins no group: it cannot be used with "
                "processing_guarantee exactly_once (fencing needs the group) or a group_instance_id"
            )
        self._check_security()
        return self

    def _check_security(self) -> None:
        """SASL needs its three settings; TLS and SASL settings need a protocol that uses them."""
        protocol = self.security_protocol
        sasl = {
            "STREAMER_SASL_MECHANISM": self.sasl_mechanism,
            "STREAMER_SASL_USERNAME": self.sasl_username,
            "STREAMER_SASL_PASSWORD": self.sasl_password,
        }
        tls = {
            "STREAMER_SSL_CAFILE": self.ssl_cafile,
            "STREAMER_SSL_CERTFILE": self.ssl_certfile,
            "STREAMER_SSL_KEYFILE": self.ssl_keyfile,
            "STREAMER_SSL_KEY_PASSWORD": self.ssl_key_password,
        }
        if protocol.startswith("SASL_"):
            missing = [name for name, value in sasl.items() if value is None]
            if missing:
                raise ValueError(
                    f"STREAMER_SECURITY_PROTOCOL={protocol} needs {', '.join(missing)}"
                )
        elif given := [name for name, value in sasl.items() if value is not None]:
            raise ValueError(
                f"{', '.join(given)} set but STREAMER_SECURITY_PROTOCOL={protocol} uses no SASL "
                "(SASL_PLAINTEXT or SASL_SSL does)"
            )
        if not protocol.endswith("SSL") and (
            given := [name for name, value in tls.items() if value is not None]
        ):
            raise ValueError(
                f"{', '.join(given)} set but STREAMER_SECURITY_PROTOCOL={protocol} uses no TLS "
                "(SSL or SASL_SSL does)"
            )
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ValueError("STREAMER_SSL_KEYFILE needs STREAMER_SSL_CERTFILE")
        if self.ssl_key_password is not None and self.ssl_certfile is None:
            raise ValueError("STREAMER_SSL_KEY_PASSWORD needs STREAMER_SSL_CERTFILE")

    def mapping_options(self) -> MappingOptions:
        """The mapping part of the settings."""
        return _mapping_options(self)


def load_settings(**overrides: object) -> Settings:
    """Read the environment (plus overrides); a bad value raises ConfigError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise config_error(exc) from exc


def _mapping_options(settings: MappingSettings | Settings) -> MappingOptions:
    return MappingOptions(
        dicom_timezone=settings.dicom_timezone,
        add_instances=settings.add_instances,
        add_vital_signs=settings.add_vital_signs,
        profile=settings.profile,
        wado_base_url=settings.wado_base_url,
    )


def load_mapping_options() -> MappingOptions:
    """The STREAMER_* mapping settings alone (what ``convert`` reads); the others are not looked at.

    A bad value raises ConfigError naming the variable, as :func:`load_settings` does.
    """
    try:
        return MappingSettings().mapping_options()
    except ValidationError as exc:
        raise config_error(exc) from exc


class _LogLevelOnly(BaseSettings):
    """STREAMER_LOG_LEVEL alone, for the commands that do not need (or validate) the rest."""

    model_config = _ENV_CONFIG

    log_level: LogLevel | None = None


def load_log_level(default: LogLevel) -> LogLevel:
    """STREAMER_LOG_LEVEL, else ``default``; a bad value raises ConfigError naming the variable."""
    try:
        level = _LogLevelOnly().log_level
    except ValidationError as exc:
        raise config_error(exc) from exc
    return default if level is None else level


def config_error(exc: ValidationError) -> ConfigError:
    problems = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"])
        name = f"{ENV_PREFIX}{field.upper()}" if field else "settings"
        problems.append(f"{name}: {err['msg']}")
    return ConfigError("invalid settings: " + "; ".join(problems))
