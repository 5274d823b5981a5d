"""Service settings: read from AIKUBE_* variables, failing fast with the variable's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from aikube.settings import ConfigError, ServiceSettings, TraceSettings, load_settings


def test_missing_required_settings_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every missing required variable is named in one error."""
    for name in ("AIKUBE_PROJECT_ID", "AIKUBE_STORE", "AIKUBE_WAREHOUSE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as error:
        load_settings(ServiceSettings)
    assert all(name in str(error.value) for name in ("AIKUBE_PROJECT_ID", "AIKUBE_STORE", "AIKUBE_WAREHOUSE"))


def test_settings_come_from_the_environment(service_env: pytest.MonkeyPatch) -> None:
    """Values and types are read from the environment."""
    service_env.setenv("AIKUBE_MAX_MESSAGES", "9")
    settings = load_settings(ServiceSettings)
    assert (settings.project_id, settings.max_messages) == ("p", 9)


def test_invalid_value_is_named(service_env: pytest.MonkeyPatch) -> None:
    """A badly typed value names its variable."""
    service_env.setenv("AIKUBE_TRACE_EXPORTER", "jaeger")
    with pytest.raises(ConfigError, match="AIKUBE_TRACE_EXPORTER"):
        load_settings(ServiceSettings)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AIKUBE_STORE", "garbage"),
        ("AIKUBE_STORE", "s3://x"),
        ("AIKUBE_STORE", "file://relative/folder"),  # the host part would be silently dropped
        ("AIKUBE_STORE", "gs://"),
        ("AIKUBE_WAREHOUSE", "garbage"),
        ("AIKUBE_WAREHOUSE", "duckdb://"),
        ("AIKUBE_WAREHOUSE", "bigquery://project"),
        ("AIKUBE_PROJECT_ID", ""),
        ("AIKUBE_MAX_MESSAGES", "0"),  # would pull nothing while reporting ready
        ("AIKUBE_MAX_DELIVERY_ATTEMPTS", "4"),  # Pub/Sub refuses fewer than 5
        ("AIKUBE_HEALTH_PORT", "70000"),
        ("AIKUBE_LOG_LEVEL", "LOUD"),
    ],
)
def test_unusable_values_are_refused_at_startup(service_env: pytest.MonkeyPatch, variable: str, value: str) -> None:
    """Values the service could not run with fail at load time, naming the variable and only it."""
    service_env.setenv(variable, value)
    with pytest.raises(ConfigError) as error:
        load_settings(ServiceSettings)
    message = str(error.value)
    assert f"{variable}:" in message and message.count("AIKUBE_") == 1, message


def test_bad_uris_say_what_is_supported(service_env: pytest.MonkeyPatch) -> None:
    """The URI error lists the schemes that work."""
    service_env.setenv("AIKUBE_STORE", "s3://x")
    with pytest.raises(ConfigError, match="use file:///folder or gs://bucket/prefix"):
        load_settings(ServiceSettings)


@pytest.mark.parametrize(
    ("store", "warehouse"),
    [
        ("file:///srv/store", "duckdb:///srv/wh"),
        ("gs://bucket/prefix", "bigquery://project/dataset"),
        ("gs://b", "bigquery://p/d"),
    ],
)
def test_supported_uris_are_accepted(service_env: pytest.MonkeyPatch, store: str, warehouse: str) -> None:
    """Every backend the adapters open passes validation unchanged."""
    service_env.setenv("AIKUBE_STORE", store)
    service_env.setenv("AIKUBE_WAREHOUSE", warehouse)
    settings = load_settings(ServiceSettings)
    assert (settings.store, settings.warehouse) == (store, warehouse)


def test_file_exporter_needs_a_trace_dir(service_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The file exporter without a folder is refused, naming both variables; with one it loads."""
    service_env.setenv("AIKUBE_TRACE_EXPORTER", "file")
    with pytest.raises(ConfigError, match="AIKUBE_TRACE_DIR is required when AIKUBE_TRACE_EXPORTER=file"):
        load_settings(ServiceSettings)
    with pytest.raises(ConfigError, match="AIKUBE_TRACE_DIR is required"):
        load_settings(TraceSettings)  # the CLI's tracing settings check the same
    service_env.setenv("AIKUBE_TRACE_DIR", str(tmp_path))
    assert load_settings(ServiceSettings).trace_dir == tmp_path


def test_log_level_is_case_insensitive(service_env: pytest.MonkeyPatch) -> None:
    """A level Python's logging knows is accepted in any case and normalised."""
    service_env.setenv("AIKUBE_LOG_LEVEL", " debug")
    assert load_settings(ServiceSettings).log_level == "DEBUG"


def test_empty_health_port_disables_the_endpoint(service_env: pytest.MonkeyPatch) -> None:
    """`AIKUBE_HEALTH_PORT=` switches the health endpoint off; unset keeps the default port."""
    service_env.delenv("AIKUBE_HEALTH_PORT", raising=False)
    assert load_settings(ServiceSettings).health_port == 8080
    service_env.setenv("AIKUBE_HEALTH_PORT", "")
    assert load_settings(ServiceSettings).health_port is None
