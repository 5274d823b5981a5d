"""Feature-builder process: `aikube-feature-builder` (settings from AIKUBE_* variables)."""

from __future__ import annotations

from aikube.adapters import open_store, open_warehouse
from aikube.app import run_service
from aikube.datasets import DatasetCatalog
from aikube.settings import ServiceSettings
from feature_builder.handlers import Deps, router

SERVICE = "feature-builder"


def make_deps(settings: ServiceSettings) -> Deps:
    return Deps(open_warehouse(settings.warehouse), DatasetCatalog(open_store(settings.store)))


def main() -> None:
    run_service(SERVICE, router, make_deps, ServiceSettings)


if __name__ == "__main__":
    main()
