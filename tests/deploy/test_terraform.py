"""infra/ against the event catalog, offline: Terraform is not installable here, so its configuration is evaluated.

The .tf files are parsed with python-hcl2 and evaluated by tests/hcl_eval (Terraform's semantics for the subset
infra/ uses). Each resource instance's arguments are evaluated and references to other resources resolved (a
reference to an instance that does not exist fails), then compared with what the library itself derives from the
catalog (aikube.catalog, aikube.bus). A second catalog in tmp_path checks that infra/ is *derived* from
events/catalog.yaml, not written to match it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hcl_eval import PROJECT_NUMBER, EvalError, TerraformModule

from aikube.bus import DeliveryPolicy, subscriptions_of
from aikube.catalog import Catalog, dead_letter_topic

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
PROJECT = "aikube-test"
NAMESPACE = "aikube"
EXTERNAL_PRODUCERS = {"aikube-sdk"}
LAUNCHED = {"training-job", "model-server"}  # pods the services launch (k8s/base/workloads.yaml)
PUBSUB_AGENT = f"serviceAccount:service-{PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"

# The only roles any binding may grant; anything else (owner, editor, pubsub.admin, storage.admin, ...) fails.
ALLOWED_ROLES = {
    "roles/pubsub.publisher",
    "roles/pubsub.subscriber",
    "roles/storage.objectUser",
    "roles/storage.objectViewer",
    "roles/bigquery.dataEditor",
    "roles/bigquery.dataViewer",
    "roles/bigquery.jobUser",
    "roles/iam.workloadIdentityUser",
}


# -- what the library derives from the catalog ---------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """Topics, subscriptions, services and Pub/Sub grants implied by a catalog, computed with aikube's own code."""

    topics: set[str]
    subscriptions: dict[str, tuple[str, str, bool]]  # name → (consumer, topic, ordered)
    services: set[str]
    pubsub_grants: set[tuple[str, str, str, str]]  # (kind, resource name, role, member)


def gsa_member(workload: str) -> str:
    return f"serviceAccount:{workload}@{PROJECT}.iam.gserviceaccount.com"


def expected_from(catalog: Catalog, sdk_publishers: list[str]) -> Expected:
    subs = subscriptions_of(catalog)
    subscriptions = {s.name: (s.consumer, s.spec.topic, s.spec.ordered) for s in subs}
    services = {c for spec in catalog.values() for c in spec.consumers} | {
        spec.producer for spec in catalog.values() if spec.producer not in EXTERNAL_PRODUCERS
    }
    grants: set[tuple[str, str, str, str]] = set()
    for spec in catalog.values():
        members = sdk_publishers if spec.producer in EXTERNAL_PRODUCERS else [gsa_member(spec.producer)]
        grants |= {("topic", spec.topic, "roles/pubsub.publisher", m) for m in members}
    for s in subs:
        grants |= {
            ("subscription", s.name, "roles/pubsub.subscriber", gsa_member(s.consumer)),
            ("topic", s.dead_letter_topic, "roles/pubsub.publisher", gsa_member(s.consumer)),
            ("topic", s.dead_letter_topic, "roles/pubsub.publisher", PUBSUB_AGENT),
            ("subscription", s.name, "roles/pubsub.subscriber", PUBSUB_AGENT),
        }
    assert {s.dead_letter_topic for s in subs} == {dead_letter_topic(s.name) for s in subs}
    return Expected({spec.topic for spec in catalog.values()}, subscriptions, services, grants)


# -- what infra/ builds --------------------------------------------------------------------------------------------

IAM_TARGET = {  # *_iam_member type → (kind, argument naming the resource)
    "google_pubsub_topic_iam_member": ("topic", "topic"),
    "google_pubsub_subscription_iam_member": ("subscription", "subscription"),
    "google_storage_bucket_iam_member": ("bucket", "bucket"),
    "google_bigquery_dataset_iam_member": ("dataset", "dataset_id"),
    "google_project_iam_member": ("project", "project"),
    "google_service_account_iam_member": ("service_account", "service_account_id"),
}


def all_instances(tf: TerraformModule, type_: str) -> Iterator[tuple[str, Any]]:
    for t, name in tf.resources:
        if t == type_:
            for key in tf.instances(t, name):
                yield name, key


def grants(tf: TerraformModule) -> set[tuple[str, str, str, str]]:
    """Every IAM grant of the configuration as (kind, resource, role, member)."""
    result = set()
    for type_, name in tf.resources:
        if not type_.endswith("_iam_member"):
            continue
        kind, target_arg = IAM_TARGET[type_]
        for key in tf.instances(type_, name):
            target = tf.argument(type_, name, key, target_arg)
            role = tf.argument(type_, name, key, "role")
            member = tf.argument(type_, name, key, "member")
            assert isinstance(target, str) and isinstance(role, str) and isinstance(member, str), (type_, name, key)
            result.add((kind, target, role, member))
    return result


def load(folder: Path, **variables: Any) -> TerraformModule:
    return TerraformModule(folder, {"project_id": PROJECT, **variables})


@pytest.fixture(scope="module")
def tf() -> TerraformModule:
    return load(INFRA)


@pytest.fixture(scope="module")
def expected() -> Expected:
    return expected_from(Catalog.load(REPO / "events"), [])


# -- the evaluator itself ------------------------------------------------------------------------------------------


def test_evaluator_follows_terraform_semantics(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(
        """
        variable "v" {
          default = ["b", "a"]
        }
        locals {
          m      = { z = 1, a = 2 }
          order  = [for k, v in local.m : k]
          dup    = { for x in ["a", "a"] : x => 1 }
          safe   = try(local.m.missing, "fallback")
          tmpl   = "${var.v[0]}-$${literal}"
          merged = merge([for x in var.v : { (x) = local.upper }]...)
          upper  = "U"
          setp   = setproduct(["t"], var.v)
          cond   = !contains(var.v, "c") && length(var.v) == 2 ? "yes" : "no"
        }
        resource "x_thing" "one" {
          for_each = toset(var.v)
          name     = "n-${each.key}"
        }
        resource "x_other" "two" {
          ok  = x_thing.one["a"].name
          bad = x_thing.one["c"].name
        }
        """
    )
    tf = TerraformModule(tmp_path)
    assert tf.local("order") == ["a", "z"]  # maps iterate in key order
    with pytest.raises(EvalError, match="duplicate key"):
        tf.local("dup")
    assert tf.local("safe") == "fallback"
    assert tf.local("tmpl") == "b-${literal}"
    assert tf.local("merged") == {"a": "U", "b": "U"}
    assert tf.local("setp") == [["t", "b"], ["t", "a"]]
    assert tf.local("cond") == "yes"
    assert set(tf.instances("x_thing", "one")) == {"a", "b"}
    assert tf.argument("x_other", "two", None, "ok") == "n-a"
    with pytest.raises(EvalError, match="does not exist"):
        tf.argument("x_other", "two", None, "bad")


# -- infra/ against the catalog ------------------------------------------------------------------------------------


def test_catalog_is_read_from_events(tf: TerraformModule) -> None:
    source = (INFRA / "catalog.tf").read_text()
    assert 'yamldecode(file("${path.module}/../events/catalog.yaml"))' in source
    raw = yaml.safe_load((REPO / "events" / "catalog.yaml").read_text())
    assert tf.local("catalog") == raw


def test_one_topic_per_event_type_and_a_dead_letter_topic_per_subscription(
    tf: TerraformModule, expected: Expected
) -> None:
    def names(resource: str) -> set[str]:
        return {
            tf.argument("google_pubsub_topic", resource, k, "name")
            for k in tf.instances("google_pubsub_topic", resource)
        }

    assert names("event") == expected.topics
    assert names("dead_letter") == {dead_letter_topic(name) for name in expected.subscriptions}
    assert {name for name, _ in all_instances(tf, "google_pubsub_topic")} == {"event", "dead_letter"}


def test_subscriptions_match_the_bus(tf: TerraformModule, expected: Expected) -> None:
    """Name, topic, ordering, dead-letter and retry policy of each subscription are those PubSubBus provisions."""
    policy = DeliveryPolicy()
    keys = tf.instances("google_pubsub_subscription", "event")
    assert {tf.argument("google_pubsub_subscription", "event", k, "name") for k in keys} == set(expected.subscriptions)

    def arg(key: str, *path: str) -> Any:
        return tf.argument("google_pubsub_subscription", "event", key, *path)

    for key in keys:
        name = arg(key, "name")
        consumer, topic, ordered = expected.subscriptions[name]
        assert arg(key, "topic") == f"projects/{PROJECT}/topics/{topic}", name
        assert arg(key, "enable_message_ordering") is ordered, name
        assert arg(key, "ack_deadline_seconds") == policy.ack_deadline_s
        assert arg(key, "dead_letter_policy", "dead_letter_topic") == f"projects/{PROJECT}/topics/{name}.dead-letter"
        assert arg(key, "dead_letter_policy", "max_delivery_attempts") == policy.max_delivery_attempts
        assert arg(key, "retry_policy", "minimum_backoff") == f"{policy.minimum_backoff_s:g}s"
        assert arg(key, "retry_policy", "maximum_backoff") == f"{policy.maximum_backoff_s:g}s"
        assert arg(key, "expiration_policy", "ttl") == ""  # never expires


def test_each_dead_letter_topic_has_an_audit_subscription(tf: TerraformModule, expected: Expected) -> None:
    audits = {}
    for key in tf.instances("google_pubsub_subscription", "dead_letter_audit"):
        name = tf.argument("google_pubsub_subscription", "dead_letter_audit", key, "name")
        audits[name] = tf.argument("google_pubsub_subscription", "dead_letter_audit", key, "topic")
        block = tf.block("google_pubsub_subscription", "dead_letter_audit")
        assert not block.nested("dead_letter_policy"), "an audit subscription does not dead-letter again"
    # the same name as its topic, as aikube.bus.PubSubBus.provision creates it on the emulator
    assert audits == {
        dead_letter_topic(s): f"projects/{PROJECT}/topics/{dead_letter_topic(s)}" for s in expected.subscriptions
    }


def test_one_service_account_per_service_and_launched_workload(tf: TerraformModule, expected: Expected) -> None:
    accounts = {
        tf.argument("google_service_account", "workload", k, "account_id")
        for k in tf.instances("google_service_account", "workload")
    }
    assert accounts == expected.services | LAUNCHED
    assert {n for n, _ in all_instances(tf, "google_service_account")} == {"workload"}
    for account in accounts:  # GCP: 6-30 characters, lower-case letters, digits, hyphens
        assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", account), account


def test_pubsub_iam_is_exactly_what_the_catalog_implies(tf: TerraformModule, expected: Expected) -> None:
    """Publisher only on produced topics (and own dead-letter topics), subscriber only on own subscriptions."""
    pubsub = {g for g in grants(tf) if g[0] in ("topic", "subscription")}
    assert pubsub == expected.pubsub_grants


def test_sdk_publishers_get_the_external_producers_topics_only() -> None:
    member = "serviceAccount:loader@elsewhere.iam.gserviceaccount.com"
    tf = load(INFRA, sdk_publishers=[member])
    catalog = Catalog.load(REPO / "events")
    external = {spec.topic for spec in catalog.values() if spec.producer in EXTERNAL_PRODUCERS}
    assert external, "the catalog has an external producer"
    assert {g[1] for g in grants(tf) if g[3] == member} == external
    assert {g for g in grants(tf) if g[0] in ("topic", "subscription")} == expected_from(
        catalog, [member]
    ).pubsub_grants


def test_workload_identity_binds_each_account_to_its_kubernetes_service_account(tf: TerraformModule) -> None:
    bindings = {(g[1], g[3]) for g in grants(tf) if g[2] == "roles/iam.workloadIdentityUser"}
    workloads = tf.local("workloads")
    assert bindings == {
        (
            f"projects/{PROJECT}/serviceAccounts/{w}@{PROJECT}.iam.gserviceaccount.com",
            f"serviceAccount:{PROJECT}.svc.id.goog[{NAMESPACE}/{w}]",
        )
        for w in workloads
    }
    assert {g[2] for g in grants(tf) if g[0] == "service_account"} == {"roles/iam.workloadIdentityUser"}


def test_kubernetes_service_accounts_match_the_google_ones(tf: TerraformModule) -> None:
    """Every Workload Identity pair exists on both sides: k8s/base ServiceAccounts = infra/ workloads."""
    k8s_accounts = {
        doc["metadata"]["name"]
        for path in (REPO / "k8s" / "base").glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "ServiceAccount"
    }
    assert k8s_accounts == set(tf.local("workloads"))
    assert tf.var("namespace") == NAMESPACE


def test_data_access_is_least_privilege(tf: TerraformModule) -> None:
    all_grants = grants(tf)
    bucket = f"{PROJECT}-aikube"
    storage = {(g[3], g[2]) for g in all_grants if g[0] == "bucket"}
    assert {g[1] for g in all_grants if g[0] == "bucket"} == {bucket}
    assert all(role in ("roles/storage.objectUser", "roles/storage.objectViewer") for _, role in storage)
    assert (gsa_member("model-server"), "roles/storage.objectViewer") in storage
    dataset = {(g[3], g[2]) for g in all_grants if g[0] == "dataset"}
    project = {(g[3], g[2]) for g in all_grants if g[0] == "project"}
    assert {g[1] for g in all_grants if g[0] == "dataset"} == {"aikube"}
    # whoever reads or writes tables runs query jobs, and only they do; jobUser is the only project-level role
    assert project == {(member, "roles/bigquery.jobUser") for member, _ in dataset}
    assert {member for member, role in dataset if role == "roles/bigquery.dataEditor"} == {
        gsa_member("ingestor"),
        gsa_member("feature-builder"),
    }
    # each member holds at most one role per resource
    assert len({m for m, _ in storage}) == len(storage) and len({m for m, _ in dataset}) == len(dataset)


def test_no_role_beyond_the_allowed_ones_anywhere(tf: TerraformModule) -> None:
    roles = {g[2] for g in grants(tf)} | {
        g[2] for g in grants(load(INFRA, sdk_publishers=["group:loaders@example.com"]))
    }
    assert roles <= ALLOWED_ROLES, roles - ALLOWED_ROLES
    source = "\n".join(p.read_text() for p in INFRA.glob("*.tf"))
    for role in ("roles/owner", "roles/editor", "roles/pubsub.admin", "roles/storage.admin", "roles/iam."):
        assert role not in source.replace("roles/iam.workloadIdentityUser", ""), role
    # authoritative bindings would silently remove grants made elsewhere
    assert not [t for t, _ in tf.resources if t.endswith(("_iam_binding", "_iam_policy"))]


def test_bucket_and_dataset(tf: TerraformModule) -> None:
    def bucket(*path: str) -> Any:
        return tf.argument("google_storage_bucket", "store", None, *path)

    assert bucket("name") == f"{PROJECT}-aikube"
    assert bucket("uniform_bucket_level_access") is True
    assert bucket("public_access_prevention") == "enforced"
    assert bucket("versioning", "enabled") is True
    # handled-event markers expire, but only after Pub/Sub can no longer redeliver (7 days' retention)
    (markers,) = [
        rule
        for rule in tf.block("google_storage_bucket", "store").nested("lifecycle_rule")
        if "matches_prefix" in rule.nested("condition")[0].attrs
    ]
    (condition,), (action,) = markers.nested("condition"), markers.nested("action")
    assert tf.eval(condition.attrs["matches_prefix"]) == ["idempotency/"]
    assert tf.eval(condition.attrs["age"]) > 7 and tf.eval(action.attrs["type"]) == "Delete"
    assert tf.argument("google_bigquery_dataset", "warehouse", None, "dataset_id") == "aikube"


def test_provider_is_pinned_with_a_pessimistic_constraint(tf: TerraformModule) -> None:
    (terraform,) = tf.root.nested("terraform")
    (providers,) = terraform.nested("required_providers")
    google = tf.eval(providers.attrs["google"])
    assert google["source"] == "hashicorp/google"
    assert re.fullmatch(r"~> \d+\.\d+(\.\d+)?", google["version"]), google["version"]


# -- derived, not copied -------------------------------------------------------------------------------------------


def _variant_catalog(events: Path) -> None:
    """Edit a copy of the catalog: a new consumer, a new event type, one without consumers, one unordered."""
    raw = yaml.safe_load((events / "catalog.yaml").read_text())
    entries = raw["events"]
    entries["drift.v1.detected"]["consumers"] = ["retrain-scheduler", "auditor"]
    entries["model.v1.deployed"].pop("ordered_by")
    del entries["training.v1.failed"]["consumers"]
    entries["report.v1.published"] = {
        **entries["model.v1.rejected"],
        "type": "dev.aikube.report.v1.published",
        "topic": "aikube.report.v1.published",
        "producer": "reporter",
        "consumers": ["auditor", "deployer"],
    }
    (events / "catalog.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def test_infra_is_derived_from_the_catalog(tmp_path: Path) -> None:
    """The same .tf files over an edited catalog give that catalog's topology and grants, nothing left over."""
    shutil.copytree(INFRA, tmp_path / "infra", ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    shutil.copytree(REPO / "events", tmp_path / "events")
    _variant_catalog(tmp_path / "events")
    variant = expected_from(Catalog.load(tmp_path / "events"), [])
    assert "auditor" in variant.services and "aikube.report.v1.published" in variant.topics

    tf = load(tmp_path / "infra")
    topics = {
        tf.argument("google_pubsub_topic", "event", k, "name") for k in tf.instances("google_pubsub_topic", "event")
    }
    assert topics == variant.topics
    subs = tf.instances("google_pubsub_subscription", "event")
    assert set(subs) == set(variant.subscriptions)
    for key in subs:
        ordered = tf.argument("google_pubsub_subscription", "event", key, "enable_message_ordering")
        assert ordered is variant.subscriptions[key][2], key
    assert set(tf.local("services")) == variant.services
    assert {g for g in grants(tf) if g[0] in ("topic", "subscription")} == variant.pubsub_grants


def test_two_entries_on_one_topic_are_rejected(tmp_path: Path) -> None:
    """One topic per event type: two entries on one topic are Terraform's duplicate-key error, surfaced here."""
    shutil.copytree(INFRA, tmp_path / "infra")
    shutil.copytree(REPO / "events", tmp_path / "events")
    raw = yaml.safe_load((tmp_path / "events" / "catalog.yaml").read_text())
    raw["events"]["drift.v1.checked"]["topic"] = raw["events"]["drift.v1.detected"]["topic"]
    (tmp_path / "events" / "catalog.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(EvalError, match="duplicate key"):
        load(tmp_path / "infra").local("topics")
