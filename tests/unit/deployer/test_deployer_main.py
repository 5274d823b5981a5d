"""Serving selection by configuration: AIKUBE_SERVING picks local model servers or a Deployment per model."""

from __future__ import annotations

import pytest

from aikube.k8s import KubernetesServing
from aikube.rollout import LocalServing
from aikube.settings import ConfigError, load_settings
from deployer.main import Settings, make_deps


def test_local_serving_is_the_default(kube_env: pytest.MonkeyPatch) -> None:
    """Without AIKUBE_SERVING models serve from local model-server processes."""
    deps = make_deps(load_settings(Settings))
    assert isinstance(deps.serving, LocalServing)
    deps.close()


def test_kubernetes_serving_from_settings(kube_env: pytest.MonkeyPatch) -> None:
    """AIKUBE_SERVING=kubernetes builds the Deployment backend from AIKUBE_KUBERNETES__* and the kubeconfig."""
    kube_env.setenv("AIKUBE_SERVING", "kubernetes")
    kube_env.setenv("AIKUBE_KUBERNETES__IMAGE", "registry.example.com/aikube/model-server:1.4")
    kube_env.setenv("AIKUBE_KUBERNETES__NAMESPACE", "ml")
    kube_env.setenv("AIKUBE_KUBERNETES__REPLICAS", "2")
    kube_env.setenv("AIKUBE_KUBERNETES__ROLLOUT_TIMEOUT_S", "120")
    deps = make_deps(load_settings(Settings))
    serving = deps.serving
    assert isinstance(serving, KubernetesServing)
    assert (serving.namespace, serving.replicas, serving.rollout_timeout_s) == ("ml", 2, 120.0)
    assert serving.endpoint("bikeshare") == "http://model-bikeshare.ml.svc.cluster.local"
    assert serving.api.configuration.host == "https://k8s.example.com:6443"
    deps.close()


def test_kubernetes_serving_needs_an_image(kube_env: pytest.MonkeyPatch) -> None:
    """Startup fails fast, naming the missing variable."""
    kube_env.setenv("AIKUBE_SERVING", "kubernetes")
    with pytest.raises(ConfigError, match="AIKUBE_KUBERNETES__IMAGE is required"):
        load_settings(Settings)
