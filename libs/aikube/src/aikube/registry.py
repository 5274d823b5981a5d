"""The model registry: versions with metrics and lineage, a champion pointer and its history, over an ObjectStore.

Keys, under "registry/<model>/":
    versions/<version>/model.joblib   the artifact (see aikube.serving.make_artifact)
    versions/<version>/version.json   the ModelVersion record, written last: its presence commits the version
    champion.json                     {"version", "endpoint", "promoted_at"}, compare-and-swapped
    history.json                      every promotion, oldest first, compare-and-swapped

Example:
    >>> registry = ModelRegistry(LocalObjectStore("state"))
    >>> registry.register("bikeshare", "v1", artifact, metric="mae", metrics={"mae": 27.0})
    >>> registry.promote("bikeshare", "v1", endpoint="http://127.0.0.1:8081")
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aikube.datasets import NAME_PATTERN
from aikube.storage import SEGMENT_PATTERN, AlreadyExists, NotFound, ObjectStore, check_name, update_json

__all__ = ["ModelRegistry", "ModelVersion", "UnknownVersion"]


def _now() -> datetime:
    return datetime.now(UTC)


class ModelVersion(BaseModel):
    """One registered model version."""

    model_config = ConfigDict(frozen=True)

    model: str
    version: str
    artifact_uri: str
    metric: str  # name of the primary metric (lower is better)
    metrics: dict[str, float]
    train_window: dict[str, Any] | None = None
    holdout_window: dict[str, Any] | None = None
    lineage: dict[str, Any] = {}  # feature snapshot(s), request_id, trigger_id, trace_id
    created_at: datetime = Field(default_factory=_now)


class UnknownVersion(NotFound):
    """The model has no such registered version."""


class ModelRegistry:
    """Registered model versions and the champion of each model."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @staticmethod
    def _prefix(model: str) -> str:
        return f"registry/{check_name(model, 'model name', NAME_PATTERN)}/"

    def _version_key(self, model: str, version: str, name: str) -> str:
        return f"{self._prefix(model)}versions/{check_name(version, 'model version', SEGMENT_PATTERN)}/{name}"

    def register(self, model: str, version: str, artifact: bytes, **fields: Any) -> ModelVersion:
        """Store the artifact and the version record; registering an existing version returns it unchanged.

        Args:
            fields: the other ModelVersion fields (metric, metrics, windows, lineage, created_at).

        Raises:
            ValueError: when the model or version name, or a field, is invalid.
        """
        record_key = self._version_key(model, version, "version.json")
        if self.store.exists(record_key):
            return self.get(model, version)
        artifact_key = self._version_key(model, version, "model.joblib")
        record = ModelVersion(model=model, version=version, artifact_uri=self.store.uri_for(artifact_key), **fields)
        # The artifact may be rewritten by a retry after a crash; the record (if_absent) is the commit point.
        self.store.put_bytes(artifact_key, artifact)
        try:
            self.store.put_json(record_key, record.model_dump(mode="json"), if_absent=True)
        except AlreadyExists:
            return self.get(model, version)  # a concurrent registration of the same version won
        return record

    def get(self, model: str, version: str) -> ModelVersion:
        """Return the record of `version`.

        Raises:
            UnknownVersion: when the version is not registered.
        """
        try:
            return ModelVersion.model_validate(self.store.get_json(self._version_key(model, version, "version.json")))
        except NotFound:
            raise UnknownVersion(f"model {model!r} has no registered version {version!r}") from None

    def versions(self, model: str) -> list[str]:
        """Return the registered versions of `model`, sorted by name."""
        prefix = f"{self._prefix(model)}versions/"
        return sorted(
            key.removeprefix(prefix).removesuffix("/version.json")
            for key in self.store.list(prefix)
            if key.endswith("/version.json")
        )

    def artifact(self, model: str, version: str) -> bytes:
        """Return the artifact bytes of a registered version (UnknownVersion otherwise)."""
        self.get(model, version)
        return self.store.get_bytes(self._version_key(model, version, "model.joblib"))

    def _pointer(self, model: str) -> dict[str, Any] | None:
        try:
            pointer: dict[str, Any] = self.store.get_json(f"{self._prefix(model)}champion.json")
        except NotFound:
            return None
        return pointer

    def champion(self, model: str) -> ModelVersion | None:
        """Return the current champion of `model`, or None before the first promotion."""
        pointer = self._pointer(model)
        return None if pointer is None else self.get(model, pointer["version"])

    def endpoint(self, model: str) -> str | None:
        """Return the serving endpoint of the champion, or None before the first promotion."""
        pointer = self._pointer(model)
        return None if pointer is None else str(pointer["endpoint"])

    def history(self, model: str) -> list[dict[str, Any]]:
        """Return every promotion of `model` ({"version", "endpoint", "promoted_at"}), oldest first."""
        try:
            entries: list[dict[str, Any]] = self.store.get_json(f"{self._prefix(model)}history.json")
        except NotFound:
            return []
        return entries

    def promote(self, model: str, version: str, *, endpoint: str) -> None:
        """Make `version` the champion served at `endpoint` and record it in the history.

        A retried promotion of the same version and endpoint does not add a second history entry. Both objects
        are written under generation preconditions (`update_json`), so concurrent promotions — two deployer
        replicas, a retry racing its first attempt — lose no history entry, and the pointer always ends on the
        history's last entry.

        Raises:
            UnknownVersion: when the version is not registered.
        """
        self.get(model, version)

        def record(history: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
            history = history or []
            if history and (history[-1]["version"], history[-1]["endpoint"]) == (version, endpoint):
                return history  # a retried promotion
            return [*history, {"version": version, "endpoint": endpoint, "promoted_at": _now().isoformat()}]

        # History first, pointer last: a crash in between is repaired by the retry, without a duplicate entry.
        update_json(self.store, f"{self._prefix(model)}history.json", record)
        update_json(self.store, f"{self._prefix(model)}champion.json", lambda _: self.history(model)[-1])
