"""Records of handled events, so a redelivered event is recognised and its effects are not applied twice."""

from __future__ import annotations

import hashlib
import threading
from typing import Protocol

from aikube.storage import AlreadyExists, ObjectStore


def event_key(source: str, event_id: str) -> str:
    """The identity of an event across deliveries: its `source` + `id` (CloudEvents uniqueness rule)."""
    return hashlib.sha256(f"{source}\n{event_id}".encode()).hexdigest()


class IdempotencyStore(Protocol):
    def seen(self, key: str) -> bool: ...

    def mark(self, key: str) -> None: ...


class ObjectStoreIdempotency:
    """Markers as objects under `idempotency/<service>/`, shared by every replica of the service."""

    def __init__(self, store: ObjectStore, service: str) -> None:
        self.store = store
        self.prefix = f"idempotency/{service}/"

    def seen(self, key: str) -> bool:
        return self.store.exists(self.prefix + key)

    def mark(self, key: str) -> None:
        try:
            self.store.put_bytes(self.prefix + key, b"", if_absent=True)
        except AlreadyExists:
            pass  # another delivery finished first; its effects are the same


class MemoryIdempotency:
    """In-process markers, for tests."""

    def __init__(self) -> None:
        self._keys: set[str] = set()
        self._lock = threading.Lock()

    def seen(self, key: str) -> bool:
        with self._lock:
            return key in self._keys

    def mark(self, key: str) -> None:
        with self._lock:
            self._keys.add(key)
