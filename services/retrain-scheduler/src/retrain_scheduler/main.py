"""Retrain-scheduler process: `aikube-retrain-scheduler` (settings from AIKUBE_* variables)."""

from __future__ import annotations

from aikube.adapters import open_store
from aikube.app import run_service
from aikube.datasets import DatasetCatalog
from aikube.settings import ServiceSettings
from retrain_scheduler.handlers import Deps, router

SERVICE = "retrain-scheduler"


def make_deps(settings: ServiceSettings) -> Deps:
    store = open_store(settings.store)
    return Deps(store, DatasetCatalog(store))


def main() -> None:
    run_service(SERVICE, router, make_deps, ServiceSettings)


if __name__ == "__main__":
    main()
