"""Deployer process: `aikube-deployer` (settings from AIKUBE_* variables)."""

from __future__ import annotations

from aikube.adapters import open_store, open_warehouse
from aikube.app import run_service
from aikube.datasets import DatasetCatalog
from aikube.registry import ModelRegistry
from aikube.rollout import LocalServing
from aikube.settings import ServiceSettings
from deployer.handlers import Deps, router

SERVICE = "deployer"


def make_deps(settings: ServiceSettings) -> Deps:
    store = open_store(settings.store)
    return Deps(ModelRegistry(store), open_warehouse(settings.warehouse), DatasetCatalog(store), LocalServing())


def main() -> None:
    run_service(SERVICE, router, make_deps, ServiceSettings)


if __name__ == "__main__":
    main()
