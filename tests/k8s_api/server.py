"""The Kubernetes API double: routing, validation, storage and the Job and Deployment controllers.

Served paths (namespaced only):
    /apis/batch/v1/namespaces/{ns}/jobs[/{name}[/status]]
    /apis/apps/v1/namespaces/{ns}/deployments[/{name}[/status]]
    /api/v1/namespaces/{ns}/services[/{name}]
    /api/v1/namespaces/{ns}/pods[/{name}]                 (read-only: pods are made by the controllers)
Verbs: GET (item and list with labelSelector), POST, PUT, PATCH (merge patch), DELETE.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlparse

import jsonschema
import kubernetes_validate
import referencing
from kubernetes import client
from kubernetes_validate.utils import schema_contents

K8S_VERSION = "1.32.0"
REVISION = "deployment.kubernetes.io/revision"

# resource → (group, version, kind, namespaced path prefix)
RESOURCES = {
    "jobs": ("batch", "v1", "Job"),
    "deployments": ("apps", "v1", "Deployment"),
    "services": ("", "v1", "Service"),
    "pods": ("", "v1", "Pod"),
}
_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>batch|apps)/v1)/namespaces/(?P<ns>[^/]+)/(?P<resource>[a-z]+)"
    r"(?:/(?P<name>[^/]+)(?P<status>/status)?)?$"
)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$")
_SUFFIX = {
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"])},
    **{"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1)},
    **{s: Decimal(1000) ** (i + 1) for i, s in enumerate(["k", "M", "G", "T", "P", "E"])},
}
_STANDARD_RESOURCES = {"cpu", "memory", "ephemeral-storage"}
_MAX_ANNOTATIONS = 256 * 1024


@dataclass
class JobPlan:
    """How the Job controller plays a Job: its outcome shows on the `reads`-th status read.

    `run`, when set, plays the kubelet: it gets the Job and returns (exit code, last log lines); exit 0 completes
    the Job, anything else fails it with BackoffLimitExceeded and the output as the termination message.
    """

    outcome: Literal["Complete", "Failed", "Running"] = "Complete"
    reads: int = 2
    reason: str = "BackoffLimitExceeded"
    message: str = "Job has reached the specified backoff limit"
    termination_message: str = ""
    exit_code: int = 1
    run: Callable[[dict[str, Any]], tuple[int, str]] | None = None


@dataclass
class RolloutPlan:
    """How the Deployment controller plays a rollout of a new template: its outcome shows on the `reads`-th read."""

    outcome: Literal["Available", "ProgressDeadlineExceeded", "Progressing"] = "Available"
    reads: int = 3
    waiting_reason: str = "CrashLoopBackOff"
    waiting_message: str = "back-off 10s restarting failed container=model-server"


@dataclass
class Request:
    method: str
    path: str
    body: Any
    status: int
    response: dict[str, Any]


@dataclass
class _Rollout:
    generation: int
    plan: RolloutPlan
    template_hash: str
    reads: int = 0
    done: bool = False


@dataclass
class _JobRun:
    plan: JobPlan
    reads: int = 0
    running: bool = False  # the plan's `run` is executing
    done: bool = False


@dataclass
class _History:
    revisions: dict[str, int] = field(default_factory=dict)  # template hash → revision
    available: int = 0  # replicas of the serving template before the current rollout


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:10]


def quantity(value: Any) -> Decimal:
    """A Kubernetes quantity ("500m", "2Gi", 3) as a number; ValueError if it is not one."""
    match = _QUANTITY.match(str(value))
    if not match:
        raise ValueError(f"quantities must match the regular expression {_QUANTITY.pattern!r}")
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return number * Decimal(10) ** int(suffix[1:])
    return number * _SUFFIX[suffix]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (also used for strategic merge patches: lists are replaced, not merged)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- validation ---------------------------------------------------------------------------------------------------


def schema_errors(body: dict[str, Any]) -> list[str]:
    """The strict schema's verdict: kubernetes_validate decides; every error is listed when it fails."""
    try:
        kubernetes_validate.validate(body, K8S_VERSION, strict=True)
        return []
    except kubernetes_validate.ValidationError as first:
        found, version = [_describe(first)], first.version
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [exc.message]
    try:  # the same schema and definitions kubernetes_validate just used, to list every error at once
        api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", body["apiVersion"])
        folder = f"kubernetes-json-schema/v{version}.0-local-strict"
        schema = schema_contents(f"{folder}/{body['kind'].lower()}-{api}.json", K8S_VERSION)
        definitions = schema_contents(f"{folder}/_definitions.json", K8S_VERSION)
        registry = referencing.Resource.from_contents(definitions) @ (
            referencing.Resource.from_contents(schema) @ referencing.Registry()
        )
        validator = jsonschema.Draft202012Validator(schema, registry=registry)
        everything = sorted({_describe(error) for error in validator.iter_errors(body)})
        return everything or found
    except (OSError, KeyError, referencing.exceptions.Unresolvable):
        return found


def _describe(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(part) for part in error.absolute_path) or "<root>"
    return f"{where}: {error.message}"


def _check_labels(where: str, labels: Any, errors: list[str], *, values: bool = True) -> None:
    for key, value in (labels or {}).items():
        prefix, _, name = key.rpartition("/")
        if (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix))) or not (
            len(name) <= 63 and _QUALIFIED_NAME.match(name)
        ):
            errors.append(f"{where}: Invalid value: {key!r}: name part must consist of alphanumeric characters")
        if values and not (len(str(value)) <= 63 and _LABEL_VALUE.match(str(value))):
            errors.append(f"{where}: Invalid value: {value!r}: a valid label must be an empty string or consist of ")
            errors[-1] += "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric (≤ 63)"


def _check_metadata(where: str, metadata: dict[str, Any], errors: list[str]) -> None:
    _check_labels(f"{where}.labels", metadata.get("labels"), errors)
    annotations = metadata.get("annotations") or {}
    _check_labels(f"{where}.annotations", annotations, errors, values=False)
    if sum(len(k) + len(str(v)) for k, v in annotations.items()) > _MAX_ANNOTATIONS:
        errors.append(f"{where}.annotations: Too long: must have at most {_MAX_ANNOTATIONS} bytes")


def _check_resources(where: str, resources: dict[str, Any], errors: list[str]) -> None:
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    parsed: dict[str, dict[str, Decimal]] = {"requests": {}, "limits": {}}
    for kind, values in (("requests", requests), ("limits", limits)):
        for name, value in values.items():
            try:
                parsed[kind][name] = quantity(value)
            except ValueError as exc:
                errors.append(f"{where}.{kind}[{name}]: Invalid value: {value!r}: {exc}")
                continue
            if name not in _STANDARD_RESOURCES and parsed[kind][name] != int(parsed[kind][name]):
                errors.append(f"{where}.{kind}[{name}]: Invalid value: {value!r}: must be an integer")
    for name, request in parsed["requests"].items():
        limit = parsed["limits"].get(name)
        if limit is not None and request > limit:
            errors.append(f"{where}.requests[{name}]: Invalid value: {requests[name]!r}: must be ≤ {name} limit")
        if name not in _STANDARD_RESOURCES and limit is not None and request != limit:
            errors.append(f"{where}.requests[{name}]: Invalid value: must be equal to {name} limit")
        if name not in _STANDARD_RESOURCES and limit is None:
            errors.append(f"{where}.limits[{name}]: Required value: limit must be set for non overcommitable resources")


def _check_pod_template(where: str, template: dict[str, Any], errors: list[str]) -> None:
    _check_metadata(f"{where}.metadata", template.get("metadata") or {}, errors)
    spec = template.get("spec") or {}
    volumes = {volume["name"] for volume in spec.get("volumes") or []}
    _check_labels(f"{where}.spec.nodeSelector", spec.get("nodeSelector"), errors)
    names: set[str] = set()
    for i, container in enumerate(spec.get("containers") or []):
        at = f"{where}.spec.containers[{i}]"
        name = container["name"]
        if not (len(name) <= 63 and _DNS_LABEL.match(name)) or name in names:
            errors.append(f"{at}.name: Invalid value: {name!r}: must be a unique DNS-1123 label")
        names.add(name)
        if not container.get("image"):
            errors.append(f"{at}.image: Required value")
        for env in container.get("env") or []:
            if not _ENV_NAME.match(env["name"]):
                errors.append(f"{at}.env: Invalid value: {env['name']!r}: a valid environment variable name")
        ports = {}
        for port in container.get("ports") or []:
            if not 1 <= port["containerPort"] <= 65535:
                errors.append(f"{at}.ports: Invalid value: {port['containerPort']}: must be between 1 and 65535")
            if "name" in port:
                if not (len(port["name"]) <= 15 and _PORT_NAME.match(port["name"])):
                    errors.append(f"{at}.ports: Invalid value: {port['name']!r}: must be an IANA_SVC_NAME")
                ports[port["name"]] = port["containerPort"]
        for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
            target = ((container.get(probe_name) or {}).get("httpGet") or {}).get("port")
            if isinstance(target, str) and target not in ports:
                errors.append(f"{at}.{probe_name}.httpGet.port: Invalid value: {target!r}: no such named port")
        for mount in container.get("volumeMounts") or []:
            if mount["name"] not in volumes:
                errors.append(f"{at}.volumeMounts.name: Not found: {mount['name']!r}")
        _check_resources(f"{at}.resources", container.get("resources") or {}, errors)


def semantic_errors(resource: str, body: dict[str, Any]) -> list[str]:
    """A subset of the API server's validation beyond the schema."""
    errors: list[str] = []
    metadata, spec = body.get("metadata") or {}, body.get("spec") or {}
    name = metadata.get("name", "")
    name_rule = {"jobs": _DNS_LABEL, "deployments": _DNS_SUBDOMAIN, "services": _DNS_1035}[resource]
    if not name:
        errors.append("metadata.name: Required value: name or generateName is required")
    elif not (len(name) <= (253 if resource == "deployments" else 63) and name_rule.match(name)):
        errors.append(f"metadata.name: Invalid value: {name!r}: not a valid {resource[:-1]} name")
    _check_metadata("metadata", metadata, errors)
    if resource == "jobs":
        _check_pod_template("spec.template", spec["template"], errors)
        if (spec["template"].get("spec") or {}).get("restartPolicy") not in ("Never", "OnFailure"):
            errors.append('spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"')
        for key, minimum in (("backoffLimit", 0), ("activeDeadlineSeconds", 1), ("ttlSecondsAfterFinished", 0)):
            if key in spec and spec[key] < minimum:
                errors.append(f"spec.{key}: Invalid value: {spec[key]}: must be ≥ {minimum}")
    elif resource == "deployments":
        _check_pod_template("spec.template", spec["template"], errors)
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        template_labels = (spec["template"].get("metadata") or {}).get("labels") or {}
        if not selector:
            errors.append("spec.selector: Invalid value: empty selector is invalid for deployment")
        elif any(template_labels.get(k) != v for k, v in selector.items()):
            errors.append("spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`")
        if (spec["template"].get("spec") or {}).get("restartPolicy", "Always") != "Always":
            errors.append('spec.template.spec.restartPolicy: Unsupported value: supported values: "Always"')
        rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        if str(rolling.get("maxUnavailable", "25%")) in ("0", "0%") and str(rolling.get("maxSurge", "25%")) in (
            "0",
            "0%",
        ):
            errors.append("spec.strategy.rollingUpdate.maxUnavailable: may not be 0 when maxSurge is 0")
    elif resource == "services":
        _check_labels("spec.selector", spec.get("selector"), errors)
        seen = set()
        for port in spec.get("ports") or []:
            if not 1 <= port["port"] <= 65535:
                errors.append(f"spec.ports: Invalid value: {port['port']}: must be between 1 and 65535")
            if port.get("name") in seen:
                errors.append(f"spec.ports.name: Duplicate value: {port.get('name')!r}")
            seen.add(port.get("name"))
            target = port.get("targetPort")
            if isinstance(target, str) and not (len(target) <= 15 and _PORT_NAME.match(target)):
                errors.append(f"spec.ports.targetPort: Invalid value: {target!r}: must be an IANA_SVC_NAME")
    return errors


def delete_options_errors(body: dict[str, Any]) -> list[str]:
    schema = schema_contents(f"kubernetes-json-schema/v{K8S_VERSION}-local-strict/deleteoptions-meta-v1.json", "")
    definitions = schema_contents(f"kubernetes-json-schema/v{K8S_VERSION}-local-strict/_definitions.json", "")
    registry = referencing.Resource.from_contents(definitions) @ (
        referencing.Resource.from_contents(schema) @ referencing.Registry()
    )
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    return sorted(_describe(error) for error in validator.iter_errors(body))


# --- the server -----------------------------------------------------------------------------------------------------


class FakeKubernetes:
    """The API double: start it, hand `api_client()` to the code under test, steer it with plans, inspect it.

    Attributes:
        job_plan: called with each created Job; says how the Job controller plays it (default: Complete).
        rollout_plan: called with the Deployment at each new template; says how its rollout goes (default: Available).
        requests: every request with its body and the status answered.
    """

    def __init__(self) -> None:
        self.job_plan: Callable[[dict[str, Any]], JobPlan] = lambda job: JobPlan()
        self.rollout_plan: Callable[[dict[str, Any]], RolloutPlan] = lambda deployment: RolloutPlan()
        self.requests: list[Request] = []
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._jobs: dict[tuple[str, str], _JobRun] = {}
        self._rollouts: dict[tuple[str, str], _Rollout] = {}
        self._history: dict[tuple[str, str], _History] = {}
        self._version = 1000
        self._ips = 10
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle ------------------------------------------------------------------------------------------------

    def start(self) -> FakeKubernetes:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                code, payload = double.handle(self.command, self.path, raw, self.headers.get("Content-Type", ""))
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeKubernetes:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def configuration(self) -> client.Configuration:
        configuration = client.Configuration()
        configuration.host = self.url
        return configuration

    def api_client(self) -> client.ApiClient:
        return client.ApiClient(self.configuration())

    # --- inspection -----------------------------------------------------------------------------------------------

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored object (a copy), without playing a controller step."""
        with self._lock:
            found = self._objects.get((resource, namespace, name))
            return copy.deepcopy(found) if found else None

    def objects(self, resource: str, namespace: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(o) for (r, ns, _), o in self._objects.items() if r == resource and ns == namespace]

    def calls(self, method: str, resource: str, *, status: int | None = None) -> list[Request]:
        """Recorded requests of one verb on one resource type, optionally only those answered `status`."""
        return [
            r
            for r in self.requests
            if r.method == method
            and (m := _PATH.match(urlparse(r.path).path))
            and m["resource"] == resource
            and (status is None or r.status == status)
        ]

    @property
    def invalid(self) -> list[Request]:
        """Requests refused as malformed (400/415/422): any is a bug in the client code."""
        return [r for r in self.requests if r.status in (400, 415, 422)]

    # --- dispatch -------------------------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, raw: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
        body: Any = None
        try:
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise ApiError(400, "BadRequest", f"the body of the request was not valid JSON: {exc}") from exc
            code, payload = self._dispatch(method, raw_path, body, content_type)
        except ApiError as exc:
            code, payload = exc.code, exc.status()
        with self._lock:
            self.requests.append(Request(method, raw_path, body, code, payload))
        return code, payload

    def _dispatch(self, method: str, raw_path: str, body: Any, content_type: str) -> tuple[int, dict[str, Any]]:
        url = urlparse(raw_path)
        match = _PATH.match(url.path)
        if not match or match["resource"] not in RESOURCES:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        group, _, _ = RESOURCES[match["resource"]]
        if (match["group"] or "") != group:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        resource, namespace, name = match["resource"], match["ns"], match["name"]
        with self._lock:
            if name is None:
                if method == "GET":
                    return 200, self._list(resource, namespace, parse_qs(url.query).get("labelSelector", [""])[0])
                if method == "POST" and resource != "pods":
                    return 201, self._create(resource, namespace, body)
                raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {resource} here")
            if method == "GET":
                return 200, self._read(resource, namespace, name)
            if method == "DELETE":
                return 200, self._delete(resource, namespace, name, body)
            if match["status"] or resource == "pods":
                raise ApiError(405, "MethodNotAllowed", f"{method} of {resource} status is not supported here")
            if method == "PUT":
                return 200, self._replace(resource, namespace, name, body)
            if method == "PATCH":
                return 200, self._patch(resource, namespace, name, body, content_type)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    # --- verbs ----------------------------------------------------------------------------------------------------

    def _validate(self, resource: str, namespace: str, body: Any) -> None:
        group, version, kind = RESOURCES[resource]
        api_version = f"{group}/{version}" if group else version
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body must be a JSON object")
        if body.get("kind") != kind or body.get("apiVersion") != api_version:
            raise ApiError(
                400,
                "BadRequest",
                f"expected kind {kind} apiVersion {api_version}, got {body.get('kind')!r} {body.get('apiVersion')!r}",
            )
        if (body.get("metadata") or {}).get("namespace", namespace) != namespace:
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the request")
        errors = schema_errors(body)
        if not errors:
            errors = semantic_errors(resource, body)
        if errors:
            name = (body.get("metadata") or {}).get("name", "")
            raise ApiError(
                422,
                "Invalid",
                f'{kind} "{name}" is invalid: ' + "; ".join(errors),
                {
                    "name": name,
                    "group": group,
                    "kind": kind.lower(),
                    "causes": [{"reason": "FieldValueInvalid", "message": e} for e in errors],
                },
            )

    def _bump(self, obj: dict[str, Any]) -> None:
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)

    def _create(self, resource: str, namespace: str, body: Any) -> dict[str, Any]:
        self._validate(resource, namespace, body)
        _, _, kind = RESOURCES[resource]
        name = body["metadata"]["name"]
        if (resource, namespace, name) in self._objects:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{resource}.{RESOURCES[resource][0] or "core"} "{name}" already exists',
                {"name": name, "group": RESOURCES[resource][0], "kind": resource},
            )
        obj = copy.deepcopy(body)
        obj.pop("status", None)  # status is the controllers' to write
        meta = obj["metadata"]
        meta.update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=_now())
        for server_owned in ("resourceVersion", "generation", "deletionTimestamp", "managedFields"):
            meta.pop(server_owned, None)
        if resource in ("jobs", "deployments"):
            meta["generation"] = 1
        if resource == "jobs":
            self._default_job(obj)
        elif resource == "deployments":
            obj["spec"].setdefault("replicas", 1)
            obj["status"] = {}
        elif resource == "services":
            obj["spec"].setdefault("type", "ClusterIP")
            self._ips += 1
            obj["spec"]["clusterIP"] = f"10.96.0.{self._ips}"
            obj["spec"]["clusterIPs"] = [obj["spec"]["clusterIP"]]
            for port in obj["spec"].get("ports") or []:
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port["port"])
            obj["status"] = {"loadBalancer": {}}
        self._bump(obj)
        self._objects[(resource, namespace, name)] = obj
        if resource == "jobs":
            self._jobs[(namespace, name)] = _JobRun(self.job_plan(copy.deepcopy(obj)))
        elif resource == "deployments":
            self._start_rollout(obj)
        return copy.deepcopy(obj)

    def _default_job(self, job: dict[str, Any]) -> None:
        """What the API server adds to a Job: the selector on the controller uid and its labels on the pods."""
        uid, name = job["metadata"]["uid"], job["metadata"]["name"]
        labels = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
        spec = job["spec"]
        spec.setdefault("parallelism", 1)
        spec.setdefault("completions", 1)
        spec.setdefault("backoffLimit", 6)
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        template_meta = spec["template"].setdefault("metadata", {})
        template_meta["labels"] = {**(template_meta.get("labels") or {}), **labels}
        job["status"] = {}

    def _read(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self._existing(resource, namespace, name)
        if resource == "jobs":
            self._advance_job(obj)
        elif resource == "deployments":
            self._advance_rollout(obj)
        return copy.deepcopy(obj)

    def _existing(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self._objects.get((resource, namespace, name))
        if obj is None:
            group = RESOURCES[resource][0]
            raise ApiError(
                404,
                "NotFound",
                f'{resource}{"." + group if group else ""} "{name}" not found',
                {"name": name, "group": group, "kind": resource},
            )
        return obj

    def _list(self, resource: str, namespace: str, selector: str) -> dict[str, Any]:
        wanted = dict(term.split("=", 1) for term in selector.split(",") if term) if selector else {}
        items = [
            copy.deepcopy(obj)
            for (r, ns, _), obj in sorted(self._objects.items())
            if r == resource
            and ns == namespace
            and all((obj["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())
        ]
        _, version, kind = RESOURCES[resource]
        group = RESOURCES[resource][0]
        return {
            "apiVersion": f"{group}/{version}" if group else version,
            "kind": f"{kind}List",
            "metadata": {"resourceVersion": str(self._version)},
            "items": items,
        }

    def _replace(self, resource: str, namespace: str, name: str, body: Any, *, patched: bool = False) -> dict:
        current = self._existing(resource, namespace, name)
        self._validate(resource, namespace, body)
        meta = body["metadata"]
        if meta.get("name") != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        if not patched:
            if not meta.get("resourceVersion"):
                raise ApiError(
                    422,
                    "Invalid",
                    f"{name}: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                )
            if meta["resourceVersion"] != current["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {resource} "{name}": the object has been modified; please '
                    "apply your changes to the latest version and try again",
                )
        spec, old_spec = body.get("spec") or {}, current.get("spec") or {}
        if resource == "deployments" and spec.get("selector") != old_spec.get("selector"):
            raise ApiError(422, "Invalid", f'Deployment "{name}" is invalid: spec.selector: field is immutable')
        if resource == "jobs" and spec.get("template") != old_spec.get("template"):
            raise ApiError(422, "Invalid", f'Job "{name}" is invalid: spec.template: field is immutable')
        if resource == "services" and spec.get("clusterIP", old_spec["clusterIP"]) != old_spec["clusterIP"]:
            raise ApiError(422, "Invalid", f'Service "{name}" is invalid: spec.clusterIP: field is immutable')
        updated = copy.deepcopy(body)
        for server_owned in ("uid", "creationTimestamp", "generation", "namespace"):
            if server_owned in current["metadata"]:
                updated["metadata"][server_owned] = current["metadata"][server_owned]
        updated["status"] = current.get("status", {})  # the status subresource is not written through the object
        if resource == "services":
            updated["spec"].setdefault("clusterIP", old_spec["clusterIP"])
            updated["spec"].setdefault("clusterIPs", old_spec.get("clusterIPs"))
        if resource == "deployments":
            updated["spec"].setdefault("replicas", 1)
            if REVISION in (current["metadata"].get("annotations") or {}):
                annotations = updated["metadata"].setdefault("annotations", {})
                annotations.setdefault(REVISION, current["metadata"]["annotations"][REVISION])
        if "generation" in current["metadata"] and updated.get("spec") != current.get("spec"):
            updated["metadata"]["generation"] = current["metadata"]["generation"] + 1
        self._bump(updated)
        self._objects[(resource, namespace, name)] = updated
        if resource == "deployments" and updated["spec"]["template"] != old_spec["template"]:
            self._start_rollout(updated)
        return copy.deepcopy(updated)

    def _patch(self, resource: str, namespace: str, name: str, body: Any, content_type: str) -> dict:
        kind = content_type.split(";")[0].strip()
        if kind not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            raise ApiError(415, "UnsupportedMediaType", f"the double supports merge patches only, not {kind!r}")
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
        current = self._existing(resource, namespace, name)
        merged = merge_patch(copy.deepcopy(current), body)
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {resource} "{name}": modified')
        return self._replace(resource, namespace, name, merged, patched=True)

    def _delete(self, resource: str, namespace: str, name: str, body: Any) -> dict[str, Any]:
        if body is not None:
            if not isinstance(body, dict) or body.get("kind", "DeleteOptions") != "DeleteOptions":
                raise ApiError(400, "BadRequest", "a DELETE body must be DeleteOptions")
            if errors := delete_options_errors(body):
                raise ApiError(422, "Invalid", "DeleteOptions is invalid: " + "; ".join(errors))
        obj = self._existing(resource, namespace, name)
        del self._objects[(resource, namespace, name)]
        if resource == "jobs":
            self._jobs.pop((namespace, name), None)
        if resource == "deployments":
            self._rollouts.pop((namespace, name), None)
            self._history.pop((namespace, name), None)
        uid = obj["metadata"]["uid"]
        for key, pod in list(self._objects.items()):  # cascading deletion of what it owned
            if any(ref.get("uid") == uid for ref in pod["metadata"].get("ownerReferences") or []):
                del self._objects[key]
        group = RESOURCES[resource][0]
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": name, "group": group, "kind": resource, "uid": uid},
        }

    # --- controllers ----------------------------------------------------------------------------------------------

    def _pod(self, owner: dict[str, Any], template: dict[str, Any], suffix: str, status: dict[str, Any]) -> None:
        namespace = owner["metadata"]["namespace"]
        name = f"{owner['metadata']['name']}-{suffix}"[:63].rstrip("-")
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        if owner["kind"] == "Deployment":
            labels["pod-template-hash"] = _hash(template)
        self._version += 1
        self._objects[("pods", namespace, name)] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": _now(),
                "resourceVersion": str(self._version),
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": owner["apiVersion"],
                        "kind": owner["kind"],
                        "name": owner["metadata"]["name"],
                        "uid": owner["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": copy.deepcopy(template.get("spec") or {}),
            "status": status,
        }

    @staticmethod
    def _container_status(container: dict[str, Any], state: dict[str, Any], ready: bool) -> dict[str, Any]:
        return {
            "name": container["name"],
            "image": container.get("image", ""),
            "imageID": "",
            "ready": ready,
            "restartCount": 0,
            "state": state,
        }

    def _advance_job(self, job: dict[str, Any]) -> None:
        key = (job["metadata"]["namespace"], job["metadata"]["name"])
        run = self._jobs.get(key)
        if run is None or run.done or run.running:
            return
        run.reads += 1
        status, plan = job["status"], run.plan
        container = job["spec"]["template"]["spec"]["containers"][0]
        pod_name = f"{_hash(job['metadata']['uid'])[:5]}"
        if run.reads == 1:
            status.update(startTime=_now(), active=1, ready=0, terminating=0)
            running = {"running": {"startedAt": _now()}}
            self._pod(
                job,
                job["spec"]["template"],
                pod_name,
                {"phase": "Running", "containerStatuses": [self._container_status(container, running, True)]},
            )
            self._bump(job)
        if run.reads < max(2, plan.reads) or plan.outcome == "Running":
            return
        outcome, reason, message, exit_code, output = (
            plan.outcome,
            plan.reason,
            plan.message,
            plan.exit_code,
            plan.termination_message,
        )
        if plan.run is not None:
            run.running = True
            self._lock.release()  # the "container" may take a while: other requests go on meanwhile
            try:
                exit_code, output = plan.run(copy.deepcopy(job))
            finally:
                self._lock.acquire()
                run.running = False
            outcome = "Complete" if exit_code == 0 else "Failed"
            reason, message = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        run.done = True
        now = _now()
        status.pop("active", None)
        pod_key = ("pods", key[0], f"{job['metadata']['name']}-{pod_name}"[:63].rstrip("-"))
        job_pod = self._objects.get(pod_key)
        if outcome == "Complete":
            status.update(succeeded=1, completionTime=now, ready=0)
            status["conditions"] = [
                _condition(
                    "SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods", now
                ),
                _condition("Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods", now),
            ]
            terminated = {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now}}
            phase = "Succeeded"
        else:
            status.update(failed=job["spec"].get("backoffLimit", 6) + 1 if reason == "BackoffLimitExceeded" else 1)
            status["ready"] = 0
            status["conditions"] = [
                _condition("FailureTarget", "True", reason, message, now),
                _condition("Failed", "True", reason, message, now),
            ]
            terminated = {"terminated": {"exitCode": exit_code, "reason": "Error", "finishedAt": now}}
            if output:
                terminated["terminated"]["message"] = output
            phase = "Failed"
        if job_pod is not None:
            job_pod["status"] = {
                "phase": phase,
                "containerStatuses": [self._container_status(container, terminated, False)],
            }
        self._bump(job)

    def _start_rollout(self, deployment: dict[str, Any]) -> None:
        key = (deployment["metadata"]["namespace"], deployment["metadata"]["name"])
        self._history.setdefault(key, _History())
        plan = self.rollout_plan(copy.deepcopy(deployment))
        self._rollouts[key] = _Rollout(
            deployment["metadata"]["generation"], plan, _hash(deployment["spec"]["template"])
        )

    def _advance_rollout(self, deployment: dict[str, Any]) -> None:
        meta, spec, status = deployment["metadata"], deployment["spec"], deployment.setdefault("status", {})
        key = (meta["namespace"], meta["name"])
        rollout, history = self._rollouts.get(key), self._history[key]
        if rollout is None or rollout.done:
            return
        rollout.reads += 1
        wanted, old = spec.get("replicas", 1), history.available
        template = spec["template"]
        rs_name = f"{meta['name']}-{rollout.template_hash}"
        container = template["spec"]["containers"][0]
        now = _now()
        if rollout.reads == 1:
            # The controller sees the new template: a ReplicaSet (old one reused on a rollback), one surge pod.
            revision = max(history.revisions.values(), default=0) + 1
            history.revisions[rollout.template_hash] = revision
            meta.setdefault("annotations", {})[REVISION] = str(revision)
            status.update(
                observedGeneration=rollout.generation,
                replicas=old + 1,
                updatedReplicas=1,
                readyReplicas=old,
                availableReplicas=old,
                unavailableReplicas=1,
            )
            status["conditions"] = [
                _condition(
                    "Available",
                    "True" if old >= wanted else "False",
                    "MinimumReplicasAvailable" if old >= wanted else "MinimumReplicasUnavailable",
                    "Deployment has minimum availability."
                    if old >= wanted
                    else "Deployment does not have minimum availability.",
                    now,
                ),
                _condition("Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.', now),
            ]
            waiting = {"waiting": {"reason": "ContainerCreating"}}
            self._pod(
                deployment,
                template,
                f"{rollout.template_hash}-0",
                {"phase": "Pending", "containerStatuses": [self._container_status(container, waiting, False)]},
            )
            self._bump(deployment)
            return
        plan = rollout.plan
        if rollout.reads < plan.reads or plan.outcome == "Progressing":
            return
        rollout.done = True
        if plan.outcome == "Available":
            for pod_key, owned in list(self._objects.items()):  # the old ReplicaSet scaled to zero
                owners = owned["metadata"].get("ownerReferences") or []
                if pod_key[0] == "pods" and any(ref["uid"] == meta["uid"] for ref in owners):
                    del self._objects[pod_key]
            running = {"running": {"startedAt": now}}
            for i in range(wanted):
                self._pod(
                    deployment,
                    template,
                    f"{rollout.template_hash}-{i}",
                    {"phase": "Running", "containerStatuses": [self._container_status(container, running, True)]},
                )
            status.update(replicas=wanted, updatedReplicas=wanted, readyReplicas=wanted, availableReplicas=wanted)
            status.pop("unavailableReplicas", None)
            status["conditions"] = [
                _condition(
                    "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", now
                ),
                _condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    f'ReplicaSet "{rs_name}" has successfully progressed.',
                    now,
                ),
            ]
            history.available = wanted
        else:  # ProgressDeadlineExceeded: the new pod never became ready, the old ones still serve
            waiting = {"waiting": {"reason": plan.waiting_reason, "message": plan.waiting_message}}
            pod = self._objects.get(("pods", meta["namespace"], f"{meta['name']}-{rollout.template_hash}-0"))
            if pod is not None:
                pod["status"] = {
                    "phase": "Running",
                    "containerStatuses": [self._container_status(container, waiting, False)],
                }
            conditions = [c for c in status.get("conditions") or [] if c["type"] != "Progressing"]
            conditions.append(
                _condition(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    f'ReplicaSet "{rs_name}" has timed out progressing.',
                    now,
                )
            )
            status["conditions"] = conditions
        self._bump(deployment)


def _condition(kind: str, status: str, reason: str, message: str, now: str) -> dict[str, Any]:
    """A Job condition (lastProbeTime) or a Deployment condition (lastUpdateTime), as the controllers write them."""
    probe = (
        "lastProbeTime" if kind in ("Complete", "Failed", "SuccessCriteriaMet", "FailureTarget") else "lastUpdateTime"
    )
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": now, probe: now}
