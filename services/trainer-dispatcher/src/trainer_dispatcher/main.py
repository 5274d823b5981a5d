"""Trainer-dispatcher process: `aikube-trainer-dispatcher` (settings from AIKUBE_* variables).

Where jobs run is configuration: AIKUBE_EXECUTOR=local (a subprocess, the default) or kubernetes (a batch/v1 Job
per request, configured by AIKUBE_KUBERNETES__*; RBAC in docs/kubernetes.md).
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, model_validator

from aikube.adapters import open_store
from aikube.app import run_service
from aikube.executors import Executor, LocalExecutor
from aikube.registry import ModelRegistry
from aikube.settings import ClusterSettings, ServiceSettings
from aikube.storage import ObjectStore
from trainer_dispatcher.handlers import Deps, router

SERVICE = "trainer-dispatcher"


class JobClusterSettings(ClusterSettings):
    """Where and how training Jobs run on Kubernetes (AIKUBE_KUBERNETES__<FIELD>)."""

    cpu: str = "1"
    memory: str = "2Gi"
    gpu: int = Field(default=0, ge=0)  # nvidia.com/gpu limit
    node_selector: dict[str, str] = {}  # JSON, e.g. {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    backoff_limit: int = Field(default=2, ge=0)
    ttl_after_finished_s: int = Field(default=86400, ge=0)  # a finished Job's outcome stays readable this long


class Settings(ServiceSettings):
    job_timeout_s: float = 1800.0  # a job still running then is failed (activeDeadlineSeconds on Kubernetes)
    executor: Literal["local", "kubernetes"] = "local"
    kubernetes: JobClusterSettings = JobClusterSettings()

    @model_validator(mode="after")
    def _image_for_kubernetes(self) -> Settings:
        if self.executor == "kubernetes" and not self.kubernetes.image:
            raise ValueError("AIKUBE_KUBERNETES__IMAGE is required when AIKUBE_EXECUTOR=kubernetes")
        return self


def job_env(settings: Settings) -> dict[str, str]:
    """What a job pod needs from this service's configuration (a local job inherits the whole environment)."""
    env = {
        "AIKUBE_STORE": settings.store,
        "AIKUBE_WAREHOUSE": settings.warehouse,
        "AIKUBE_LOG_LEVEL": settings.log_level,
    }
    env["AIKUBE_TRACE_EXPORTER"] = settings.trace_exporter
    if settings.trace_dir is not None:
        env["AIKUBE_TRACE_DIR"] = str(settings.trace_dir)
    env.update({key: value for key, value in os.environ.items() if key.startswith("OTEL_")})
    return env


def make_executor(settings: Settings, store: ObjectStore) -> Executor:
    if settings.executor == "local":
        return LocalExecutor(store, timeout_s=settings.job_timeout_s)
    from aikube.k8s import KubernetesExecutor, Resources, load_api_client  # the client loads only when used

    cluster = settings.kubernetes
    return KubernetesExecutor(
        cluster.namespace,
        cluster.image,
        api=load_api_client(cluster.context),
        resources=Resources(cpu=cluster.cpu, memory=cluster.memory),
        gpu=cluster.gpu,
        node_selector=cluster.node_selector,
        backoff_limit=cluster.backoff_limit,
        active_deadline_s=max(1, int(settings.job_timeout_s)),
        ttl_after_finished_s=cluster.ttl_after_finished_s,
        poll_s=cluster.poll_s,
        service_account=cluster.service_account,
        env=job_env(settings),
        volume_claim=cluster.volume_claim,
        volume_path=cluster.volume_path,
    )


def make_deps(settings: Settings) -> Deps:
    store = open_store(settings.store)
    return Deps(ModelRegistry(store), make_executor(settings, store))


def main() -> None:
    run_service(SERVICE, router, make_deps, Settings)


if __name__ == "__main__":
    main()
