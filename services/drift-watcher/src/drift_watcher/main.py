"""Drift-watcher process: `aikube-drift-watcher` (settings from AIKUBE_* variables)."""

from __future__ import annotations

from aikube.adapters import open_store, open_warehouse
from aikube.app import run_service
from aikube.datasets import DatasetCatalog
from aikube.registry import ModelRegistry
from aikube.settings import ServiceSettings
from drift_watcher.handlers import Deps, router

SERVICE = "drift-watcher"


def make_deps(settings: ServiceSettings) -> Deps:
    store = open_store(settings.store)
    return Deps(store, open_warehouse(settings.warehouse), DatasetCatalog(store), ModelRegistry(store))


def main() -> None:
    run_service(SERVICE, router, make_deps, ServiceSettings)


if __name__ == "__main__":
    main()
