"""Ingestor process: `aikube-ingestor` (settings from AIKUBE_* variables)."""

from __future__ import annotations

from pydantic import SecretStr, field_validator

from aikube.adapters import open_store, open_warehouse
from aikube.app import run_service
from aikube.datasets import DatasetCatalog
from aikube.settings import ServiceSettings
from ingestor.handlers import Deps, router

SERVICE = "ingestor"
MIN_SALT_CHARS = 16  # e.g. `openssl rand -hex 32`; a short or guessable key makes the pseudonyms reversible


class Settings(ServiceSettings):
    mask_salt: SecretStr  # key of the pseudonyms of sensitive columns; required so tokens cannot be reversed

    @field_validator("mask_salt")
    @classmethod
    def _salt_not_empty(cls, salt: SecretStr) -> SecretStr:
        # checked here, not on the first sensitive batch: that one would fail every attempt and be dead-lettered
        value = salt.get_secret_value()
        if not value.strip():
            raise ValueError("must not be empty (an unsalted hash of a value can be reversed by lookup)")
        if len(value) < MIN_SALT_CHARS:
            raise ValueError(
                f"must have at least {MIN_SALT_CHARS} characters (e.g. openssl rand -hex 32): a short key can be"
                " guessed, and with it every pseudonym reversed"
            )
        return salt


def make_deps(settings: Settings) -> Deps:
    store = open_store(settings.store)
    return Deps(store, open_warehouse(settings.warehouse), DatasetCatalog(store), settings.mask_salt.get_secret_value())


def main() -> None:
    run_service(SERVICE, router, make_deps, Settings)


if __name__ == "__main__":
    main()
