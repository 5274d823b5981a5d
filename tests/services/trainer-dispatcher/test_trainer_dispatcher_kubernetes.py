"""The trainer-dispatcher configured for Kubernetes (AIKUBE_EXECUTOR=kubernetes) against the API double.

`make_deps` builds the KubernetesExecutor from settings and a kubeconfig; the double validates the Job and plays
the kubelet: it runs the Job's container command, with the Job's environment, as a local process over this
module's store and warehouse. So the request → Job → registered candidate → completed path is the real one, with
only the cluster replaced.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent
from k8s_api import FakeKubernetes, JobPlan

from aikube.catalog import Catalog
from aikube.k8s import KubernetesExecutor
from aikube.registry import ModelRegistry
from aikube.storage import LocalObjectStore
from aikube.testing import MemoryBus
from aikube.warehouse import DuckDBWarehouse
from trainer_dispatcher.domain import job_name, model_version
from trainer_dispatcher.handlers import router
from trainer_dispatcher.main import Settings, make_deps

REQUEST = "drift-20110212T000000Z"
EMPTY_REQUEST = "drift-20120107T000000Z"
NS = "aikube-test"


def kubelet(job: dict[str, Any]) -> tuple[int, str]:
    """Run the Job's one container as a local process: its command (python = this interpreter) and env."""
    (container,) = job["spec"]["template"]["spec"]["containers"]
    command = [sys.executable if part == "python" else part for part in container["command"]]
    env = {"PATH": os.environ.get("PATH", ""), **{item["name"]: item["value"] for item in container["env"]}}
    env["HOME"] = env["TMPDIR"] = str(Path(os.environ.get("TMPDIR", "/tmp")))  # the pod's /tmp volume
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    return done.returncode, (done.stdout + done.stderr)[-2048:]  # FallbackToLogsOnError: the log's tail


@pytest.fixture(scope="module")
def k8s() -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as double:
        double.job_plan = lambda job: JobPlan(run=kubelet)
        yield double
        assert not double.invalid, [r.response["message"] for r in double.invalid]


@pytest.fixture(scope="module")
def settings(
    k8s: FakeKubernetes, tmp_path_factory: pytest.TempPathFactory, clone: Callable[..., Any]
) -> Iterator[Settings]:
    """Kubernetes executor settings over a copy of the session template (six weeks of features)."""
    root = tmp_path_factory.mktemp("trainer-k8s")
    store, warehouse = LocalObjectStore(root / "objects"), DuckDBWarehouse(root / "warehouse")
    clone(store, warehouse)
    kubeconfig = root / "kubeconfig"
    kubeconfig.write_text(
        f"apiVersion: v1\nkind: Config\ncurrent-context: double\n"
        f"clusters: [{{name: double, cluster: {{server: '{k8s.url}'}}}}]\n"
        f"users: [{{name: tester, user: {{token: unused}}}}]\n"
        f"contexts: [{{name: double, context: {{cluster: double, user: tester}}}}]\n"
    )
    with pytest.MonkeyPatch.context() as env:
        env.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        env.setenv("KUBECONFIG", str(kubeconfig))
        yield Settings(
            project_id="unused",
            store=store.root.as_uri(),
            warehouse=f"duckdb://{warehouse.root}",
            executor="kubernetes",
            kubernetes={"namespace": NS, "image": "registry.example.com/aikube/trainer:test", "poll_s": 0.05},
        )


@pytest.fixture(scope="module")
def completed(settings: Settings, catalog: Catalog, event: Callable[..., CloudEvent], request_data: Any) -> CloudEvent:
    """training.v1.requested for REQUEST, handled once for the module."""
    deps = make_deps(settings)
    assert isinstance(deps.executor, KubernetesExecutor)
    bus = MemoryBus(catalog)
    outcome = bus.deliver(
        bus.dispatcher("trainer-dispatcher", router, deps),
        event("training.v1.requested", request_data(REQUEST, "2011-01-15", "2011-02-12")),
    )
    deps.close()
    assert outcome.status == "handled"
    (emitted,) = outcome.emitted
    return emitted


def test_request_runs_as_a_job_and_completes(completed: CloudEvent, settings: Settings, k8s: FakeKubernetes) -> None:
    """One Job named after the request trains and registers the candidate; completed names it."""
    data = completed.get_data()
    version = model_version("2011-02-12T00:00:00+00:00", REQUEST)
    registered = ModelRegistry(LocalObjectStore(Path(settings.store.removeprefix("file://")))).get("bikeshare", version)
    assert completed.get_type().endswith("training.v1.completed")
    assert (data["version"], data["job_name"]) == (version, job_name("bikeshare", REQUEST))
    assert data["artifact_uri"] == registered.artifact_uri
    assert [job["metadata"]["name"] for job in k8s.objects("jobs", NS)] == [job_name("bikeshare", REQUEST)]


def test_job_env_comes_from_the_settings(completed: CloudEvent, settings: Settings, k8s: FakeKubernetes) -> None:
    """The pod gets the store and warehouse of the service's settings and the request itself."""
    job = k8s.get("jobs", NS, job_name("bikeshare", REQUEST))
    assert job is not None
    env = {item["name"]: item["value"] for item in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (env["AIKUBE_STORE"], env["AIKUBE_WAREHOUSE"]) == (settings.store, settings.warehouse)
    assert REQUEST in env["AIKUBE_TRAINING_REQUEST"]
    assert job["spec"]["activeDeadlineSeconds"] == int(settings.job_timeout_s)


def test_window_without_data_fails_with_the_jobs_reason(
    settings: Settings, catalog: Catalog, event: Callable[..., CloudEvent], request_data: Any
) -> None:
    """The pod's last log line, via the Job's Failed condition, becomes training.v1.failed's error."""
    bus = MemoryBus(catalog)
    requested = event("training.v1.requested", request_data(EMPTY_REQUEST, "2012-01-01", "2012-01-07"))
    (failed,) = bus.deliver(bus.dispatcher("trainer-dispatcher", router, make_deps(settings)), requested).emitted
    assert failed.get_type().endswith("training.v1.failed")
    assert failed.get_data()["error"].startswith("BackoffLimitExceeded: Job has reached the specified backoff limit")
    assert failed.get_data()["error"].endswith(
        "training failed: TrainingError: dataset 'bikeshare': no rows with target 'bikers'"
    )
