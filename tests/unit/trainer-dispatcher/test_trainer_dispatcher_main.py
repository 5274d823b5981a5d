"""Executor selection by configuration: AIKUBE_EXECUTOR picks the local subprocess or the Kubernetes Job."""

from __future__ import annotations

import pytest

from aikube.executors import LocalExecutor
from aikube.k8s import KubernetesExecutor
from aikube.settings import ConfigError, load_settings
from trainer_dispatcher.main import Settings, make_deps


def test_local_executor_is_the_default(kube_env: pytest.MonkeyPatch) -> None:
    """Without AIKUBE_EXECUTOR jobs run as local subprocesses, with the job timeout."""
    deps = make_deps(load_settings(Settings))
    assert isinstance(deps.executor, LocalExecutor) and deps.executor.timeout_s == 1800.0


def test_kubernetes_executor_from_settings(kube_env: pytest.MonkeyPatch) -> None:
    """AIKUBE_EXECUTOR=kubernetes builds the Job executor from AIKUBE_KUBERNETES__* and the kubeconfig."""
    kube_env.setenv("AIKUBE_EXECUTOR", "kubernetes")
    kube_env.setenv("AIKUBE_JOB_TIMEOUT_S", "900")
    kube_env.setenv("AIKUBE_KUBERNETES__IMAGE", "registry.example.com/aikube/trainer:1.4")
    kube_env.setenv("AIKUBE_KUBERNETES__NAMESPACE", "ml")
    kube_env.setenv("AIKUBE_KUBERNETES__GPU", "1")
    kube_env.setenv("AIKUBE_KUBERNETES__NODE_SELECTOR", '{"cloud.google.com/gke-accelerator": "nvidia-l4"}')
    kube_env.setenv("AIKUBE_KUBERNETES__MEMORY", "8Gi")
    deps = make_deps(load_settings(Settings))
    executor = deps.executor
    assert isinstance(executor, KubernetesExecutor)
    assert (executor.namespace, executor.image, executor.gpu) == ("ml", "registry.example.com/aikube/trainer:1.4", 1)
    assert executor.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert executor.active_deadline_s == 900 and executor.resources.memory == "8Gi"
    assert executor.api.configuration.host == "https://k8s.example.com:6443"
    assert executor.env["AIKUBE_STORE"] == load_settings(Settings).store
    deps.close()


def test_kubernetes_executor_needs_an_image(kube_env: pytest.MonkeyPatch) -> None:
    """Startup fails fast, naming the missing variable."""
    kube_env.setenv("AIKUBE_EXECUTOR", "kubernetes")
    with pytest.raises(ConfigError, match="AIKUBE_KUBERNETES__IMAGE is required"):
        load_settings(Settings)
