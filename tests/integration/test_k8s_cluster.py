"""KubernetesExecutor and KubernetesServing against a real cluster (kind, GKE): the `cluster` tier.

Opt in with the kubeconfig context to use, e.g. `AIKUBE_TEST_KUBECONTEXT=kind-aikube pytest -m cluster`; without
it these tests skip (no API server can run on the project's machines, so CI skips them too). Each run works in a
namespace of its own, created and deleted here (or in AIKUBE_TEST_NAMESPACE, left in place). The Job tests need
only a public Python image (AIKUBE_TEST_PYTHON_IMAGE, default python:3.11-slim); the serving rollout tests need
an image with aikube installed and a model artifact readable inside it (AIKUBE_TEST_MODEL_SERVER_IMAGE,
AIKUBE_TEST_ARTIFACT_URI). What each test covers is listed in docs/kubernetes.md.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from aikube.executors import JobSpec
from aikube.k8s import KubernetesExecutor, KubernetesServing, Resources, load_api_client, serving_name
from aikube.rollout import RolloutFailed

pytestmark = pytest.mark.cluster

PYTHON_IMAGE = os.environ.get("AIKUBE_TEST_PYTHON_IMAGE", "python:3.11-slim")
SMALL = Resources(cpu="100m", memory="128Mi")


@pytest.fixture(scope="module")
def api() -> Iterator[client.ApiClient]:
    context = os.environ.get("AIKUBE_TEST_KUBECONTEXT")
    if not context:
        pytest.skip("set AIKUBE_TEST_KUBECONTEXT to a kubeconfig context (kind, GKE) to run the cluster tier")
    api = load_api_client(context)
    yield api
    api.close()


@pytest.fixture(scope="module")
def namespace(api: client.ApiClient) -> Iterator[str]:
    if existing := os.environ.get("AIKUBE_TEST_NAMESPACE"):
        yield existing
        return
    name = f"aikube-test-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def executor(api: client.ApiClient, namespace: str, **options: object) -> KubernetesExecutor:
    defaults: dict[str, object] = {"api": api, "resources": SMALL, "backoff_limit": 0, "poll_s": 1.0}
    return KubernetesExecutor(namespace, PYTHON_IMAGE, **{**defaults, **options})  # type: ignore[arg-type]


def test_job_that_exits_zero_succeeds(api: client.ApiClient, namespace: str) -> None:
    """`python -m this` exits 0: Complete."""
    result = executor(api, namespace, wait_timeout_s=300).run(JobSpec(unique("ok"), "this"))
    assert result.succeeded, result.error


def test_failing_job_reports_backoff_limit_and_its_last_log_line(api: client.ApiClient, namespace: str) -> None:
    """A module that does not exist: BackoffLimitExceeded, with Python's error as the termination message."""
    result = executor(api, namespace, wait_timeout_s=300).run(JobSpec(unique("fail"), "aikube_no_such_module"))
    assert not result.succeeded
    assert result.error.startswith("BackoffLimitExceeded") and "No module named aikube_no_such_module" in result.error


def test_job_past_its_deadline_reports_deadline_exceeded(api: client.ApiClient, namespace: str) -> None:
    """`python -m http.server` never ends: DeadlineExceeded after activeDeadlineSeconds."""
    result = executor(api, namespace, active_deadline_s=15, wait_timeout_s=300).run(
        JobSpec(unique("deadline"), "http.server")
    )
    assert not result.succeeded and result.error.startswith("DeadlineExceeded")


def test_second_run_of_a_request_follows_its_job(api: client.ApiClient, namespace: str) -> None:
    """The same name again: no second Job, the same outcome."""
    job = JobSpec(unique("twice"), "this", labels={"aikube.dev/request": "cluster-test"})
    first = executor(api, namespace, wait_timeout_s=300).run(job)
    second = executor(api, namespace, wait_timeout_s=300).run(job)
    assert first == second and first.succeeded
    jobs = client.BatchV1Api(api).list_namespaced_job(
        namespace, label_selector=f"app.kubernetes.io/instance={job.name}"
    )
    assert len(jobs.items) == 1


def test_first_rollout_that_cannot_pull_its_image_is_removed(api: client.ApiClient, namespace: str) -> None:
    """An image that does not exist never becomes ready: RolloutFailed, and the Deployment is deleted."""
    model = unique("noimage")
    serving = KubernetesServing(
        namespace, "registry.invalid/aikube/none:0", api=api, resources=SMALL, rollout_timeout_s=30, poll_s=1.0
    )
    with pytest.raises(RolloutFailed, match="nothing serves"):
        serving.deploy(model, "v1", "file:///nowhere/model.joblib")
    with pytest.raises(ApiException) as gone:
        client.AppsV1Api(api).read_namespaced_deployment(serving_name(model), namespace)
    assert gone.value.status == 404


def test_rollout_then_failed_rollout_rolls_back(api: client.ApiClient, namespace: str) -> None:
    """A real model server comes up (endpoint); a version whose artifact is missing crash-loops and is rolled back."""
    image, artifact = os.environ.get("AIKUBE_TEST_MODEL_SERVER_IMAGE"), os.environ.get("AIKUBE_TEST_ARTIFACT_URI")
    if not (image and artifact):
        pytest.skip("set AIKUBE_TEST_MODEL_SERVER_IMAGE and AIKUBE_TEST_ARTIFACT_URI (a file inside that image)")
    model = unique("served")
    serving = KubernetesServing(namespace, image, api=api, rollout_timeout_s=120, poll_s=1.0)
    endpoint = serving.deploy(model, "v1", artifact)
    assert endpoint == f"http://{serving_name(model)}.{namespace}.svc.cluster.local"
    with pytest.raises(RolloutFailed, match="version v1 serves") as failed:
        serving.deploy(model, "v2", "file:///nowhere/model.joblib")
    assert failed.value.serving_version == "v1"
    served = serving.served(model)
    assert served is not None and served.version == "v1"
