"""Service settings: read from AIKUBE_* variables, failing fast with the variable's name."""

from __future__ import annotations

import pytest

from aikube.settings import ConfigError, ServiceSettings, load_settings


def test_missing_required_settings_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every missing required variable is named in one error."""
    for name in ("AIKUBE_PROJECT_ID", "AIKUBE_STORE", "AIKUBE_WAREHOUSE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as error:
        load_settings(ServiceSettings)
    assert all(name in str(error.value) for name in ("AIKUBE_PROJECT_ID", "AIKUBE_STORE", "AIKUBE_WAREHOUSE"))


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values and types are read from the environment."""
    monkeypatch.setenv("AIKUBE_PROJECT_ID", "p")
    monkeypatch.setenv("AIKUBE_STORE", "file:///tmp/s")
    monkeypatch.setenv("AIKUBE_WAREHOUSE", "duckdb:///tmp/w")
    monkeypatch.setenv("AIKUBE_MAX_MESSAGES", "9")
    settings = load_settings(ServiceSettings)
    assert (settings.project_id, settings.max_messages) == ("p", 9)


def test_invalid_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A badly typed value names its variable."""
    monkeypatch.setenv("AIKUBE_PROJECT_ID", "p")
    monkeypatch.setenv("AIKUBE_STORE", "file:///tmp/s")
    monkeypatch.setenv("AIKUBE_WAREHOUSE", "duckdb:///tmp/w")
    monkeypatch.setenv("AIKUBE_TRACE_EXPORTER", "jaeger")
    with pytest.raises(ConfigError, match="AIKUBE_TRACE_EXPORTER"):
        load_settings(ServiceSettings)
