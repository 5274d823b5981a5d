"""Settings every service shares, read from `AIKUBE_*` environment variables; each service subclasses it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "AIKUBE_"


class ConfigError(RuntimeError):
    """Settings are missing or invalid; the message names each environment variable."""


class ServiceSettings(BaseSettings):
    """Shared settings. Standard variables (PUBSUB_EMULATOR_HOST, OTEL_*, ADC) are left to the SDKs that read them."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", frozen=True, extra="ignore")

    project_id: str  # the Google Cloud project of the topics and subscriptions
    store: str  # object store URI: file:///folder (local) or gs://bucket/prefix
    warehouse: str  # warehouse URI: duckdb:///folder (local) or bigquery://project/dataset
    trace_exporter: Literal["none", "file", "otlp"] = "none"
    trace_dir: Path | None = None  # where the file exporter writes JSON-lines spans
    health_port: int | None = 8080  # /healthz and /readyz; unset to disable
    max_messages: int = 4  # flow control: messages in flight per subscription
    max_delivery_attempts: int = 5  # then the message is dead-lettered with the last error
    log_level: str = "INFO"


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S]) -> S:
    """Build settings from the environment, failing fast with one line per missing or invalid variable.

    Raises:
        ConfigError: naming each variable, e.g. `AIKUBE_PROJECT_ID: missing`.
    """
    try:
        return cls()
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_PREFIX}{'__'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            if err["loc"]
            else str(err["msg"]).removeprefix("Value error, ")  # a check across fields names its variables itself
            for err in exc.errors()
        )
        raise ConfigError(f"{cls.__name__} cannot start: {problems}") from None
