"""k8s/: each overlay builds with `kubectl kustomize`, every document validates against the Kubernetes schemas
(kubernetes-validate, strict), every pod is hardened, each catalog service has its Deployment + ServiceAccount and
starts with the settings its overlay gives it, and the two Roles grant no more than their comments say.

No API server runs here: these are the offline checks. kubectl is required on CI (CI=true) and skipped elsewhere only
when it is not installed.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from aikube.catalog import Catalog
from aikube.settings import ServiceSettings, load_settings

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = sorted(p.parent.name for p in (REPO / "k8s" / "overlays").glob("*/kustomization.yaml"))
KUBERNETES_VERSION = "1.32.0"  # the kubectl of the project's machines; GKE's regular channel is at or above it
NAMESPACE = "aikube"
EXTERNAL_PRODUCERS = {"aikube-sdk"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}
HEALTH_PORT = 8080

# The Roles, verb for verb: (apiGroup, resource) → verbs. Anything else in a Role fails the test.
ROLES = {
    "trainer-dispatcher": {
        ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
        ("", "pods"): {"get", "list"},
        ("", "pods/log"): {"get"},
    },
    "deployer": {
        ("apps", "deployments"): {"create", "get", "list", "watch", "patch", "update", "delete"},
        ("", "services"): {"create", "get", "list", "watch", "patch", "update", "delete"},
        ("", "pods"): {"list"},
    },
}


@cache
def build(overlay: str) -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is required on CI: it builds the kustomize overlays of k8s/")
        pytest.skip("kubectl is not installed")
    result = subprocess.run(
        [kubectl, "kustomize", str(REPO / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"kubectl kustomize k8s/overlays/{overlay} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_specs(docs: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        kind = doc["kind"]
        if kind not in WORKLOAD_KINDS:
            continue
        spec = doc["spec"]
        if kind == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        yield f"{kind}/{doc['metadata']['name']}", spec if kind == "Pod" else spec["template"]["spec"]


def catalog_services() -> set[str]:
    return Catalog.load(REPO / "events").services() - EXTERNAL_PRODUCERS


def service_deployments(docs: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    return {
        name: d
        for name, d in of_kind(docs, "Deployment").items()
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "service"
    }


def config_data(docs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    (config,) = [d for name, d in of_kind(docs, "ConfigMap").items() if name.startswith("aikube-config")]
    return dict(config["data"])


def test_overlays_exist() -> None:
    assert {"local", "gke"} <= set(OVERLAYS)


def test_every_document_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    docs = build(overlay)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_one_deployment_and_service_account_per_catalog_service(overlay: str) -> None:
    docs = build(overlay)
    services = catalog_services()
    deployments = service_deployments(docs)
    assert set(deployments) == services
    assert services <= set(of_kind(docs, "ServiceAccount"))
    scripts = {ep.name: ep for ep in entry_points(group="console_scripts")}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == name
        (container,) = pod["containers"]
        assert container["command"] == [f"aikube-{name}"]
        assert f"aikube-{name}" in scripts, f"no console script aikube-{name} is installed"
        assert deployment["spec"]["replicas"] >= 1


def test_every_pod_is_hardened(overlay: str) -> None:
    specs = dict(pod_specs(build(overlay)))
    assert specs
    for where, pod in specs.items():
        security = pod.get("securityContext", {})
        assert security.get("runAsNonRoot") is True, where
        assert security.get("runAsUser", 0) != 0, where
        assert security.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(key), f"{where}: {key}"
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        assert not [v for v in volumes.values() if "hostPath" in v], where
        for container in pod.get("initContainers", []) + pod["containers"]:
            at = f"{where} container {container['name']}"
            context = container.get("securityContext", {})
            assert context.get("allowPrivilegeEscalation") is False, at
            assert context.get("readOnlyRootFilesystem") is True, at
            assert context.get("privileged") is not True, at
            assert "ALL" in context.get("capabilities", {}).get("drop", []), at
            assert not context.get("capabilities", {}).get("add"), at
            assert context.get("runAsUser", security.get("runAsUser")) != 0, at
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), f"{at}: {bound}"
            # the one writable path: /tmp on an emptyDir
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts and "emptyDir" in volumes[mounts["/tmp"]], at


def test_every_deployment_has_liveness_and_readiness_probes(overlay: str) -> None:
    docs = build(overlay)
    for name, deployment in of_kind(docs, "Deployment").items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert "livenessProbe" in container and "readinessProbe" in container, name
    for name, deployment in service_deployments(docs).items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["health"] == HEALTH_PORT, name
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            assert container[probe]["httpGet"] == {"path": path, "port": "health"}, (name, probe)


def _settings_class(service: str) -> type[ServiceSettings]:
    (script,) = [ep for ep in entry_points(group="console_scripts") if ep.name == f"aikube-{service}"]
    module = importlib.import_module(script.module)
    settings = getattr(module, "Settings", ServiceSettings)
    assert issubclass(settings, ServiceSettings)
    return settings


def test_each_service_starts_with_the_settings_of_its_overlay(overlay: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each service's settings class loads from the ConfigMap plus the Secret references of its Deployment."""
    docs = build(overlay)
    data = config_data(docs)
    assert "set-by-overlay" not in data.values(), data
    assert data["AIKUBE_HEALTH_PORT"] == str(HEALTH_PORT)
    secrets = of_kind(docs, "Secret")
    for name, deployment in service_deployments(docs).items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        (source,) = container["envFrom"]
        assert source["configMapRef"]["name"].startswith("aikube-config")
        env = dict(data)
        for var in container.get("env", []):
            assert var["name"] not in data, f"{name}: {var['name']} is both in the ConfigMap and the Deployment"
            if "value" in var:
                env[var["name"]] = var["value"]
            elif "fieldRef" in var["valueFrom"]:
                assert var["valueFrom"]["fieldRef"] == {"fieldPath": "metadata.namespace"}, (name, var)
                env[var["name"]] = deployment["metadata"]["namespace"]
            else:  # anything else is a secret
                reference = var["valueFrom"]["secretKeyRef"]
                env[var["name"]] = f"from secret {reference['name']}/{reference['key']}"
                if overlay == "local":  # generated in the overlay; on GKE the Secret is created out of band
                    assert reference["key"] in secrets[reference["name"]]["data"], (name, reference)
        for key in [k for k in os.environ if k.startswith("AIKUBE_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = load_settings(_settings_class(name))
        assert settings.health_port == HEALTH_PORT


def test_jobs_and_model_servers_run_the_same_image_in_the_cluster(overlay: str) -> None:
    """trainer-dispatcher and deployer launch their pods from their own image, namespace and ServiceAccounts."""
    docs = build(overlay)
    accounts = of_kind(docs, "ServiceAccount")
    claims = of_kind(docs, "PersistentVolumeClaim")
    for name, (switch, account) in {
        "trainer-dispatcher": ("AIKUBE_EXECUTOR", "training-job"),
        "deployer": ("AIKUBE_SERVING", "model-server"),
    }.items():
        (container,) = service_deployments(docs)[name]["spec"]["template"]["spec"]["containers"]
        env = {v["name"]: v.get("value") for v in container["env"]}
        assert env[switch] == "kubernetes", name
        assert env["AIKUBE_KUBERNETES__IMAGE"] == container["image"], name
        assert env["AIKUBE_KUBERNETES__SERVICE_ACCOUNT"] == account and account in accounts, name
        if "AIKUBE_KUBERNETES__VOLUME_CLAIM" in env:  # the store's volume, mounted at the same path as here
            assert env["AIKUBE_KUBERNETES__VOLUME_CLAIM"] in claims, name
            mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            assert env["AIKUBE_KUBERNETES__VOLUME_PATH"] == mounts["data"], name
    assert ("AIKUBE_KUBERNETES__VOLUME_CLAIM" in str(docs)) is (overlay == "local")


def test_the_mask_salt_comes_from_a_secret(overlay: str) -> None:
    docs = build(overlay)
    assert not [k for k in config_data(docs) if "SALT" in k or "SECRET" in k]
    (container,) = service_deployments(docs)["ingestor"]["spec"]["template"]["spec"]["containers"]
    env = {v["name"]: v for v in container["env"]}
    assert env["AIKUBE_MASK_SALT"]["valueFrom"]["secretKeyRef"]["key"] == "mask-salt"


def test_roles_are_limited_to_what_the_services_create(overlay: str) -> None:
    docs = build(overlay)
    assert not of_kind(docs, "ClusterRole") and not of_kind(docs, "ClusterRoleBinding")
    roles = of_kind(docs, "Role")
    assert set(roles) == set(ROLES)
    for name, role in roles.items():
        granted: dict[tuple[str, str], set[str]] = {}
        for rule in role["rules"]:
            assert "resourceNames" not in rule or rule["resourceNames"], name
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    granted.setdefault((group, resource), set()).update(rule["verbs"])
        assert granted == ROLES[name], name
        assert not any("*" in str(key) or "*" in verbs for key, verbs in granted.items()), name
    bindings = of_kind(docs, "RoleBinding")
    assert set(bindings) == set(ROLES)
    for name, binding in bindings.items():
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]


def test_roles_cover_the_calls_documented_for_aikube_k8s(overlay: str) -> None:
    """Every rule docs/kubernetes.md lists for the classes of aikube.k8s is granted (tests/contract checks the doc)."""
    blocks = re.findall(r"```yaml\n(.*?)```", (REPO / "docs" / "kubernetes.md").read_text(), flags=re.S)
    documented = [d for block in blocks for d in yaml.safe_load_all(block) if d and d["kind"] == "Role"]
    assert {d["metadata"]["name"] for d in documented} == set(ROLES)
    for role in documented:
        needed = {
            (group, resource, verb)
            for rule in role["rules"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }
        granted = {(g, r, v) for (g, r), verbs in ROLES[role["metadata"]["name"]].items() for v in verbs}
        assert needed <= granted, needed - granted
    assert set(of_kind(build(overlay), "Role")) == set(ROLES)


def test_only_services_with_a_role_mount_an_api_token(overlay: str) -> None:
    docs = build(overlay)
    for where, pod in pod_specs(docs):
        name = where.split("/", 1)[1]
        assert pod.get("automountServiceAccountToken") is (name in ROLES), where
    for name, account in of_kind(docs, "ServiceAccount").items():
        if name not in catalog_services():  # launched workloads and helpers never call the API
            assert account.get("automountServiceAccountToken") is False, name


def test_everything_lives_in_one_restricted_namespace(overlay: str) -> None:
    docs = build(overlay)
    (namespace,) = of_kind(docs, "Namespace").values()
    assert namespace["metadata"]["name"] == NAMESPACE
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, (doc["kind"], doc["metadata"]["name"])


def test_gke_uses_workload_identity_the_registry_and_a_collector() -> None:
    docs = build("gke")
    data = config_data(docs)
    project = data["AIKUBE_PROJECT_ID"]
    accounts = of_kind(docs, "ServiceAccount")
    for name, account in accounts.items():
        annotation = account["metadata"].get("annotations", {}).get("iam.gke.io/gcp-service-account")
        assert annotation == f"{name}@{project}.iam.gserviceaccount.com", name
    assert catalog_services() | {"training-job", "model-server"} == set(accounts)
    for where, pod in pod_specs(docs):
        for container in pod["containers"]:
            registry, _, _ = container["image"].partition(f"/{project}/aikube/")
            assert registry.endswith("-docker.pkg.dev") and container["image"] != registry, (where, container["image"])
    assert data["AIKUBE_STORE"].startswith("gs://") and data["AIKUBE_WAREHOUSE"] == f"bigquery://{project}/aikube"
    assert data["AIKUBE_TRACE_EXPORTER"] == "otlp" and data["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http")
    assert "PUBSUB_EMULATOR_HOST" not in data
    assert not of_kind(docs, "Secret"), "no Secret is committed for GKE"


def test_local_runs_against_the_emulator_with_local_images() -> None:
    docs = build("local")
    data = config_data(docs)
    host, _, port = data["PUBSUB_EMULATOR_HOST"].partition(":")
    service = of_kind(docs, "Service")[host]
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    assert "pubsub-emulator" in of_kind(docs, "Deployment")
    assert "aikube-provision" in of_kind(docs, "Job")
    for where, pod in pod_specs(docs):
        for container in pod["containers"]:
            if container["name"] != "pubsub-emulator":
                assert container["image"].startswith("localhost:"), (where, container["image"])
    assert data["AIKUBE_STORE"].startswith("file:///") and data["AIKUBE_WAREHOUSE"].startswith("duckdb:///")
    # the store and warehouse folders are on the one shared volume of every service
    for name, deployment in service_deployments(docs).items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/var/lib/aikube" in mounts, name
