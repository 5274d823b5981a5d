"""Ingestor settings: the mask salt is checked when the service starts, not on the first sensitive batch."""

from __future__ import annotations

import pytest

from aikube.settings import ConfigError, load_settings
from ingestor.main import Settings


@pytest.mark.parametrize("salt", ["", "   "])
def test_empty_mask_salt_is_refused(service_env: pytest.MonkeyPatch, salt: str) -> None:
    """An empty salt would make every sensitive batch fail and dead-letter: refuse it, naming the variable."""
    service_env.setenv("AIKUBE_MASK_SALT", salt)
    with pytest.raises(ConfigError, match="AIKUBE_MASK_SALT: must not be empty"):
        load_settings(Settings)


def test_short_mask_salt_is_refused(service_env: pytest.MonkeyPatch) -> None:
    service_env.setenv("AIKUBE_MASK_SALT", "short")
    with pytest.raises(ConfigError, match="AIKUBE_MASK_SALT: must have at least 16 characters"):
        load_settings(Settings)


def test_missing_mask_salt_is_refused(service_env: pytest.MonkeyPatch) -> None:
    """The salt has no default: without one the service does not start."""
    service_env.delenv("AIKUBE_MASK_SALT", raising=False)
    with pytest.raises(ConfigError, match="AIKUBE_MASK_SALT"):
        load_settings(Settings)


def test_a_salt_is_kept_secret(service_env: pytest.MonkeyPatch) -> None:
    """A non-empty salt is accepted and not shown in the settings' repr."""
    service_env.setenv("AIKUBE_MASK_SALT", "s3cret-s3cret-s3cret")
    settings = load_settings(Settings)
    assert settings.mask_salt.get_secret_value() == "s3cret-s3cret-s3cret" and "s3cret" not in repr(settings)
