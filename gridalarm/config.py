"""One typed settings object for every gridalarm process.

Values come, highest first, from keyword arguments (the CLI), ``GRIDALARM_*`` environment
variables, a TOML file named by ``GRIDALARM_CONFIG`` (or ``--config``), and the defaults below.
A wrong value raises :class:`ConfigError` with one line naming the setting and what it accepts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from gridalarm.kafka_auth import MECHANISMS, SECURITIES, Mechanism, Security
from gridalarm.timeutil import parse_duration

# The study's event kinds first, then the remaining common HTCondor job events, then `other`:
# 13 features, the study's input width. Unknown types count under `other`.
DEFAULT_FEATURES: tuple[str, ...] = (
    "ExecuteEvent",
    "JobAbortedEvent",
    "JobDisconnectedEvent",
    "JobEvictedEvent",
    "JobHeldEvent",
    "JobImageSizeEvent",
    "JobReconnectFailedEvent",
    "JobReconnectedEvent",
    "SubmitEvent",
    "JobTerminatedEvent",
    "JobReleaseEvent",
    "ShadowExceptionEvent",
    "other",
)

MIN_WINDOW_S = 1.0
MAX_WINDOW_S = 86_400.0


class ConfigError(ValueError):
    """A setting has a value it cannot take; the message is one line meant for an operator."""


class Settings(BaseSettings):
    """Everything a gridalarm process can be told. Immutable once built."""

    model_config = SettingsConfigDict(
        env_prefix="GRIDALARM_",
        frozen=True,
        extra="forbid",
        env_nested_delimiter=None,
    )

    kafka: str | None = Field(
        default=None,
        description="Kafka bootstrap servers (host:port[,host:port]); unset: the local broker",
    )
    kafka_security: Security = Field(
        default="plaintext",
        description="how clients reach Kafka: plaintext, ssl, sasl_plaintext or sasl_ssl",
    )
    kafka_sasl_mechanism: Mechanism = Field(
        default="SCRAM-SHA-256", description="SASL mechanism: SCRAM-SHA-256, SCRAM-SHA-512, PLAIN"
    )
    kafka_username: str | None = Field(default=None, description="SASL user name")
    kafka_password: SecretStr | None = Field(
        default=None, description="SASL password (never printed)"
    )
    kafka_ca: Path | None = Field(
        default=None,
        description="PEM CA file that signed the broker's TLS certificate; unset: the system's",
    )
    kafka_check_hostname: bool = Field(
        default=True, description="TLS: the broker's certificate must name the host dialled"
    )
    topic_prefix: str = Field(default="gridalarm", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    partitions: int = Field(default=8, ge=1, le=1024)
    replication: int = Field(default=1, ge=1, le=16)
    window: float = Field(default=3600.0, description="window size: 1s .. 1d, e.g. 1h, 5m, 60s")
    lateness: float = Field(default=30.0, description="allowed lateness, e.g. 30s; >= 0")
    idle_timeout: float | None = Field(
        default=None,
        description="live mode: advance an idle partition's watermark with the wall clock "
        "after this long without messages (e.g. 10s); unset: only events and heartbeats do",
    )
    max_future: float = Field(default=86_400.0, description="reject events this far ahead")
    max_message_bytes: int = Field(default=1_000_000, ge=1024)
    coalesce: float | None = Field(
        default=1.0,
        description="producers: counter events of one stream, type and window slot seen within "
        "this much wall time go out as one message with n (e.g. 1s, 250ms); off: one message "
        "per event",
    )
    # NoDecode: a comma list in GRIDALARM_FEATURES is split below, not parsed as JSON.
    features: Annotated[tuple[str, ...], NoDecode] = DEFAULT_FEATURES
    detector: str = Field(
        default="lstm-forecast",
        description="baseline, lstm-forecast, lstm-classifier or novelty "
        "(see gridalarm.models.registry)",
    )
    model: Path | None = Field(
        default=None,
        description="LSTM model artifact, or a folder of them (the newest is used and followed); "
        "unset: the artifact bundled with gridalarm",
    )
    model_poll: float = Field(default=30.0, description="seconds between looks for a new model")
    threshold: float = Field(default=50.0, ge=0, le=100, description="score that is anomalous")
    open_after: int | None = Field(
        default=None, ge=1,
        description="anomalous windows that open an alert (unset: the detector's own, 1 for "
        "novelty, 2 for the others)",
    )  # fmt: skip
    resolve_after: int = Field(default=2, ge=1, description="normal windows that end an alert")
    min_history: int = Field(default=12, ge=1, description="windows before a stream is scored")
    history: int = Field(default=168, ge=4, description="windows the baseline remembers")
    warmup: int = Field(
        default=104, ge=16, le=1_000_000,
        description="windows the novelty detector fits a stream on before scoring it",
    )  # fmt: skip
    target: str | None = Field(
        default=None,
        description="feature the novelty detector judges (e.g. a gauge); unset: the total "
        "of all features",
    )
    worker_id: str = Field(default="gridalarm-worker", description="Faust app id / group id")
    web_port: int = Field(default=6066, ge=0, le=65535)
    state_dir: Path = Field(default=Path(".state"))

    @field_validator(
        "window", "lateness", "max_future", "idle_timeout", "model_poll", mode="before"
    )
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return None if value is None or value == "" else parse_duration(value)

    @field_validator("coalesce", mode="before")
    @classmethod
    def _coalesce(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("off", "0")):
            return None
        seconds = parse_duration(value)
        if not 0 <= seconds <= 60:
            raise ValueError("must be off or a duration up to 60s, e.g. 1s or 250ms")
        return seconds or None

    @field_validator("kafka_security", mode="before")
    @classmethod
    def _security_name(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in SECURITIES:
            return value.strip().lower()
        if isinstance(value, str):
            raise ValueError(f"use one of {', '.join(SECURITIES)}")
        return value

    @field_validator("kafka_sasl_mechanism", mode="before")
    @classmethod
    def _mechanism_name(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().upper() in MECHANISMS:
            return value.strip().upper()
        if isinstance(value, str):
            raise ValueError(f"use one of {', '.join(MECHANISMS)}")
        return value

    @field_validator("kafka_username", "kafka_password", "kafka_ca", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("window")
    @classmethod
    def _window_range(cls, value: float) -> float:
        if not MIN_WINDOW_S <= value <= MAX_WINDOW_S:
            raise ValueError("must be between 1s and 1d")
        return value

    @field_validator("lateness", "max_future")
    @classmethod
    def _non_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError("must be >= 0")
        return value

    @field_validator("features", mode="before")
    @classmethod
    def _feature_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            value = [part.strip() for part in text.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _kafka_security_complete(self) -> Settings:
        security = self.kafka_security
        sasl = security.startswith("sasl_")
        if sasl and (not self.kafka_username or self.kafka_password is None):
            missing = "GRIDALARM_KAFKA_USERNAME" if not self.kafka_username else (
                "GRIDALARM_KAFKA_PASSWORD"
            )  # fmt: skip
            raise ValueError(
                f"kafka_security: {security} needs a user name and a password; set {missing}"
            )
        if not sasl and (self.kafka_username or self.kafka_password is not None):
            raise ValueError(
                f"kafka_username/kafka_password: set, but GRIDALARM_KAFKA_SECURITY is {security}"
                ", which sends no credentials; set it to sasl_ssl or sasl_plaintext, or unset them"
            )
        if self.kafka_ca is not None:
            if security not in ("ssl", "sasl_ssl"):
                raise ValueError(
                    f"kafka_ca: set, but GRIDALARM_KAFKA_SECURITY is {security} (no TLS); set it "
                    "to ssl or sasl_ssl, or unset GRIDALARM_KAFKA_CA"
                )
            if not self.kafka_ca.is_file():
                raise ValueError(
                    f"kafka_ca: no such file {str(self.kafka_ca)!r}; point GRIDALARM_KAFKA_CA at "
                    "the PEM file of the CA that signed the broker's certificate"
                )
        return self

    @model_validator(mode="after")
    def _features_unique(self) -> Settings:
        if not self.features:
            raise ValueError("features: needs at least one feature name")
        if len(set(self.features)) != len(self.features):
            raise ValueError("features: names must be unique")
        if self.target is not None and self.target not in self.features:
            raise ValueError(
                f"target: {self.target!r} is not one of the features; set GRIDALARM_TARGET to "
                "one of GRIDALARM_FEATURES or leave it unset (the total of all features)"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = os.environ.get("GRIDALARM_CONFIG")
        if path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    # Topic names live here so that producers, worker and tools agree on them.
    def topic(self, kind: str) -> str:
        """Name of the ``kind`` topic (``<prefix>.<kind>``): events, windows, scores, alerts,
        deadletter, silences or labels (gridalarm.topics.TOPIC_KINDS)."""
        return f"{self.topic_prefix}.{kind}"


def _one_line(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(part) for part in first.get("loc", ()))
    msg = first.get("msg", "invalid value").removeprefix("Value error, ")
    got = first.get("input")
    if loc == "kafka_password":
        got = {}  # a secret: never echoed
    if loc:
        env = f"GRIDALARM_{loc.upper()}"
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        return f"setting '{loc}' ({env}){shown}: {msg}"
    return f"settings: {msg}"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings; overrides whose value is None are ignored (unset CLI options)."""
    config_path = os.environ.get("GRIDALARM_CONFIG")
    if config_path and not Path(config_path).is_file():
        raise ConfigError(
            f"GRIDALARM_CONFIG={config_path!r}: no such file; point it at a TOML file or unset it"
        )
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as err:
        raise ConfigError(_one_line(err)) from None
    except ValueError as err:  # e.g. a TOML syntax error
        raise ConfigError(f"settings: {err}") from None
