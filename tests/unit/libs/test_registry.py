"""The model registry: versions, idempotent registration, champion pointer and history."""

from __future__ import annotations

import pytest
from interleaving import after_next_read

from aikube.registry import ModelRegistry, ModelVersion, UnknownVersion
from aikube.storage import MemoryObjectStore

FIELDS = {
    "metric": "mae",
    "metrics": {"mae": 27.5, "rmse": 40.0},
    "train_window": {"start": "2011-01-01T00:00:00Z", "end": "2011-01-29T00:00:00Z"},
    "holdout_window": {"start": "2011-01-24T00:00:00Z", "end": "2011-01-29T00:00:00Z"},
    "lineage": {"snapshots": ["s1", "s2"], "request_id": "r1", "trigger_id": "t1", "trace_id": "abc"},
}


@pytest.fixture
def store() -> MemoryObjectStore:
    """An empty in-memory store."""
    return MemoryObjectStore()


@pytest.fixture
def registry(store: MemoryObjectStore) -> ModelRegistry:
    """A registry over the store."""
    return ModelRegistry(store)


def test_register_returns_the_record_and_stores_it(registry: ModelRegistry) -> None:
    """register returns the version record, and get returns an equal one."""
    record = registry.register("bikeshare", "v1", b"artifact", **FIELDS)
    assert isinstance(record, ModelVersion)
    assert record.metrics == FIELDS["metrics"] and record.lineage == FIELDS["lineage"]
    assert registry.get("bikeshare", "v1") == record


def test_artifact_is_stored_at_its_uri(registry: ModelRegistry, store: MemoryObjectStore) -> None:
    """The artifact is readable through the registry and through its URI."""
    record = registry.register("bikeshare", "v1", b"artifact", **FIELDS)
    assert registry.artifact("bikeshare", "v1") == b"artifact"
    assert store.read_uri(record.artifact_uri) == b"artifact"


def test_keys_follow_the_layout(registry: ModelRegistry, store: MemoryObjectStore) -> None:
    """Artifact and record live under registry/<model>/versions/<version>/."""
    registry.register("bikeshare", "v1", b"a", **FIELDS)
    assert store.list("registry/") == [
        "registry/bikeshare/versions/v1/model.joblib",
        "registry/bikeshare/versions/v1/version.json",
    ]


def test_register_same_version_twice_keeps_the_first(registry: ModelRegistry) -> None:
    """A second registration of a version returns the existing record and does not overwrite anything."""
    first = registry.register("bikeshare", "v1", b"first", **FIELDS)
    second = registry.register("bikeshare", "v1", b"second", **{**FIELDS, "metrics": {"mae": 1.0}})
    assert second == first
    assert registry.artifact("bikeshare", "v1") == b"first"


def test_invalid_fields_write_nothing(registry: ModelRegistry, store: MemoryObjectStore) -> None:
    """A record that does not validate fails before the artifact is written."""
    with pytest.raises(ValueError, match="metrics"):
        registry.register("bikeshare", "v1", b"a", metric="mae", metrics="bad")
    assert store.list("registry/") == []


def test_get_unknown_version(registry: ModelRegistry) -> None:
    """An unregistered version raises UnknownVersion naming it."""
    with pytest.raises(UnknownVersion, match="v9"):
        registry.get("bikeshare", "v9")


def test_artifact_of_unknown_version(registry: ModelRegistry) -> None:
    """The artifact of an unregistered version is not served."""
    with pytest.raises(UnknownVersion):
        registry.artifact("bikeshare", "v9")


@pytest.mark.parametrize(("model", "version"), [("Bike Share", "v1"), ("bikeshare", "../v1"), ("bikeshare", "a/b")])
def test_invalid_names_are_rejected(registry: ModelRegistry, model: str, version: str) -> None:
    """Model and version names become keys, so unsafe ones are refused."""
    with pytest.raises(ValueError, match="invalid model"):
        registry.register(model, version, b"a", **FIELDS)


def test_versions_are_listed(registry: ModelRegistry) -> None:
    """versions lists the registered versions of one model only."""
    for model, version in [("bikeshare", "v2"), ("bikeshare", "v1"), ("other", "v3")]:
        registry.register(model, version, b"a", **FIELDS)
    assert registry.versions("bikeshare") == ["v1", "v2"]


def test_no_champion_before_promotion(registry: ModelRegistry) -> None:
    """A model without promotion has no champion, endpoint or history."""
    registry.register("bikeshare", "v1", b"a", **FIELDS)
    assert (registry.champion("bikeshare"), registry.endpoint("bikeshare"), registry.history("bikeshare")) == (
        None,
        None,
        [],
    )


def test_promote_sets_champion_and_endpoint(registry: ModelRegistry) -> None:
    """After promote, champion and endpoint describe the promoted version."""
    record = registry.register("bikeshare", "v1", b"a", **FIELDS)
    registry.promote("bikeshare", "v1", endpoint="http://127.0.0.1:8081")
    assert registry.champion("bikeshare") == record
    assert registry.endpoint("bikeshare") == "http://127.0.0.1:8081"


def test_promotions_are_kept_in_history(registry: ModelRegistry) -> None:
    """Each promotion is appended to the history; the last one is the champion."""
    for version in ["v1", "v2"]:
        registry.register("bikeshare", version, b"a", **FIELDS)
    registry.promote("bikeshare", "v1", endpoint="http://e1")
    registry.promote("bikeshare", "v2", endpoint="http://e2")
    history = registry.history("bikeshare")
    assert [(entry["version"], entry["endpoint"]) for entry in history] == [("v1", "http://e1"), ("v2", "http://e2")]
    assert registry.champion("bikeshare").version == "v2"  # type: ignore[union-attr]


def test_repeated_promotion_is_recorded_once(registry: ModelRegistry) -> None:
    """A redelivered promotion (same version, same endpoint) does not duplicate the history."""
    registry.register("bikeshare", "v1", b"a", **FIELDS)
    registry.promote("bikeshare", "v1", endpoint="http://e1")
    registry.promote("bikeshare", "v1", endpoint="http://e1")
    assert len(registry.history("bikeshare")) == 1


def test_rollback_is_a_new_history_entry(registry: ModelRegistry) -> None:
    """Promoting an earlier version again (a rollback) is recorded as a new entry."""
    for version in ["v1", "v2"]:
        registry.register("bikeshare", version, b"a", **FIELDS)
    for version in ["v1", "v2", "v1"]:
        registry.promote("bikeshare", version, endpoint=f"http://{version}")
    assert [entry["version"] for entry in registry.history("bikeshare")] == ["v1", "v2", "v1"]


def test_promote_unknown_version_changes_nothing(registry: ModelRegistry) -> None:
    """Promoting an unregistered version raises and leaves no champion."""
    with pytest.raises(UnknownVersion):
        registry.promote("bikeshare", "v1", endpoint="http://e1")
    assert registry.champion("bikeshare") is None


def test_a_promotion_racing_another_loses_no_history_and_the_pointer_follows_it() -> None:
    """Two deployer replicas promoting at once: both promotions are in the history, the champion is the last."""
    store = MemoryObjectStore()
    registry = ModelRegistry(store)
    for version in ["v1", "v2", "v3"]:
        registry.register("bikeshare", version, b"a", **FIELDS)
    registry.promote("bikeshare", "v1", endpoint="http://v1")
    other_replica = ModelRegistry(store)
    after_next_read(
        store, "registry/bikeshare/history.json", lambda: other_replica.promote("bikeshare", "v3", endpoint="http://v3")
    )
    registry.promote("bikeshare", "v2", endpoint="http://v2")
    assert [entry["version"] for entry in registry.history("bikeshare")] == ["v1", "v3", "v2"]
    champion = registry.champion("bikeshare")
    assert champion is not None and champion.version == "v2"
    assert registry.endpoint("bikeshare") == "http://v2"
