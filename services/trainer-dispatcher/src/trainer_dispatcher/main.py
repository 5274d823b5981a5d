"""Trainer-dispatcher process: `aikube-trainer-dispatcher` (settings from AIKUBE_* variables)."""

from __future__ import annotations

from aikube.adapters import open_store
from aikube.app import run_service
from aikube.executors import LocalExecutor
from aikube.registry import ModelRegistry
from aikube.settings import ServiceSettings
from trainer_dispatcher.handlers import Deps, router

SERVICE = "trainer-dispatcher"


class Settings(ServiceSettings):
    job_timeout_s: float = 1800.0  # a job still running then is failed (activeDeadlineSeconds on Kubernetes)


def make_deps(settings: Settings) -> Deps:
    store = open_store(settings.store)
    return Deps(ModelRegistry(store), LocalExecutor(store, timeout_s=settings.job_timeout_s))


def main() -> None:
    run_service(SERVICE, router, make_deps, Settings)


if __name__ == "__main__":
    main()
