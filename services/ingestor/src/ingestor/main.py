"""Ingestor process: `aikube-ingestor` (settings from AIKUBE_* variables)."""

from __future__ import annotations

from pydantic import SecretStr, field_validator

from aikube.adapters import open_store, open_warehouse
from aikube.app import run_service
from aikube.datasets import DatasetCatalog
from aikube.settings import ServiceSettings
from ingestor.handlers import Deps, router

SERVICE = "ingestor"


class Settings(ServiceSettings):
    mask_salt: SecretStr  # key of the pseudonyms of sensitive columns; required so tokens cannot be reversed

    @field_validator("mask_salt")
    @classmethod
    def _salt_not_empty(cls, salt: SecretStr) -> SecretStr:
        # checked here, not on the first sensitive batch: that one would fail every attempt and be dead-lettered
        if not salt.get_secret_value():
            raise ValueError("must not be empty (an unsalted hash of a value can be reversed by lookup)")
        return salt


def make_deps(settings: Settings) -> Deps:
    store = open_store(settings.store)
    return Deps(store, open_warehouse(settings.warehouse), DatasetCatalog(store), settings.mask_salt.get_secret_value())


def main() -> None:
    run_service(SERVICE, router, make_deps, Settings)


if __name__ == "__main__":
    main()
