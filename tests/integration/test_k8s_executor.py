"""KubernetesExecutor against the Kubernetes API double: the Job it creates, how it follows it, and idempotency.

Every request body is validated by the double against the official 1.32 schema (strict), so a malformed Job fails
the test that sends it; `k8s.invalid` is also checked at the end of each test.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from k8s_api import FakeKubernetes, JobPlan
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from aikube.executors import JobResult, JobSpec
from aikube.k8s import KubernetesExecutor, Resources, label_value, load_api_client

NS = "aikube-test"
IMAGE = "registry.example.com/aikube/trainer:1.4"
NAME = "train-bikeshare-drift-20110212t000000z-1a2b3c4d5e"
REQUEST = "drift-20110212T000000Z"
LONG_REQUEST = "retrain:" + "x" * 80  # neither a valid label value nor short enough


def spec(name: str = NAME, request: str = REQUEST) -> JobSpec:
    """A JobSpec as the trainer-dispatcher's handler builds it."""
    return JobSpec(
        name,
        "trainer_dispatcher.job",
        env={
            "AIKUBE_TRAINING_REQUEST": '{"model": "bikeshare"}',
            "TRACEPARENT": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
        },
        labels={"aikube.dev/model": "bikeshare", "aikube.dev/request": request, "aikube.dev/trace": "c" * 32},
    )


@pytest.fixture
def k8s() -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as double:
        yield double
        assert not double.invalid, [(r.method, r.path, r.response["message"]) for r in double.invalid]


def executor(k8s: FakeKubernetes, **options: Any) -> KubernetesExecutor:
    defaults: dict[str, Any] = {"api": k8s.api_client(), "poll_s": 0.01, "wait_timeout_s": 20}
    return KubernetesExecutor(NS, IMAGE, **{**defaults, **options})


def stored_job(k8s: FakeKubernetes, name: str = NAME) -> dict[str, Any]:
    job = k8s.get("jobs", NS, name)
    assert job is not None
    return job


def test_job_manifest_validates_strictly_against_the_schema() -> None:
    """The Job for a GPU request, with a label needing sanitising, is valid for Kubernetes 1.32 (strict)."""
    api = client.ApiClient()
    job = KubernetesExecutor(NS, IMAGE, api=api, gpu=1, node_selector={"pool": "gpu"}, volume_claim="store")
    body = api.sanitize_for_serialization(job.manifest(spec(request=LONG_REQUEST)))
    assert kubernetes_validate.validate(body, "1.32.0", strict=True) == "1.32"


def test_job_carries_name_labels_command_and_env(k8s: FakeKubernetes) -> None:
    """The created Job is named after the request, labelled for it and runs `python -m <module>` with its env."""
    executor(k8s, env={"AIKUBE_STORE": "gs://bucket/aikube"}).run(spec())
    job = stored_job(k8s)
    labels = job["metadata"]["labels"]
    assert labels["aikube.dev/request"] == REQUEST and labels["aikube.dev/model"] == "bikeshare"
    assert labels["app.kubernetes.io/managed-by"] == "aikube" and labels["app.kubernetes.io/instance"] == NAME
    pod = job["spec"]["template"]
    assert pod["metadata"]["labels"]["aikube.dev/request"] == REQUEST
    (container,) = pod["spec"]["containers"]
    assert container["image"] == IMAGE and container["command"] == ["python", "-m", "trainer_dispatcher.job"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["AIKUBE_TRAINING_REQUEST"] == '{"model": "bikeshare"}' and env["AIKUBE_STORE"] == "gs://bucket/aikube"
    assert env["TRACEPARENT"].startswith("00-") and container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_job_carries_resources_gpu_placement_deadline_and_ttl(k8s: FakeKubernetes) -> None:
    """Requests and limits, the GPU limit and node selector, retries, deadline, TTL and restartPolicy Never."""
    executor(
        k8s,
        resources=Resources(cpu="2", memory="4Gi"),
        gpu=1,
        node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"},
        backoff_limit=1,
        active_deadline_s=900,
        ttl_after_finished_s=3600,
        service_account="trainer-job",
    ).run(spec())
    job = stored_job(k8s)
    assert (job["spec"]["backoffLimit"], job["spec"]["activeDeadlineSeconds"]) == (1, 900)
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "trainer-job"
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    resources = pod["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": "2", "memory": "4Gi"}
    assert resources["limits"] == {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}


def test_label_values_are_sanitised_and_originals_kept(k8s: FakeKubernetes) -> None:
    """A request id that is no valid label value is cut to one (hash-suffixed); the exact id stays an annotation."""
    executor(k8s).run(spec(request=LONG_REQUEST))
    job = stored_job(k8s)
    value = job["metadata"]["labels"]["aikube.dev/request"]
    assert value == label_value(LONG_REQUEST) and len(value) <= 63 and value.startswith("retrain-xxx")
    assert job["metadata"]["annotations"]["aikube.dev/request"] == LONG_REQUEST
    assert label_value("model/churn v2") == "model-churn-v2" and label_value("ok-1.2_3") == "ok-1.2_3"


def test_successful_job_returns_succeeded(k8s: FakeKubernetes) -> None:
    """A Job whose Complete condition turns True is a success."""
    assert executor(k8s).run(spec()) == JobResult(NAME, True, "")


def test_failed_job_reports_reason_and_termination_message(k8s: FakeKubernetes) -> None:
    """BackoffLimitExceeded, with the last line the pod wrote (its termination message) appended."""
    k8s.job_plan = lambda job: JobPlan(
        "Failed",
        termination_message="Traceback (most recent call last):\ntraining failed: TrainingError: too few rows\n",
    )
    result = executor(k8s).run(spec())
    assert not result.succeeded
    assert result.error.startswith("BackoffLimitExceeded: Job has reached the specified backoff limit; pod ")
    assert result.error.endswith(": training failed: TrainingError: too few rows")


def test_deadline_exceeded_is_the_reason(k8s: FakeKubernetes) -> None:
    """A Job that ran past activeDeadlineSeconds fails with DeadlineExceeded and the controller's message."""
    k8s.job_plan = lambda job: JobPlan(
        "Failed", reads=4, reason="DeadlineExceeded", message="Job was active longer than specified deadline"
    )
    result = executor(k8s).run(spec())
    assert not result.succeeded
    assert result.error.startswith("DeadlineExceeded: Job was active longer than specified deadline")


def test_second_run_of_the_same_request_follows_the_existing_job(k8s: FakeKubernetes) -> None:
    """A redelivery (here a second dispatcher) gets 409 on create, starts nothing, and reads the same outcome."""
    k8s.job_plan = lambda job: JobPlan("Failed", reason="BackoffLimitExceeded", termination_message="boom")
    first = executor(k8s).run(spec())
    second = executor(k8s).run(spec())
    assert second == first and not first.succeeded
    assert len(k8s.calls("POST", "jobs", status=201)) == 1 and len(k8s.calls("POST", "jobs", status=409)) == 1
    assert [job["metadata"]["name"] for job in k8s.objects("jobs", NS)] == [NAME]


def test_concurrent_runs_of_one_request_share_one_job(k8s: FakeKubernetes) -> None:
    """Two replicas handling the same request at once: one creates the Job, the other follows it; both succeed."""
    k8s.job_plan = lambda job: JobPlan("Complete", reads=6)
    results: list[JobResult] = []
    threads = [threading.Thread(target=lambda: results.append(executor(k8s).run(spec()))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [JobResult(NAME, True, "")] * 2
    assert len(k8s.calls("POST", "jobs", status=201)) == 1 and len(k8s.objects("jobs", NS)) == 1


def test_job_without_outcome_times_out(k8s: FakeKubernetes) -> None:
    """Following gives up after wait_timeout_s with TimeoutError (the message is redelivered later)."""
    k8s.job_plan = lambda job: JobPlan("Running")
    with pytest.raises(TimeoutError, match=NAME):
        executor(k8s, wait_timeout_s=0.3).run(spec())


def test_api_refusal_surfaces() -> None:
    """The double answers a schema error 422 with the errors; the executor lets such an ApiException surface."""
    with FakeKubernetes() as k8s:
        batch = client.BatchV1Api(k8s.api_client())
        body = client.ApiClient().sanitize_for_serialization(executor(k8s).manifest(spec()))
        body["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy "] = "Always"  # a typo in a field name
        body["spec"]["backoffLimit"] = "two"
        with pytest.raises(ApiException) as refused:
            batch.create_namespaced_job(NS, body)
        assert refused.value.status == 422
        assert "imagePullPolicy " in refused.value.body and "backoffLimit" in refused.value.body
        # An invalid label value (what label_value prevents) is refused by the API server's own checks.
        body = client.ApiClient().sanitize_for_serialization(executor(k8s).manifest(spec()))
        body["metadata"]["labels"]["aikube.dev/request"] = "retrain:2011"
        with pytest.raises(ApiException) as refused:
            batch.create_namespaced_job(NS, body)
        assert refused.value.status == 422 and "retrain:2011" in refused.value.body
        assert len(k8s.invalid) == 2


def test_load_api_client_reads_the_kubeconfig(
    k8s: FakeKubernetes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside a cluster the client comes from KUBECONFIG; the executor runs through it."""
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: double, cluster: {{server: "{k8s.url}"}}}}]
users: [{{name: tester, user: {{token: not-checked}}}}]
contexts: [{{name: double, context: {{cluster: double, user: tester, namespace: {NS}}}}}]
current-context: double
"""
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    api = load_api_client()
    assert api.configuration.host == k8s.url
    assert KubernetesExecutor(NS, IMAGE, api=api, poll_s=0.01).run(spec()).succeeded


def test_load_api_client_prefers_the_in_cluster_service_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a service account mounted and KUBERNETES_SERVICE_HOST set, the kubeconfig is not read."""
    from kubernetes.config import incluster_config

    token, cert = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("service-account-token")
    cert.write_text("not a real certificate")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(cert))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    api = load_api_client()
    assert api.configuration.host == "https://10.0.0.1:443"
    assert api.configuration.api_key["BearerToken"].endswith("service-account-token")
