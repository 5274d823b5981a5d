"""Settings for the unit tests of service entry points: the required ones, on folders of the test."""

from __future__ import annotations

from pathlib import Path

import pytest
from service_settings import service_settings

OPTIONAL = ("AIKUBE_TRACE_EXPORTER", "AIKUBE_TRACE_DIR", "AIKUBE_LOG_LEVEL", "AIKUBE_MAX_MESSAGES")


@pytest.fixture
def service_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The required settings set, the optional ones unset (a test then sets or breaks one)."""
    for name in OPTIONAL:
        monkeypatch.delenv(name, raising=False)
    for name, value in service_settings(tmp_path).items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.fixture
def kube_env(service_env: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """The service settings, and a kubeconfig for a cluster that is never called."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://k8s.example.com:6443'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    service_env.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    service_env.setenv("KUBECONFIG", str(kubeconfig))
    return service_env
