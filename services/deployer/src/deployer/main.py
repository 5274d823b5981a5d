"""Deployer process: `aikube-deployer` (settings from AIKUBE_* variables).

Where models serve is configuration: AIKUBE_SERVING=local (model-server subprocesses, the default) or kubernetes
(one Deployment + Service per model, configured by AIKUBE_KUBERNETES__*; RBAC in docs/kubernetes.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from aikube.adapters import open_store, open_warehouse
from aikube.app import run_service
from aikube.datasets import DatasetCatalog
from aikube.registry import ModelRegistry
from aikube.rollout import LocalServing, ServingBackend
from aikube.settings import ClusterSettings, ServiceSettings
from deployer.handlers import Deps, router

SERVICE = "deployer"


class ServingClusterSettings(ClusterSettings):
    """Where and how model servers run on Kubernetes (AIKUBE_KUBERNETES__<FIELD>)."""

    cpu: str = "250m"
    memory: str = "512Mi"
    replicas: int = Field(default=1, ge=1)
    port: int = Field(default=8080, ge=1, le=65535)
    rollout_timeout_s: float = Field(default=300.0, gt=0)  # also the Deployment's progressDeadlineSeconds


class Settings(ServiceSettings):
    serving: Literal["local", "kubernetes"] = "local"
    kubernetes: ServingClusterSettings = ServingClusterSettings()

    @model_validator(mode="after")
    def _image_for_kubernetes(self) -> Settings:
        if self.serving == "kubernetes" and not self.kubernetes.image:
            raise ValueError("AIKUBE_KUBERNETES__IMAGE is required when AIKUBE_SERVING=kubernetes")
        return self


def make_serving(settings: Settings) -> ServingBackend:
    if settings.serving == "local":
        return LocalServing()
    from aikube.k8s import KubernetesServing, Resources, load_api_client  # the client loads only when used

    cluster = settings.kubernetes
    return KubernetesServing(
        cluster.namespace,
        cluster.image,
        api=load_api_client(cluster.context),
        port=cluster.port,
        resources=Resources(cpu=cluster.cpu, memory=cluster.memory),
        replicas=cluster.replicas,
        rollout_timeout_s=cluster.rollout_timeout_s,
        poll_s=cluster.poll_s,
        service_account=cluster.service_account,
        volume_claim=cluster.volume_claim,
        volume_path=cluster.volume_path,
    )


def make_deps(settings: Settings) -> Deps:
    store = open_store(settings.store)
    return Deps(ModelRegistry(store), open_warehouse(settings.warehouse), DatasetCatalog(store), make_serving(settings))


def main() -> None:
    run_service(SERVICE, router, make_deps, Settings)


if __name__ == "__main__":
    main()
