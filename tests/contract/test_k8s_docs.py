"""The RBAC manifests in docs/kubernetes.md are valid Kubernetes 1.32 objects and grant what the code calls."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "kubernetes.md"


def documented() -> list[dict[str, Any]]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    return [doc for block in blocks for doc in yaml.safe_load_all(block) if doc]


def rules(role: str) -> set[tuple[str, str, str]]:
    (found,) = [d for d in documented() if d["kind"] == "Role" and d["metadata"]["name"] == role]
    return {
        (g, r, v)
        for rule in found["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def test_documented_manifests_validate_strictly() -> None:
    """Every YAML object in the doc passes the strict 1.32 schema."""
    objects = documented()
    assert {o["kind"] for o in objects} == {"ServiceAccount", "Role", "RoleBinding"}
    for obj in objects:
        kubernetes_validate.validate(obj, "1.32.0", strict=True)


def test_roles_grant_the_calls_the_classes_make() -> None:
    """The dispatcher creates and reads Jobs; the deployer manages Deployments and Services; both list pods."""
    assert {("batch", "jobs", "create"), ("batch", "jobs", "get"), ("", "pods", "list")} <= rules("trainer-dispatcher")
    needed = {("apps", "deployments", v) for v in ("get", "create", "update", "delete")}
    needed |= {("", "services", v) for v in ("get", "create", "update")}
    assert needed <= rules("deployer")
