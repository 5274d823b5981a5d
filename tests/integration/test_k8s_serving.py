"""KubernetesServing against the Kubernetes API double: Deployment + Service per model, rollouts and rollbacks.

Every request body is validated by the double against the official 1.32 schema (strict) and the API server's
update rules (resourceVersion, immutable selector and clusterIP); `k8s.invalid` is checked after each test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import kubernetes_validate
import pytest
from k8s_api import FakeKubernetes, RolloutPlan
from kubernetes import client

from aikube.k8s import PREVIOUS_TEMPLATE_KEY, REVISION_KEY, KubernetesServing, Resources, serving_name
from aikube.rollout import RolloutFailed

NS = "aikube-test"
IMAGE = "registry.example.com/aikube/model-server:1.4"
MODEL = "bikeshare"
NAME = "model-bikeshare"
ENDPOINT = f"http://model-bikeshare.{NS}.svc.cluster.local"


def artifact(version: str) -> str:
    return f"gs://aikube-models/registry/{MODEL}/{version}/model.joblib"


def failing(*versions: str, outcome: str = "ProgressDeadlineExceeded") -> Callable[[dict[str, Any]], RolloutPlan]:
    """A rollout plan: these versions never become ready, every other one does."""

    def plan(deployment: dict[str, Any]) -> RolloutPlan:
        version = deployment["spec"]["template"]["metadata"]["annotations"]["aikube.dev/version"]
        return RolloutPlan(outcome if version in versions else "Available")  # type: ignore[arg-type]

    return plan


@pytest.fixture
def k8s() -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as double:
        yield double
        assert not double.invalid, [(r.method, r.path, r.response["message"]) for r in double.invalid]


def serving(k8s: FakeKubernetes, **options: Any) -> KubernetesServing:
    defaults: dict[str, Any] = {"api": k8s.api_client(), "poll_s": 0.01, "rollout_timeout_s": 10}
    return KubernetesServing(NS, IMAGE, **{**defaults, **options})


def deployment(k8s: FakeKubernetes) -> dict[str, Any]:
    found = k8s.get("deployments", NS, NAME)
    assert found is not None
    return found


def served_version(k8s: FakeKubernetes) -> str:
    return str(deployment(k8s)["spec"]["template"]["metadata"]["annotations"]["aikube.dev/version"])


def test_manifests_validate_strictly_against_the_schema() -> None:
    """Deployment and Service bodies are valid for Kubernetes 1.32 (strict)."""
    backend = KubernetesServing(NS, IMAGE, api=client.ApiClient(), volume_claim="store")
    template = backend.pod_template(MODEL, "v1", artifact("v1"))
    assert kubernetes_validate.validate(backend.deployment(MODEL, template), "1.32.0", strict=True) == "1.32"
    assert kubernetes_validate.validate(backend.service(MODEL), "1.32.0", strict=True) == "1.32"


def test_first_deploy_creates_deployment_and_service_and_returns_the_endpoint(k8s: FakeKubernetes) -> None:
    """A rollout that becomes available returns the Service's cluster DNS name; revision 1 serves."""
    backend = serving(k8s, resources=Resources(cpu="500m", memory="1Gi"), replicas=2)
    assert backend.deploy(MODEL, "v1", artifact("v1")) == ENDPOINT
    assert (backend.served(MODEL).version, backend.served(MODEL).revision) == ("v1", "1")  # type: ignore[union-attr]
    found = deployment(k8s)
    assert found["metadata"]["annotations"]["aikube.dev/version"] == "v1"
    assert found["metadata"]["annotations"][REVISION_KEY] == "1"
    spec = found["spec"]
    assert spec["replicas"] == 2 and spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert spec["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "model-server",
        "app.kubernetes.io/instance": NAME,
    }
    pod = spec["template"]
    assert (
        pod["metadata"]["labels"]["aikube.dev/model"] == MODEL
        and pod["metadata"]["labels"]["aikube.dev/version"] == "v1"
    )
    (container,) = pod["spec"]["containers"]
    assert container["command"] == [
        "python", "-m", "aikube.serving", "--artifact-uri", artifact("v1"), "--version", "v1",
        "--port", "8080", "--host", "0.0.0.0",
    ]  # fmt: skip
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "500m", "memory": "1Gi"},
    }
    service = k8s.get("services", NS, NAME)
    assert service is not None and service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]


def test_update_rolls_the_same_deployment_to_the_new_version(k8s: FakeKubernetes) -> None:
    """A second version updates the model's one Deployment (generation 2, revision 2); the Service stays."""
    backend = serving(k8s)
    backend.deploy(MODEL, "v1", artifact("v1"))
    assert backend.deploy(MODEL, "v2", artifact("v2")) == ENDPOINT
    backend.retire(MODEL, keep="v2")  # one Deployment per model: nothing left to stop
    found = deployment(k8s)
    assert served_version(k8s) == "v2" and found["metadata"]["annotations"]["aikube.dev/version"] == "v2"
    assert artifact("v2") in found["spec"]["template"]["spec"]["containers"][0]["command"]
    assert found["metadata"]["generation"] == 2 and found["metadata"]["annotations"][REVISION_KEY] == "2"
    assert backend.served(MODEL).revision == "2"  # type: ignore[union-attr]
    assert len(k8s.objects("deployments", NS)) == 1 and len(k8s.objects("services", NS)) == 1
    assert len(k8s.calls("POST", "deployments", status=201)) == 1 and len(k8s.calls("PUT", "deployments")) == 1


def test_deploying_the_serving_version_again_changes_nothing(k8s: FakeKubernetes) -> None:
    """A redelivered deploy of the version already rolled out writes nothing and returns the endpoint."""
    backend = serving(k8s)
    backend.deploy(MODEL, "v1", artifact("v1"))
    assert serving(k8s).deploy(MODEL, "v1", artifact("v1")) == ENDPOINT
    assert deployment(k8s)["metadata"]["generation"] == 1 and not k8s.calls("PUT", "deployments")


def test_failed_rollout_rolls_back_to_the_previous_template(k8s: FakeKubernetes) -> None:
    """ProgressDeadlineExceeded: the template read before the update is re-applied; the error names what serves."""
    k8s.rollout_plan = failing("v2")
    backend = serving(k8s)
    backend.deploy(MODEL, "v1", artifact("v1"))
    before = deployment(k8s)["spec"]["template"]
    with pytest.raises(RolloutFailed) as failed:
        backend.deploy(MODEL, "v2", artifact("v2"))
    message = str(failed.value)
    assert "version v2 did not roll out (ProgressDeadlineExceeded" in message and "CrashLoopBackOff" in message
    assert "version v1 serves (revision 3)" in message
    assert (failed.value.serving_version, failed.value.serving_revision) == ("v1", "3")
    found = deployment(k8s)
    assert found["spec"]["template"] == before and served_version(k8s) == "v1"
    assert found["metadata"]["annotations"]["aikube.dev/version"] == "v1"
    assert PREVIOUS_TEMPLATE_KEY not in found["metadata"]["annotations"]
    assert backend.served(MODEL).version == "v1"  # type: ignore[union-attr]
    # The next version still rolls out from there.
    assert backend.deploy(MODEL, "v3", artifact("v3")) == ENDPOINT and served_version(k8s) == "v3"


def test_rollout_that_never_completes_is_rolled_back_after_the_timeout(k8s: FakeKubernetes) -> None:
    """A rollout still progressing after rollout_timeout_s counts as failed and is rolled back too."""
    k8s.rollout_plan = failing("v2", outcome="Progressing")
    backend = serving(k8s, rollout_timeout_s=0.5)
    backend.deploy(MODEL, "v1", artifact("v1"))
    with pytest.raises(RolloutFailed, match=r"not complete after 0.5s.*version v1 serves"):
        backend.deploy(MODEL, "v2", artifact("v2"))
    assert served_version(k8s) == "v1"


def test_failed_first_rollout_deletes_the_deployment(k8s: FakeKubernetes) -> None:
    """With no earlier version to go back to, the failing Deployment is deleted and nothing serves."""
    k8s.rollout_plan = failing("v1")
    with pytest.raises(RolloutFailed, match="nothing serves") as failed:
        serving(k8s).deploy(MODEL, "v1", artifact("v1"))
    assert failed.value.serving_version is None
    assert k8s.get("deployments", NS, NAME) is None and not k8s.objects("pods", NS)


def test_rollback_survives_a_deployer_restart_mid_rollout(k8s: FakeKubernetes) -> None:
    """The template to go back to is kept on the Deployment: a new deployer finishing the rollout can roll back."""
    k8s.rollout_plan = failing("v2")
    crashed = serving(k8s)
    crashed.deploy(MODEL, "v1", artifact("v1"))
    before = deployment(k8s)["spec"]["template"]
    crashed._apply(MODEL, crashed.pod_template(MODEL, "v2", artifact("v2")))  # updated, then the process died
    assert served_version(k8s) == "v2"
    with pytest.raises(RolloutFailed, match="version v1 serves"):
        serving(k8s).deploy(MODEL, "v2", artifact("v2"))  # the redelivered event, on a new deployer
    assert deployment(k8s)["spec"]["template"] == before


def test_existing_service_is_reconciled_not_duplicated(k8s: FakeKubernetes) -> None:
    """A Service left with another selector is corrected in place, keeping its cluster IP."""
    core = client.CoreV1Api(k8s.api_client())
    stale = serving(k8s).service(MODEL)
    stale["spec"]["selector"] = {"app": "old"}
    cluster_ip = core.create_namespaced_service(NS, stale).spec.cluster_ip
    serving(k8s).deploy(MODEL, "v1", artifact("v1"))
    service = k8s.get("services", NS, NAME)
    assert service is not None and service["spec"]["clusterIP"] == cluster_ip
    assert service["spec"]["selector"]["app.kubernetes.io/instance"] == NAME


def test_names_are_dns_labels() -> None:
    """Model names become DNS-1035 labels; long ones keep a hash so they stay distinct."""
    assert serving_name("bikeshare") == "model-bikeshare" and serving_name("Churn_v2").startswith("model-churn-v2-")
    long_a, long_b = serving_name("m" * 80 + "a"), serving_name("m" * 80 + "b")
    assert len(long_a) <= 63 and long_a != long_b
