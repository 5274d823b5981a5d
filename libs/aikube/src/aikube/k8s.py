"""Kubernetes backends: training runs as a batch/v1 Job, a model serves from one Deployment + Service per model.

Both talk to the API server through the official client; `load_api_client()` tries the in-cluster service account
first, then the kubeconfig (KUBECONFIG or ~/.kube/config). The RBAC each needs is in docs/kubernetes.md.

Example:
    >>> executor = KubernetesExecutor("aikube", "registry.example.com/aikube/trainer:1.4", gpu=1)
    >>> executor.run(JobSpec("train-bikes-r1-0a1b2c3d4e", "trainer_dispatcher.job", env={...}))
    JobResult(name='train-bikes-r1-0a1b2c3d4e', succeeded=True, error='')

    >>> serving = KubernetesServing("aikube", "registry.example.com/aikube/model-server:1.4")
    >>> serving.deploy("bikes", "20110301T0000-3f2a1c", "gs://bucket/registry/bikes/.../model.joblib")
    'http://model-bikes.aikube.svc.cluster.local'
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from aikube.executors import JobResult, JobSpec
from aikube.locks import KeyedLocks
from aikube.rollout import RolloutFailed

log = logging.getLogger(__name__)

PART_OF = "aikube"
MANAGED_BY = "aikube"
VERSION_KEY = "aikube.dev/version"  # annotation (exact) and label (sanitised) of the served model version
ARTIFACT_KEY = "aikube.dev/artifact-uri"
TEMPLATE_HASH_KEY = "aikube.dev/template-hash"  # digest of the pod template we rendered: unchanged → no update
PREVIOUS_TEMPLATE_KEY = "aikube.dev/previous-template"  # rollback target, kept on the object to survive restarts
REVISION_KEY = "deployment.kubernetes.io/revision"  # set by the Deployment controller
_GPU = "nvidia.com/gpu"
_LABEL_MAX = 63
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$")
_TMP = "/tmp"


def load_api_client(context: str | None = None) -> client.ApiClient:
    """An API client from the pod's service account when running in a cluster, else from the kubeconfig.

    The kubeconfig is $KUBECONFIG (one path or several joined by ':') or ~/.kube/config.

    Args:
        context: kubeconfig context to use outside a cluster (default: the current one).

    Raises:
        ConfigException: neither an in-cluster service account nor a usable kubeconfig was found.
    """
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
        log.info("kubernetes config: in-cluster service account")
    except ConfigException:
        # KUBECONFIG is read now: the client library reads it once, at import.
        config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG") or None,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
        log.info("kubernetes config: kubeconfig", extra={"host": configuration.host})
    return client.ApiClient(configuration)


@dataclass(frozen=True)
class Resources:
    """CPU and memory requests of one container; a limit left unset equals its request (Guaranteed QoS)."""

    cpu: str = "1"
    memory: str = "2Gi"
    cpu_limit: str | None = None
    memory_limit: str | None = None

    def __post_init__(self) -> None:
        for name in ("cpu", "memory", "cpu_limit", "memory_limit"):
            value = getattr(self, name)
            if value is not None and not _QUANTITY.match(value):
                raise ValueError(f"resources.{name}={value!r} is not a Kubernetes quantity (e.g. 500m, 2, 1Gi)")

    def requirements(self, gpu: int = 0) -> client.V1ResourceRequirements:
        limits = {"cpu": self.cpu_limit or self.cpu, "memory": self.memory_limit or self.memory}
        if gpu:
            limits[_GPU] = str(gpu)  # extended resources: the request defaults to the limit
        return client.V1ResourceRequirements(requests={"cpu": self.cpu, "memory": self.memory}, limits=limits)


def label_value(value: str) -> str:
    """`value` as a valid label value: ≤ 63 characters of [A-Za-z0-9-_.], alphanumeric at both ends.

    Invalid characters become '-'; a value that has to be shortened keeps a hash suffix, so distinct long values
    stay distinct. Valid values are returned unchanged.
    """
    if len(value) <= _LABEL_MAX and _LABEL_VALUE.match(value):
        return value
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", value).strip("-_.")
    if len(cleaned) > _LABEL_MAX or not cleaned:
        digest = hashlib.sha256(value.encode()).hexdigest()[:10]
        cleaned = f"{cleaned[: _LABEL_MAX - len(digest) - 1].rstrip('-_.')}-{digest}".lstrip("-")
    return cleaned


def serving_name(model: str) -> str:
    """The Deployment and Service name of a model: `model-<model>`, a DNS-1035 label (hash-suffixed if cut)."""
    readable = re.sub(r"[^a-z0-9]+", "-", f"model-{model}".lower()).strip("-")
    if len(readable) <= _LABEL_MAX and readable == f"model-{model}":
        return readable
    digest = hashlib.sha256(model.encode()).hexdigest()[:8]
    return f"{readable[: _LABEL_MAX - len(digest) - 1].rstrip('-')}-{digest}"


def _labels(raw: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Sanitised labels, and annotations keeping the exact values of the labels that sanitising changed."""
    labels = {key: label_value(value) for key, value in raw.items()}
    originals = {key: value for key, value in raw.items() if labels[key] != value}
    return labels, originals


def _security_context() -> client.V1SecurityContext:
    return client.V1SecurityContext(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        capabilities=client.V1Capabilities(drop=["ALL"]),
    )


def _pod_security_context(uid: int) -> client.V1PodSecurityContext:
    return client.V1PodSecurityContext(
        run_as_non_root=True,
        run_as_user=uid,
        run_as_group=uid,
        fs_group=uid,
        seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
    )


def _volumes(claim: str | None, path: str) -> tuple[list[client.V1Volume], list[client.V1VolumeMount]]:
    """A writable /tmp (the root filesystem is read-only) and, optionally, the shared store's claim."""
    volumes = [client.V1Volume(name="tmp", empty_dir=client.V1EmptyDirVolumeSource())]
    mounts = [client.V1VolumeMount(name="tmp", mount_path=_TMP)]
    if claim:
        volumes.append(
            client.V1Volume(
                name="shared", persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(claim_name=claim)
            )
        )
        mounts.append(client.V1VolumeMount(name="shared", mount_path=path))
    return volumes, mounts


def _env(values: Mapping[str, str]) -> list[client.V1EnvVar]:
    # HOME and TMPDIR point at the writable /tmp volume; the caller's values win.
    merged = {"HOME": _TMP, "TMPDIR": _TMP, **values}
    return [client.V1EnvVar(name=key, value=value) for key, value in sorted(merged.items())]


def _transient(exc: Exception) -> bool:
    """Errors worth another poll: API server overload or restarts, dropped connections."""
    if isinstance(exc, ApiException):
        return exc.status in (429, 500, 502, 503, 504)
    return isinstance(exc, urllib3.exceptions.HTTPError)


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _pod_problem(api: client.CoreV1Api, namespace: str, selector: str) -> str:
    """What the newest matching pod says about its failure (termination message, waiting reason), or ""."""
    try:
        pods = api.list_namespaced_pod(namespace, label_selector=selector).items
    except (ApiException, urllib3.exceptions.HTTPError) as exc:  # best effort: e.g. no RBAC to list pods
        log.debug("cannot list pods", extra={"selector": selector, "error": str(exc)})
        return ""
    pods.sort(key=lambda pod: pod.metadata.creation_timestamp.timestamp() if pod.metadata.creation_timestamp else 0)
    for pod in reversed(pods):
        for status in (pod.status and pod.status.container_statuses) or []:
            state = status.state
            if state and state.terminated and state.terminated.exit_code:
                done = state.terminated
                detail = _last_line(done.message) or f"{done.reason or 'Error'} (exit code {done.exit_code})"
                if done.reason and done.reason != "Error" and done.reason not in detail:
                    detail = f"{done.reason} (exit code {done.exit_code}): {detail}"
                return f"pod {pod.metadata.name}: {detail}"
            if state and state.waiting and state.waiting.reason not in (None, "ContainerCreating", "PodInitializing"):
                message = _last_line(state.waiting.message)
                return f"pod {pod.metadata.name}: {state.waiting.reason}" + (f": {message}" if message else "")
    return ""


class KubernetesExecutor:
    """Runs a JobSpec as a batch/v1 Job named after the request and waits for its Complete or Failed condition.

    The Job name is the idempotency fence: a create answered 409 AlreadyExists means this request already has a
    Job (another replica, a redelivery, a dispatcher restarted mid-job), which is followed instead of started again.
    A finished Job stays readable for `ttl_after_finished_s`, so a redelivery within that time gets its outcome.
    """

    def __init__(
        self,
        namespace: str,
        image: str,
        *,
        api: client.ApiClient | None = None,
        resources: Resources | None = None,
        gpu: int = 0,
        node_selector: Mapping[str, str] | None = None,
        backoff_limit: int = 2,
        active_deadline_s: int = 3600,
        ttl_after_finished_s: int = 86400,
        poll_s: float = 2.0,
        wait_timeout_s: float | None = None,
        service_account: str | None = None,
        env: Mapping[str, str] | None = None,
        volume_claim: str | None = None,
        volume_path: str = "/var/lib/aikube",
        run_as_user: int = 10001,  # the uid of the project image (Dockerfile)
    ) -> None:
        """Configure the Job; nothing is sent to the API server before `run`.

        Args:
        namespace, image: where the Job runs and the image holding the job's module.
        api: an API client (default: `load_api_client()`); closed by `close()`.
        resources, gpu, node_selector: the container's CPU/memory, `nvidia.com/gpu` limit and node placement.
        backoff_limit, active_deadline_s, ttl_after_finished_s: the Job's retries, run-time cap and clean-up delay.
        poll_s: seconds between status reads. wait_timeout_s: give up following after this (default: the
            deadline plus 10 minutes for scheduling and image pulls), raising TimeoutError.
        service_account: the pod's service account (e.g. bound to a cloud identity for the store).
        env: variables every job gets (store, warehouse, telemetry); the JobSpec's env wins.
        volume_claim, volume_path: a PersistentVolumeClaim mounted at `volume_path` (a file:// store).
        """
        if gpu < 0 or backoff_limit < 0 or active_deadline_s <= 0 or ttl_after_finished_s < 0:
            raise ValueError("gpu, backoff_limit and ttl_after_finished_s must be ≥ 0, active_deadline_s > 0")
        self.namespace = namespace
        self.image = image
        self.api = api or load_api_client()
        self.resources = resources or Resources()
        self.gpu = gpu
        self.node_selector = dict(node_selector or {})
        self.backoff_limit = backoff_limit
        self.active_deadline_s = int(active_deadline_s)
        self.ttl_after_finished_s = int(ttl_after_finished_s)
        self.poll_s = poll_s
        self.wait_timeout_s = wait_timeout_s if wait_timeout_s is not None else active_deadline_s + 600.0
        self.service_account = service_account
        self.env = dict(env or {})
        self.volume_claim = volume_claim
        self.volume_path = volume_path
        self.run_as_user = run_as_user
        self._batch = client.BatchV1Api(self.api)
        self._core = client.CoreV1Api(self.api)

    def manifest(self, job: JobSpec) -> client.V1Job:
        """The Job this executor creates for `job` (also what the tests validate against the schema)."""
        labels, originals = _labels(
            {
                **job.labels,
                "app.kubernetes.io/name": "aikube-job",
                "app.kubernetes.io/instance": job.name,
                "app.kubernetes.io/component": label_value(job.module.split(".")[0].replace("_", "-")),
                "app.kubernetes.io/part-of": PART_OF,
                "app.kubernetes.io/managed-by": MANAGED_BY,
            }
        )
        volumes, mounts = _volumes(self.volume_claim, self.volume_path)
        container = client.V1Container(
            name="job",
            image=self.image,
            command=["python", "-m", job.module],
            env=_env({**self.env, **job.env}),
            resources=self.resources.requirements(self.gpu),
            security_context=_security_context(),
            volume_mounts=mounts,
            # The entry point prints its failure reason as the last line of stderr: it becomes the message.
            termination_message_policy="FallbackToLogsOnError",
        )
        tolerations = (
            [client.V1Toleration(key=_GPU, operator="Exists", effect="NoSchedule")] if self.gpu else None
        )  # GPU node pools are tainted so that only pods asking for GPUs land there
        pod = client.V1PodSpec(
            containers=[container],
            restart_policy="Never",
            node_selector=self.node_selector or None,
            tolerations=tolerations,
            service_account_name=self.service_account,
            automount_service_account_token=False,  # the job never calls the Kubernetes API
            security_context=_pod_security_context(self.run_as_user),
            volumes=volumes,
        )
        metadata = client.V1ObjectMeta(
            name=job.name, namespace=self.namespace, labels=labels, annotations=originals or None
        )
        return client.V1Job(
            api_version="batch/v1",
            kind="Job",
            metadata=metadata,
            spec=client.V1JobSpec(
                backoff_limit=self.backoff_limit,
                active_deadline_seconds=self.active_deadline_s,
                ttl_seconds_after_finished=self.ttl_after_finished_s,
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels, annotations=originals or None), spec=pod
                ),
            ),
        )

    def run(self, job: JobSpec) -> JobResult:
        """Create the request's Job (or find the one it already has) and wait for its outcome.

        Raises:
            TimeoutError: the Job has no outcome after `wait_timeout_s`; a redelivery follows the same Job.
            ApiException: the API server refused the Job (e.g. 403 without RBAC, 422 invalid).
        """
        try:
            self._batch.create_namespaced_job(self.namespace, self.manifest(job))
            log.info("job created", extra={"job": job.name, "namespace": self.namespace})
        except ApiException as exc:
            if exc.status != 409:
                raise
            log.info("job exists: following it", extra={"job": job.name, "namespace": self.namespace})
        return self._follow(job.name)

    def _follow(self, name: str) -> JobResult:
        deadline = time.monotonic() + self.wait_timeout_s
        while True:
            try:
                # The Job itself, not its /status subresource: the Role then needs only jobs get.
                status = self._batch.read_namespaced_job(name, self.namespace).status
            except ApiException as exc:
                if exc.status == 404:
                    raise RuntimeError(f"job {self.namespace}/{name} disappeared before it finished") from exc
                if not _transient(exc):
                    raise
                status = None
            except urllib3.exceptions.HTTPError as exc:
                log.warning("job status unreadable; retrying", extra={"job": name, "error": str(exc)})
                status = None
            for condition in (status and status.conditions) or []:
                if condition.status != "True":
                    continue
                if condition.type == "Complete":
                    log.info("job succeeded", extra={"job": name})
                    return JobResult(name, True)
                if condition.type == "Failed":
                    error = f"{condition.reason or 'Failed'}: {condition.message or 'job failed'}"
                    if problem := _pod_problem(self._core, self.namespace, f"job-name={name}"):
                        error = f"{error}; {problem}"
                    log.info("job failed", extra={"job": name, "error": error})
                    return JobResult(name, False, error)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.namespace}/{name} has no outcome after {self.wait_timeout_s:.0f}s")
            time.sleep(self.poll_s)

    def close(self) -> None:
        self.api.close()


@dataclass(frozen=True)
class Served:
    """What a model's Deployment serves after a deploy: the version and the controller's revision number."""

    model: str
    version: str
    revision: str
    endpoint: str


class KubernetesServing:
    """One Deployment + ClusterIP Service per model; a new version is a rolling update of its pod template.

    The Deployment rolls with maxUnavailable 0 / maxSurge 1, so the old pods keep serving until a new one passes
    its readiness probe; the Service name, and so the endpoint, never changes. A rollout that does not complete
    (ProgressDeadlineExceeded, or `rollout_timeout_s`) is rolled back to the pod template read before the update,
    which is also kept in an annotation so that a deployer restarted mid-rollout can still roll back.
    """

    def __init__(
        self,
        namespace: str,
        image: str,
        *,
        api: client.ApiClient | None = None,
        port: int = 8080,
        resources: Resources | None = None,
        replicas: int = 1,
        rollout_timeout_s: float = 300.0,
        poll_s: float = 2.0,
        service_account: str | None = None,
        env: Mapping[str, str] | None = None,
        volume_claim: str | None = None,
        volume_path: str = "/var/lib/aikube",
        run_as_user: int = 10001,  # the uid of the project image (Dockerfile)
    ) -> None:
        if replicas < 1 or rollout_timeout_s <= 0:
            raise ValueError("replicas must be ≥ 1 and rollout_timeout_s > 0")
        self.namespace = namespace
        self.image = image
        self.api = api or load_api_client()
        self.port = port
        self.resources = resources or Resources(cpu="250m", memory="512Mi")
        self.replicas = replicas
        self.rollout_timeout_s = rollout_timeout_s
        self.poll_s = poll_s
        self.service_account = service_account
        self.env = dict(env or {})
        self.volume_claim = volume_claim
        self.volume_path = volume_path
        self.run_as_user = run_as_user
        self._apps = client.AppsV1Api(self.api)
        self._core = client.CoreV1Api(self.api)
        self._served: dict[str, Served] = {}
        self._locks = KeyedLocks()

    # --- manifests ------------------------------------------------------------------------------------------------

    def _selector(self, model: str) -> dict[str, str]:
        # Immutable once created: never put the version here.
        return {"app.kubernetes.io/name": "model-server", "app.kubernetes.io/instance": serving_name(model)}

    def pod_template(self, model: str, version: str, artifact_uri: str) -> dict[str, Any]:
        """The pod template of a version, as the JSON the API server receives (with its digest annotation)."""
        labels = {
            **self._selector(model),
            "app.kubernetes.io/part-of": PART_OF,
            "app.kubernetes.io/managed-by": MANAGED_BY,
            "aikube.dev/model": label_value(model),
            VERSION_KEY: label_value(version),
        }
        probe = {"http_get": client.V1HTTPGetAction(path="/healthz", port="http"), "timeout_seconds": 2}
        volumes, mounts = _volumes(self.volume_claim, self.volume_path)
        container = client.V1Container(
            name="model-server",
            image=self.image,
            command=["python", "-m", "aikube.serving", "--artifact-uri", artifact_uri, "--version", version]
            + ["--port", str(self.port), "--host", "0.0.0.0"],
            ports=[client.V1ContainerPort(name="http", container_port=self.port, protocol="TCP")],
            env=_env(self.env),
            resources=self.resources.requirements(),
            readiness_probe=client.V1Probe(**probe, period_seconds=5, failure_threshold=3),
            liveness_probe=client.V1Probe(**probe, initial_delay_seconds=10, period_seconds=10, failure_threshold=3),
            security_context=_security_context(),
            volume_mounts=mounts,
            termination_message_policy="FallbackToLogsOnError",
        )
        template = client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels=labels, annotations={VERSION_KEY: version, ARTIFACT_KEY: artifact_uri}),
            spec=client.V1PodSpec(
                containers=[container],
                service_account_name=self.service_account,
                automount_service_account_token=False,
                security_context=_pod_security_context(self.run_as_user),
                volumes=volumes,
            ),
        )
        body: dict[str, Any] = self.api.sanitize_for_serialization(template)
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        body["metadata"]["annotations"][TEMPLATE_HASH_KEY] = digest
        return body

    def deployment(self, model: str, template: dict[str, Any]) -> dict[str, Any]:
        """A new Deployment serving `template` (rendered by `pod_template`)."""
        name = serving_name(model)
        version = template["metadata"]["annotations"][VERSION_KEY]
        labels = {k: v for k, v in template["metadata"]["labels"].items() if k != VERSION_KEY}
        deployment = client.V1Deployment(
            api_version="apps/v1",
            kind="Deployment",
            metadata=client.V1ObjectMeta(
                name=name, namespace=self.namespace, labels=labels, annotations={VERSION_KEY: version}
            ),
            spec=client.V1DeploymentSpec(
                replicas=self.replicas,
                selector=client.V1LabelSelector(match_labels=self._selector(model)),
                template=client.V1PodTemplateSpec(),  # replaced by the rendered template below
                strategy=client.V1DeploymentStrategy(
                    type="RollingUpdate",
                    rolling_update=client.V1RollingUpdateDeployment(max_unavailable=0, max_surge=1),
                ),
                progress_deadline_seconds=max(1, int(self.rollout_timeout_s)),
                revision_history_limit=5,
            ),
        )
        body: dict[str, Any] = self.api.sanitize_for_serialization(deployment)
        body["spec"]["template"] = copy.deepcopy(template)
        return body

    def service(self, model: str) -> dict[str, Any]:
        name = serving_name(model)
        labels = {**self._selector(model), "app.kubernetes.io/part-of": PART_OF, "aikube.dev/model": label_value(model)}
        service = client.V1Service(
            api_version="v1",
            kind="Service",
            metadata=client.V1ObjectMeta(name=name, namespace=self.namespace, labels=labels),
            spec=client.V1ServiceSpec(
                type="ClusterIP",
                selector=self._selector(model),
                ports=[client.V1ServicePort(name="http", port=80, target_port="http", protocol="TCP")],
            ),
        )
        body: dict[str, Any] = self.api.sanitize_for_serialization(service)
        return body

    def endpoint(self, model: str) -> str:
        return f"http://{serving_name(model)}.{self.namespace}.svc.cluster.local"

    # --- ServingBackend -------------------------------------------------------------------------------------------

    def deploy(self, model: str, version: str, artifact_uri: str) -> str:
        """Roll the model's Deployment to `version` and return its Service URL once every replica runs it.

        Idempotent: a Deployment already on this exact template is only waited for.

        Raises:
            RolloutFailed: the rollout did not complete; the previous template was re-applied (its version and
                revision are named, and set as `serving_version` / `serving_revision`), or, for a model's first
                version, the Deployment was deleted and nothing serves.
        """
        name = serving_name(model)
        with self._locks.hold(model):
            template = self.pod_template(model, version, artifact_uri)
            previous = self._apply(model, template)
            self._ensure_service(model)
            failure = self._await_rollout(name)
            if failure is None:
                served = self._record(model, self._read(name), "rolled out")
                return served.endpoint
            raise self._roll_back(model, version, failure, previous)

    def retire(self, model: str, keep: str) -> None:
        """Nothing to do: one Deployment per model, so the rolling update already replaced the older version's pods.

        The ReplicaSets of earlier revisions stay at zero replicas (revisionHistoryLimit) for `kubectl rollout undo`.
        """

    def served(self, model: str) -> Served | None:
        """The version and revision that the last deploy of `model` left serving (None before any deploy)."""
        return self._served.get(model)

    def close(self) -> None:
        self.api.close()

    # --- steps ----------------------------------------------------------------------------------------------------

    def _read(self, name: str) -> dict[str, Any] | None:
        """The Deployment as raw JSON (lossless for a read-modify-write), or None."""
        try:
            response = self._apps.read_namespaced_deployment(name, self.namespace, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        found: dict[str, Any] = json.loads(response.data)
        return found

    def _update(self, name: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Read, change and replace the Deployment, again on a 409 Conflict (someone else wrote in between)."""
        for _ in range(5):
            current = self._read(name)
            if current is None:
                raise RolloutFailed(f"deployment {self.namespace}/{name} disappeared during the update")
            change(current)
            try:
                self._apps.replace_namespaced_deployment(name, self.namespace, current)
                return current
            except ApiException as exc:
                if exc.status != 409:
                    raise
        raise RolloutFailed(f"deployment {self.namespace}/{name}: too many conflicting writers")

    def _apply(self, model: str, template: dict[str, Any]) -> dict[str, Any] | None:
        """Create the Deployment or put `template` into it; returns the template to roll back to (None: none)."""
        name = serving_name(model)
        current = self._read(name)
        if current is None:
            try:
                self._apps.create_namespaced_deployment(self.namespace, self.deployment(model, template))
                log.info("deployment created", extra={"deployment": name, "version": _version(template)})
                return None
            except ApiException as exc:
                if exc.status != 409:
                    raise
                current = self._read(name)  # created concurrently: update it like any other
                if current is None:
                    raise RolloutFailed(f"deployment {self.namespace}/{name} appeared and vanished") from exc
        annotations = current["metadata"].get("annotations") or {}
        live = current["spec"]["template"]
        if _annotations(live).get(TEMPLATE_HASH_KEY) == _annotations(template)[TEMPLATE_HASH_KEY]:
            # Already on this template (a redelivery, maybe after a restart mid-rollout): only wait for it.
            kept = annotations.get(PREVIOUS_TEMPLATE_KEY)
            return json.loads(kept) if kept else None
        previous = copy.deepcopy(live)

        def put_template(deployment: dict[str, Any]) -> None:
            meta = deployment["metadata"]
            meta["annotations"] = {
                **(meta.get("annotations") or {}),
                VERSION_KEY: _version(template),
                PREVIOUS_TEMPLATE_KEY: json.dumps(previous, sort_keys=True, separators=(",", ":")),
            }
            deployment["spec"]["template"] = copy.deepcopy(template)

        self._update(name, put_template)
        log.info(
            "deployment updated",
            extra={"deployment": name, "version": _version(template), "previous_version": _version(previous)},
        )
        return previous

    def _ensure_service(self, model: str) -> None:
        desired = self.service(model)
        name = desired["metadata"]["name"]
        try:
            self._core.create_namespaced_service(self.namespace, desired)
            log.info("service created", extra={"service": name})
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
        current = json.loads(self._core.read_namespaced_service(name, self.namespace, _preload_content=False).data)
        spec = current["spec"]
        if spec.get("selector") == desired["spec"]["selector"] and _ports(spec) == _ports(desired["spec"]):
            return
        spec["selector"] = desired["spec"]["selector"]  # clusterIP and the rest stay as allocated
        spec["ports"] = desired["spec"]["ports"]
        self._core.replace_namespaced_service(name, self.namespace, current)
        log.info("service updated", extra={"service": name})

    def _await_rollout(self, name: str) -> str | None:
        """Wait as `kubectl rollout status` does; None when complete, else why it failed."""
        deadline = time.monotonic() + self.rollout_timeout_s
        while True:
            try:
                deployment = self._read(name)
            except (ApiException, urllib3.exceptions.HTTPError) as exc:
                if not _transient(exc):
                    raise
                deployment = {}
            if deployment is None:
                return "the deployment was deleted during the rollout"
            if deployment:
                done, failure = _rollout_state(deployment)
                if failure:
                    return failure
                if done:
                    return None
            if time.monotonic() >= deadline:
                return f"not complete after {self.rollout_timeout_s:g}s"
            time.sleep(self.poll_s)

    def _roll_back(self, model: str, version: str, failure: str, previous: dict[str, Any] | None) -> RolloutFailed:
        """Re-apply `previous` (or delete a first Deployment) and return the error that says what serves now."""
        name = serving_name(model)
        selector = f"app.kubernetes.io/instance={name},{VERSION_KEY}={label_value(version)}"
        problem = _pod_problem(self._core, self.namespace, selector)
        why = f"{failure}; {problem}" if problem else failure
        if previous is None:
            self._apps.delete_namespaced_deployment(name, self.namespace)
            self._served.pop(model, None)
            log.error("first rollout failed; deployment deleted", extra={"deployment": name, "reason": why})
            return RolloutFailed(
                f"{name}: version {version} did not roll out ({why}); no earlier version to roll back to, "
                "the deployment was deleted and nothing serves"
            )
        back_to = _version(previous)

        def put_previous(deployment: dict[str, Any]) -> None:
            annotations = dict(deployment["metadata"].get("annotations") or {})
            annotations.pop(PREVIOUS_TEMPLATE_KEY, None)
            annotations[VERSION_KEY] = back_to
            deployment["metadata"]["annotations"] = annotations
            deployment["spec"]["template"] = copy.deepcopy(previous)

        self._update(name, put_previous)
        log.warning("rollout failed; rolling back", extra={"deployment": name, "version": version, "reason": why})
        again = self._await_rollout(name)
        if again is not None:
            self._served.pop(model, None)
            return RolloutFailed(
                f"{name}: version {version} did not roll out ({why}); the rollback to version {back_to} did not "
                f"complete either ({again})",
                serving_version=None,
            )
        served = self._record(model, self._read(name), "rolled back")
        return RolloutFailed(
            f"{name}: version {version} did not roll out ({why}); rolled back: version {served.version} serves "
            f"(revision {served.revision})",
            serving_version=served.version,
            serving_revision=served.revision,
        )

    def _record(self, model: str, deployment: dict[str, Any] | None, what: str) -> Served:
        deployment = deployment or {}
        annotations = (deployment.get("metadata") or {}).get("annotations") or {}
        template = (deployment.get("spec") or {}).get("template") or {}
        served = Served(model, _version(template), str(annotations.get(REVISION_KEY, "")), self.endpoint(model))
        self._served[model] = served
        log.info(
            what,
            extra={
                "deployment": serving_name(model),
                "version": served.version,
                "revision": served.revision,
                "endpoint": served.endpoint,
            },
        )
        return served


def _annotations(template: Mapping[str, Any]) -> dict[str, str]:
    return dict((template.get("metadata") or {}).get("annotations") or {})


def _version(template: Mapping[str, Any]) -> str:
    return _annotations(template).get(VERSION_KEY, "")


def _ports(spec: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    return sorted((p.get("name"), p.get("port"), str(p.get("targetPort"))) for p in spec.get("ports") or [])


def _rollout_state(deployment: Mapping[str, Any]) -> tuple[bool, str]:
    """(complete, failure) by the rules of `kubectl rollout status`."""
    metadata, spec, status = deployment["metadata"], deployment["spec"], deployment.get("status") or {}
    if status.get("observedGeneration", 0) < metadata.get("generation", 0):
        return False, ""  # the controller has not seen the latest spec yet
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return False, f"ProgressDeadlineExceeded: {condition.get('message', '')}".rstrip(": ")
    wanted = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    replicas = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    return updated >= wanted and replicas == updated and available == updated, ""
