"""Ingestor process: `aikube-ingestor` (settings from AIKUBE_* variables)."""

from __future__ import annotations

from pydantic import SecretStr

from aikube.adapters import open_store, open_warehouse
from aikube.app import run_service
from aikube.datasets import DatasetCatalog
from aikube.settings import ServiceSettings
from ingestor.handlers import Deps, router

SERVICE = "ingestor"


class Settings(ServiceSettings):
    mask_salt: SecretStr  # key of the pseudonyms of sensitive columns; required so tokens cannot be reversed


def make_deps(settings: Settings) -> Deps:
    store = open_store(settings.store)
    return Deps(store, open_warehouse(settings.warehouse), DatasetCatalog(store), settings.mask_salt.get_secret_value())


def main() -> None:
    run_service(SERVICE, router, make_deps, Settings)


if __name__ == "__main__":
    main()
