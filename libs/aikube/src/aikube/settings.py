"""Settings every service shares, read from `AIKUBE_*` environment variables; each service subclasses it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, TypeVar
from urllib.parse import urlparse

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "AIKUBE_"
STORE_URIS = "file:///folder or gs://bucket/prefix"
WAREHOUSE_URIS = "duckdb:///folder or bigquery://project/dataset"


class ConfigError(RuntimeError):
    """Settings are missing or invalid; the message names each environment variable."""


def check_store_uri(uri: str) -> str:
    """The URI if it names an object store the adapters can open.

    Raises:
        ValueError: another scheme, or a file:// URI without an absolute folder.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "file" and parsed.path.startswith("/") and parsed.netloc in ("", "localhost"):
        return uri
    if parsed.scheme == "gs" and parsed.netloc:
        return uri
    raise ValueError(f"unsupported object store URI {uri!r}: use {STORE_URIS}")


def check_warehouse_uri(uri: str) -> str:
    """The URI if it names a warehouse the adapters can open.

    Raises:
        ValueError: another scheme, a duckdb:// URI without an absolute folder, or a BigQuery URI that is not
            exactly bigquery://project/dataset.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "duckdb" and parsed.path.startswith("/") and not parsed.netloc:
        return uri
    if parsed.scheme == "bigquery":
        dataset = parsed.path.strip("/")
        if not parsed.netloc or not dataset or "/" in dataset:
            raise ValueError(f"invalid warehouse URI {uri!r}: use bigquery://project/dataset")
        return uri
    raise ValueError(f"unsupported warehouse URI {uri!r}: use {WAREHOUSE_URIS}")


StoreUri = Annotated[str, AfterValidator(check_store_uri)]
WarehouseUri = Annotated[str, AfterValidator(check_warehouse_uri)]
# `AIKUBE_HEALTH_PORT=` (empty) switches the endpoint off rather than failing to parse as a number.
OptionalPort = Annotated[
    Annotated[int, Field(ge=0, le=65535)] | None,
    BeforeValidator(lambda value: None if isinstance(value, str) and not value.strip() else value),
]
# Python's logging takes only these names (in any case); anything else would fail later, in setup_logging.
LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
    BeforeValidator(lambda value: value.strip().upper() if isinstance(value, str) else value),
]


class ClusterSettings(BaseModel):
    """Where and as whom the pods a service creates on Kubernetes run (AIKUBE_KUBERNETES__<FIELD>).

    The training Jobs and the model-server Deployments extend it with what only they need.
    """

    model_config = {"frozen": True}

    namespace: str = "aikube"
    image: str = ""  # the project image (Dockerfile); required when the service runs its work on Kubernetes
    service_account: str | None = None  # e.g. bound by Workload Identity to the store and warehouse
    cpu: str
    memory: str
    poll_s: float = Field(default=2.0, gt=0)
    volume_claim: str | None = None  # a PersistentVolumeClaim holding a file:// store, mounted at volume_path
    volume_path: str = "/var/lib/aikube"
    context: str | None = None  # kubeconfig context when not running in a cluster


class TraceSettings(BaseSettings):
    """Where spans go: the services', the training job's and the CLI's (`aikube publish` starts a batch's trace)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", frozen=True, extra="ignore")

    trace_exporter: Literal["none", "file", "otlp"] = "none"
    trace_dir: Path | None = None  # where the file exporter writes JSON-lines spans; required with `file`

    @model_validator(mode="after")
    def _trace_dir_for_file(self) -> TraceSettings:
        if self.trace_exporter == "file" and self.trace_dir is None:
            raise ValueError(f"{ENV_PREFIX}TRACE_DIR is required when {ENV_PREFIX}TRACE_EXPORTER=file")
        return self


class ServiceSettings(TraceSettings):
    """Shared settings. Standard variables (PUBSUB_EMULATOR_HOST, OTEL_*, ADC) are left to the SDKs that read them."""

    project_id: str = Field(min_length=1)  # the Google Cloud project of the topics and subscriptions
    store: StoreUri  # object store URI: file:///folder (local) or gs://bucket/prefix
    warehouse: WarehouseUri  # warehouse URI: duckdb:///folder (local) or bigquery://project/dataset
    health_port: OptionalPort = 8080  # /healthz and /readyz; empty disables them, 0 picks a free port
    max_messages: int = Field(default=4, ge=1)  # flow control: messages in flight per subscription
    max_delivery_attempts: int = Field(default=5, ge=5, le=100)  # then dead-lettered (Pub/Sub accepts 5..100)
    log_level: LogLevel = "INFO"


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
            f"{ENV_PREFIX}{'__'.join(str(p) for p in err['loc']).upper()}: {_message(err['msg'])}"
            if err["loc"]
            else _message(err["msg"])  # a check across fields names its variables itself
            for err in exc.errors()
        )
        raise ConfigError(f"{cls.__name__} cannot start: {problems}") from None


def _message(msg: str) -> str:
    return str(msg).removeprefix("Value error, ")
