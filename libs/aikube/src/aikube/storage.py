"""Object storage behind one narrow interface: a local folder or memory here, Cloud Storage later.

Example:
    >>> store = MemoryObjectStore()
    >>> store.put_json("datasets/demo.json", {"name": "demo"})
    'memory://datasets/demo.json'
    >>> store.get_json("datasets/demo.json")
    {'name': 'demo'}
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlparse

__all__ = [
    "AlreadyExists",
    "LocalObjectStore",
    "MemoryObjectStore",
    "NotFound",
    "ObjectStore",
    "PreconditionFailed",
    "SEGMENT_PATTERN",
    "Versioned",
    "check_name",
    "read_file_uri",
    "staged_file",
    "update_json",
]

# A name that is safe as one path segment, one object-key segment and one file name.
SEGMENT_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:=+-]{0,199}"
# Temporary files are hidden from listings by this prefix, so keys may not use it.
_TMP_PREFIX = ".tmp-"


class NotFound(KeyError):
    """The requested object (or record stored as an object) does not exist."""

    def __str__(self) -> str:
        # KeyError would print the repr of the message, quotes included.
        return str(self.args[0]) if self.args else ""


class PreconditionFailed(Exception):
    """A conditional write lost: the object changed (or appeared) since the writer read it."""


class AlreadyExists(PreconditionFailed):
    """A write with `if_absent=True` found the key already present."""


@dataclass(frozen=True)
class Versioned:
    """An object's bytes and the generation they were read at, for a compare-and-swap write."""

    data: bytes
    generation: str  # opaque: Cloud Storage's object generation, a digest of the content elsewhere


def _digest(data: bytes) -> str:
    # Equal bytes are an equal state, so a content digest is a sound compare-and-swap token.
    return hashlib.sha256(data).hexdigest()


def _check_preconditions(if_absent: bool, if_generation: str | None) -> None:
    if if_absent and if_generation is not None:
        raise ValueError("if_absent and if_generation exclude each other")


def check_name(value: str, what: str, pattern: str = SEGMENT_PATTERN) -> str:
    """Return `value` if it fully matches `pattern`.

    Raises:
        ValueError: naming `what` and the rule, because the value becomes a path, key or SQL identifier.
    """
    if not isinstance(value, str) or re.fullmatch(pattern, value) is None:
        raise ValueError(f"invalid {what} {value!r}: must match {pattern}")
    return value


def _check_key(key: str) -> str:
    """Return `key` if it is a relative, normalised object key ('a/b/c.json')."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"invalid object key {key!r}: must be a non-empty string")
    for segment in key.split("/"):
        if segment in ("", ".", "..") or "\\" in segment or segment.startswith(_TMP_PREFIX):
            raise ValueError(
                f"invalid object key {key!r}: segments must be non-empty, not '.' or '..', "
                f"without backslashes and not start with {_TMP_PREFIX!r}"
            )
    return key


@contextmanager
def staged_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; it is removed on exit unless the caller moved it.

    Writing beside the target keeps the final `os.replace`/`os.link` on one file system, hence atomic.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".partial", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def read_file_uri(uri: str) -> bytes:
    """Read a `file://` URI or a plain file path.

    Raises:
        NotFound: when the file does not exist.
        ValueError: for any other URI scheme.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    elif parsed.scheme == "":
        path = Path(uri)
    else:
        raise ValueError(f"cannot read {uri!r}: only file:// URIs and plain paths are readable here")
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise NotFound(f"no file at {uri!r}") from exc


@runtime_checkable
class ObjectStore(Protocol):
    """Keys are relative slash-separated names ('registry/m/champion.json')."""

    def uri_for(self, key: str) -> str: ...

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False, if_generation: str | None = None) -> str:
        """Write `data` at `key`; `if_absent` or `if_generation` (from get_versioned) make it conditional.

        Raises:
            AlreadyExists: `if_absent` and the key is present.
            PreconditionFailed: `if_generation` and the object is absent or at another generation.
        """
        ...

    def get_bytes(self, key: str) -> bytes: ...

    def get_versioned(self, key: str) -> Versioned: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[str]: ...

    def put_json(self, key: str, obj: Any, *, if_absent: bool = False, if_generation: str | None = None) -> str: ...

    def get_json(self, key: str) -> Any: ...

    def read_uri(self, uri: str) -> bytes: ...


class _BaseStore(ABC):
    """What every store shares: JSON on top of its bytes methods."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False, if_generation: str | None = None) -> str: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    def get_versioned(self, key: str) -> Versioned:
        """Read the object at `key` with a digest of it as its generation (NotFound when absent).

        Only read-modify-writes pay for the digest; Cloud Storage returns its own generation instead.
        """
        data = self.get_bytes(key)
        return Versioned(data, _digest(data))

    def put_json(self, key: str, obj: Any, *, if_absent: bool = False, if_generation: str | None = None) -> str:
        """Store `obj` as UTF-8 JSON (sorted keys, so equal objects give equal bytes); returns the URI."""
        return self.put_bytes(key, _json_bytes(obj), if_absent=if_absent, if_generation=if_generation)

    def get_json(self, key: str) -> Any:
        """Load the JSON object stored at `key` (NotFound when absent)."""
        return json.loads(self.get_bytes(key))


class LocalObjectStore(_BaseStore):
    """A folder as an object store; several processes may share it.

    Writes go to a temporary file beside the target and are then renamed (`os.replace`), so readers never see a
    partial object; `if_absent` uses `os.link`, which fails atomically when the target exists.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*_check_key(key).split("/"))

    def uri_for(self, key: str) -> str:
        """Return the file:// URI of `key`."""
        return self._path(key).as_uri()

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False, if_generation: str | None = None) -> str:
        """Write `data` atomically at `key`; returns its URI.

        Raises:
            AlreadyExists: when `if_absent` and the key is present.
            PreconditionFailed: when `if_generation` is not the generation of the stored object.
        """
        _check_preconditions(if_absent, if_generation)
        path = self._path(key)
        with staged_file(path) as tmp:
            tmp.write_bytes(data)
            if if_absent:
                try:
                    os.link(tmp, path)
                except FileExistsError as exc:
                    raise AlreadyExists(f"object {key!r} already exists") from exc
            elif if_generation is not None:
                with self._exclusive(path):  # compare and replace as one step for every process on this folder
                    current = _digest(path.read_bytes()) if path.is_file() else None
                    if current != if_generation:
                        raise PreconditionFailed(f"object {key!r} changed since generation {if_generation[:12]}")
                    os.replace(tmp, path)
            else:
                os.replace(tmp, path)
        return path.as_uri()

    def get_bytes(self, key: str) -> bytes:
        """Read the object at `key` (NotFound when absent)."""
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise NotFound(f"object {key!r} not found in {self.root}") from exc

    @staticmethod
    @contextmanager
    def _exclusive(path: Path) -> Iterator[None]:
        """Hold an advisory lock on a hidden file beside `path` (hidden from listings by its prefix)."""
        with open(path.with_name(f"{_TMP_PREFIX}lock-{path.name}"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def exists(self, key: str) -> bool:
        """Tell whether an object is stored at `key`."""
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        """Return the sorted keys that start with `prefix` (a plain string prefix, as in Cloud Storage)."""
        # Walk only below the deepest folder the prefix names.
        folders = prefix.split("/")[:-1]
        if any(segment in ("", ".", "..") for segment in folders):
            return []  # no valid key has such a prefix
        folder = self.root.joinpath(*folders)
        if not folder.is_dir():
            return []
        keys = []
        for dirpath, _, filenames in os.walk(folder):
            for name in filenames:
                if name.startswith(_TMP_PREFIX):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def read_uri(self, uri: str) -> bytes:
        """Read a URI this store produced, or any file:// URI or plain path."""
        return read_file_uri(uri)


class MemoryObjectStore(_BaseStore):
    """An in-process object store for tests; thread-safe, URIs are memory://<key>."""

    _SCHEME = "memory://"

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def uri_for(self, key: str) -> str:
        """Return the memory:// URI of `key`."""
        return self._SCHEME + _check_key(key)

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False, if_generation: str | None = None) -> str:
        """Store `data` at `key`; returns its URI (AlreadyExists / PreconditionFailed as the protocol says)."""
        _check_preconditions(if_absent, if_generation)
        uri = self.uri_for(key)
        with self._lock:
            if if_absent and key in self._objects:
                raise AlreadyExists(f"object {key!r} already exists")
            if if_generation is not None and (key not in self._objects or _digest(self._objects[key]) != if_generation):
                raise PreconditionFailed(f"object {key!r} changed since generation {if_generation[:12]}")
            self._objects[key] = bytes(data)
        return uri

    def get_bytes(self, key: str) -> bytes:
        """Return the object at `key` (NotFound when absent)."""
        with self._lock:
            try:
                return self._objects[_check_key(key)]
            except KeyError:
                raise NotFound(f"object {key!r} not found in memory store") from None

    def exists(self, key: str) -> bool:
        """Tell whether an object is stored at `key`."""
        with self._lock:
            return _check_key(key) in self._objects

    def list(self, prefix: str = "") -> list[str]:
        """Return the sorted keys that start with `prefix`."""
        with self._lock:
            return sorted(key for key in self._objects if key.startswith(prefix))

    def read_uri(self, uri: str) -> bytes:
        """Read a memory:// URI of this store, or any file:// URI or plain path."""
        if uri.startswith(self._SCHEME):
            return self.get_bytes(uri.removeprefix(self._SCHEME))
        return read_file_uri(uri)


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8")


def update_json(store: ObjectStore, key: str, change: Callable[[Any | None], Any], *, attempts: int = 20) -> Any:
    """Read-modify-write a JSON object with optimistic concurrency; returns what was stored.

    `change` gets the current value (None when absent) and returns the new one; it may run more than once, so it
    must not have effects of its own. When another writer got in between, the write is refused by its
    precondition and `change` runs again on the newer value, so no update is lost, across processes and replicas.

    Raises:
        PreconditionFailed: when `attempts` writes in a row lost the race.
    """
    for _ in range(attempts):
        try:
            current: Versioned | None = store.get_versioned(key)
        except NotFound:
            current = None
        before = None if current is None else json.loads(current.data)
        value = change(before)
        if current is not None and value == before:
            return value  # nothing to change, nothing to write
        try:
            if current is None:
                store.put_json(key, value, if_absent=True)
            else:
                store.put_json(key, value, if_generation=current.generation)
        except PreconditionFailed:
            continue
        return value
    raise PreconditionFailed(f"object {key!r}: {attempts} conditional writes in a row lost to other writers")
