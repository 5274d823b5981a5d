"""The ObjectStore protocol, written once for every store: a local folder, memory, Cloud Storage (`gcp_emulators`).

What only one store does is tested beside it: tests/unit/libs/test_storage.py (the local folder) and
tests/integration/test_gcs_store.py (Cloud Storage on fake-gcs-server).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest

from aikube.adapters import open_store
from aikube.storage import AlreadyExists, MemoryObjectStore, NotFound, ObjectStore

GCS = pytest.param("gcs", marks=pytest.mark.gcp_emulators)
# The class open_store gives for each URI scheme.
BACKENDS = {"file": "LocalObjectStore", "gs": "GcsObjectStore"}


def location(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URI of an empty shared store: a folder under tmp_path, or a prefix of a new fake-gcs-server bucket.

    The Cloud Storage store sits under a prefix, so every test also checks that keys stay relative to it.
    """
    if kind == "local":
        return f"file://{tmp_path / 'store'}"
    return f"gs://{request.getfixturevalue('gcs_bucket')}/env/dev"


@pytest.fixture(params=["local", "memory", GCS])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """An empty store of each kind; the shared ones opened from their URI as the services open theirs."""
    if request.param == "memory":
        return MemoryObjectStore()
    return open_store(location(request.param, request, tmp_path))


@pytest.fixture(params=["local", GCS])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URI of an empty store that several processes can share (the memory store cannot be shared)."""
    return location(request.param, request, tmp_path)


def test_is_an_object_store(store: ObjectStore) -> None:
    """Every store satisfies the ObjectStore protocol."""
    assert isinstance(store, ObjectStore)


def test_open_store_gives_the_backend_the_uri_names(store_uri: str) -> None:
    """open_store gives the store of the URI's scheme: file:// a local folder, gs:// Cloud Storage."""
    assert type(open_store(store_uri)).__name__ == BACKENDS[urlparse(store_uri).scheme]


def test_put_then_get_returns_the_bytes(store: ObjectStore) -> None:
    """Bytes written at a key are read back unchanged."""
    store.put_bytes("a/b.bin", b"\x00payload")
    assert store.get_bytes("a/b.bin") == b"\x00payload"


def test_put_returns_the_uri_of_the_key(store: ObjectStore) -> None:
    """put_bytes returns the same URI as uri_for."""
    assert store.put_bytes("a/b.bin", b"x") == store.uri_for("a/b.bin")


def test_put_replaces_existing_content(store: ObjectStore) -> None:
    """A plain put overwrites what was there."""
    store.put_bytes("k", b"old")
    store.put_bytes("k", b"new")
    assert store.get_bytes("k") == b"new"


def test_if_absent_conflict_raises_and_keeps_the_original(store: ObjectStore) -> None:
    """if_absent on a present key raises AlreadyExists naming it and leaves the first content."""
    store.put_bytes("k", b"first", if_absent=True)
    with pytest.raises(AlreadyExists, match="'k'"):
        store.put_bytes("k", b"second", if_absent=True)
    assert store.get_bytes("k") == b"first"


def test_get_missing_key_raises_not_found(store: ObjectStore) -> None:
    """Reading an absent key raises NotFound (a KeyError) naming it."""
    with pytest.raises(NotFound, match="nope"):
        store.get_bytes("nope")


def test_exists_reflects_writes(store: ObjectStore) -> None:
    """exists is false before a write and true after it."""
    assert not store.exists("x/y")
    store.put_bytes("x/y", b"1")
    assert store.exists("x/y")


def test_list_returns_sorted_keys_with_string_prefix(store: ObjectStore) -> None:
    """list matches a plain string prefix, across folders, sorted; no prefix lists every key."""
    for key in ["a/c", "a/b/2", "a/b/1", "ab", "z"]:
        store.put_bytes(key, b"")
    assert store.list("a/b") == ["a/b/1", "a/b/2"]
    assert store.list("a") == ["a/b/1", "a/b/2", "a/c", "ab"]
    assert store.list() == ["a/b/1", "a/b/2", "a/c", "ab", "z"]
    assert store.list("missing/") == []


def test_json_round_trip(store: ObjectStore) -> None:
    """put_json/get_json round-trip nested JSON values."""
    value = {"name": "bikeshare", "n": [1, 2.5, None], "nested": {"ok": True}, "text": "é"}
    store.put_json("d.json", value)
    assert store.get_json("d.json") == value


def test_put_json_if_absent_conflict(store: ObjectStore) -> None:
    """put_json honours if_absent like put_bytes."""
    store.put_json("d.json", {"v": 1}, if_absent=True)
    with pytest.raises(AlreadyExists):
        store.put_json("d.json", {"v": 2}, if_absent=True)


def test_read_uri_reads_what_the_store_wrote(store: ObjectStore) -> None:
    """read_uri accepts the URI returned by a write."""
    uri = store.put_bytes("m/model.joblib", b"model")
    assert store.read_uri(uri) == b"model"


def test_read_uri_reads_plain_paths_and_file_uris(store: ObjectStore, tmp_path: Path) -> None:
    """read_uri also reads any local file, by path or file:// URI."""
    path = tmp_path / "some file.bin"
    path.write_bytes(b"outside")
    assert store.read_uri(str(path)) == b"outside"
    assert store.read_uri(path.as_uri()) == b"outside"


@pytest.mark.parametrize("key", ["", "/abs", "../escape", "a//b", "a/./b", "a\\b", ".tmp-x"])
def test_invalid_keys_are_rejected(store: ObjectStore, key: str) -> None:
    """Keys that are empty, absolute, climb out or clash with temp files raise ValueError, before any request."""
    with pytest.raises(ValueError, match="invalid object key"):
        store.put_bytes(key, b"x")


def test_two_stores_on_one_uri_share_objects_and_one_if_absent_writer_wins(store_uri: str) -> None:
    """Two stores opened on one URI (as two processes would) share objects; of two if_absent writers one wins."""
    first, second = open_store(store_uri), open_store(store_uri)
    first.put_bytes("shared", b"v")
    assert second.get_bytes("shared") == b"v"
    first.put_json("registry/v1.json", {"by": "first"}, if_absent=True)
    with pytest.raises(AlreadyExists):
        second.put_json("registry/v1.json", {"by": "second"}, if_absent=True)
    assert second.get_json("registry/v1.json") == {"by": "first"}
