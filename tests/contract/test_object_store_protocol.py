"""The ObjectStore protocol, written once for every store: a local folder, memory, Cloud Storage (`gcp_emulators`).

What only one store does is tested beside it: tests/unit/libs/test_storage.py (the local folder) and
tests/integration/test_gcs_store.py (Cloud Storage on fake-gcs-server).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from aikube.adapters import open_store
from aikube.storage import (
    AlreadyExists,
    MemoryObjectStore,
    NotFound,
    ObjectStore,
    PreconditionFailed,
    update_json,
)

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


def test_generation_write_succeeds_on_the_generation_read(store: ObjectStore) -> None:
    """A write conditioned on the generation just read replaces the object and moves its generation."""
    store.put_bytes("p", b"v1")
    read = store.get_versioned("p")
    assert read.data == b"v1"
    store.put_bytes("p", b"v2", if_generation=read.generation)
    assert store.get_versioned("p").data == b"v2"
    assert store.get_versioned("p").generation != read.generation


def test_stale_generation_write_is_refused_and_keeps_the_newer_object(store: ObjectStore) -> None:
    """A writer whose read is out of date loses: PreconditionFailed naming the key, the other write kept."""
    store.put_bytes("p", b"v1")
    stale = store.get_versioned("p").generation
    store.put_bytes("p", b"v2", if_generation=stale)
    with pytest.raises(PreconditionFailed, match="'p'"):
        store.put_bytes("p", b"lost update", if_generation=stale)
    assert store.get_bytes("p") == b"v2"


def test_generation_write_on_an_absent_key_is_refused(store: ObjectStore) -> None:
    """A generation precondition on a key that is gone fails rather than recreating it."""
    store.put_bytes("p", b"v1")
    generation = store.get_versioned("p").generation
    with pytest.raises(PreconditionFailed):
        store.put_bytes("other", b"x", if_generation=generation)
    assert not store.exists("other")


def test_get_versioned_missing_key_raises_not_found(store: ObjectStore) -> None:
    with pytest.raises(NotFound, match="nope"):
        store.get_versioned("nope")


def test_update_json_creates_then_changes(store: ObjectStore) -> None:
    """update_json sees None for an absent key, then the stored value, and returns what it stored."""
    assert update_json(store, "counter.json", lambda v: {"n": 1 if v is None else v["n"] + 1}) == {"n": 1}
    assert update_json(store, "counter.json", lambda v: {"n": v["n"] + 1}) == {"n": 2}
    assert store.get_json("counter.json") == {"n": 2}


def test_update_json_retries_over_a_writer_that_got_in_between(store: ObjectStore) -> None:
    """When another writer changes the object between read and write, the change is reapplied on its value."""
    store.put_json("list.json", ["first"])
    seen: list[list[str]] = []

    def append(value: list[str]) -> list[str]:
        seen.append(value)
        if len(seen) == 1:  # another replica writes while this one computes
            store.put_json("list.json", [*value, "other"])
        return [*value, "mine"]

    assert update_json(store, "list.json", append) == ["first", "other", "mine"]
    assert seen == [["first"], ["first", "other"]]


INCREMENT = """
import sys
from aikube.adapters import open_store
from aikube.storage import update_json
store = open_store(sys.argv[1])
for _ in range(int(sys.argv[2])):
    update_json(store, "counter.json", lambda v: {"n": (v or {"n": 0})["n"] + 1}, attempts=200)
"""


def test_concurrent_processes_lose_no_update(store_uri: str) -> None:
    """Processes that read-modify-write one object through update_json never overwrite each other's change."""
    writers = [subprocess.Popen([sys.executable, "-c", INCREMENT, store_uri, "15"]) for _ in range(3)]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0, 0]
    assert open_store(store_uri).get_json("counter.json") == {"n": 45}
