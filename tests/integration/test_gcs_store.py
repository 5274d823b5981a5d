"""The Cloud Storage object store on fake-gcs-server: the same behaviour as the local and in-memory stores."""

from __future__ import annotations

from pathlib import Path

import google.cloud.storage as storage
import pytest

from aikube.adapters import open_store
from aikube.gcs import GcsObjectStore
from aikube.storage import AlreadyExists, NotFound, ObjectStore

pytestmark = pytest.mark.gcp_emulators


@pytest.fixture
def store(gcs_bucket: str) -> GcsObjectStore:
    """A store under a prefix, so every test also checks that keys stay relative to it."""
    return GcsObjectStore(gcs_bucket, prefix="env/dev")


def test_is_an_object_store(store: GcsObjectStore) -> None:
    """GcsObjectStore satisfies the ObjectStore protocol."""
    assert isinstance(store, ObjectStore)


def test_put_then_get_returns_the_bytes(store: GcsObjectStore) -> None:
    """Bytes written at a key are read back unchanged."""
    store.put_bytes("a/b.bin", b"\x00payload")
    assert store.get_bytes("a/b.bin") == b"\x00payload"


def test_put_returns_the_gs_uri_under_the_prefix(store: GcsObjectStore, gcs_bucket: str) -> None:
    """put_bytes returns uri_for: gs://bucket/prefix/key."""
    uri = store.put_bytes("a/b.bin", b"x")
    assert uri == store.uri_for("a/b.bin") == f"gs://{gcs_bucket}/env/dev/a/b.bin"


def test_put_replaces_existing_content(store: GcsObjectStore) -> None:
    """A plain put overwrites what was there."""
    store.put_bytes("k", b"old")
    store.put_bytes("k", b"new")
    assert store.get_bytes("k") == b"new"


def test_if_absent_conflict_is_a_precondition_failure(store: GcsObjectStore) -> None:
    """if_absent sends ifGenerationMatch=0: the second write gets 412 → AlreadyExists, the first content stays."""
    store.put_bytes("k", b"first", if_absent=True)
    with pytest.raises(AlreadyExists, match="'k'"):
        store.put_bytes("k", b"second", if_absent=True)
    assert store.get_bytes("k") == b"first"


def test_two_stores_racing_for_a_key_one_wins(gcs_bucket: str) -> None:
    """Two clients (as two processes) writing if_absent: exactly one succeeds."""
    first, second = GcsObjectStore(gcs_bucket), GcsObjectStore(gcs_bucket, client=storage.Client(project="other"))
    first.put_json("registry/v1.json", {"by": "first"}, if_absent=True)
    with pytest.raises(AlreadyExists):
        second.put_json("registry/v1.json", {"by": "second"}, if_absent=True)
    assert second.get_json("registry/v1.json") == {"by": "first"}


def test_get_missing_key_raises_not_found(store: GcsObjectStore) -> None:
    """Reading an absent key raises NotFound naming it."""
    with pytest.raises(NotFound, match="nope"):
        store.get_bytes("nope")


def test_exists_reflects_writes(store: GcsObjectStore) -> None:
    """exists is false before a write and true after it."""
    assert not store.exists("x/y")
    store.put_bytes("x/y", b"1")
    assert store.exists("x/y")


def test_list_returns_sorted_keys_relative_to_the_prefix(store: GcsObjectStore, gcs_bucket: str) -> None:
    """list matches a plain string prefix, across folders, sorted; objects outside the store's prefix are not seen."""
    for key in ["a/c", "a/b/2", "a/b/1", "ab", "z"]:
        store.put_bytes(key, b"")
    GcsObjectStore(gcs_bucket, prefix="env/devx").put_bytes("a/other", b"")
    assert store.list("a/b") == ["a/b/1", "a/b/2"]
    assert store.list("a") == ["a/b/1", "a/b/2", "a/c", "ab"]
    assert store.list() == ["a/b/1", "a/b/2", "a/c", "ab", "z"]
    assert store.list("missing/") == []


def test_list_pages_through_many_objects(gcs_bucket: str) -> None:
    """Listings are complete beyond one page of results."""
    store = GcsObjectStore(gcs_bucket, client=storage.Client(project="p"))
    keys = [f"many/{i:04d}" for i in range(30)]
    for key in keys:
        store.put_bytes(key, b"")
    blobs = store.client.list_blobs(gcs_bucket, prefix="many/", max_results=None, page_size=7)
    assert sum(1 for _ in blobs.pages) > 1  # the server really pages
    assert store.list("many/") == keys


def test_json_round_trip_with_json_content_type(store: GcsObjectStore) -> None:
    """put_json/get_json round-trip nested JSON; .json objects are stored as application/json."""
    value = {"name": "bikeshare", "n": [1, 2.5, None], "nested": {"ok": True}, "text": "é"}
    store.put_json("d.json", value)
    assert store.get_json("d.json") == value
    blob = store.client.bucket(store.bucket_name).get_blob("env/dev/d.json")
    assert blob is not None and blob.content_type == "application/json"


def test_put_json_if_absent_conflict(store: GcsObjectStore) -> None:
    """put_json honours if_absent like put_bytes."""
    store.put_json("d.json", {"v": 1}, if_absent=True)
    with pytest.raises(AlreadyExists):
        store.put_json("d.json", {"v": 2}, if_absent=True)


def test_read_uri_reads_what_the_store_wrote(store: GcsObjectStore) -> None:
    """read_uri accepts the URI returned by a write."""
    uri = store.put_bytes("m/model.joblib", b"model")
    assert store.read_uri(uri) == b"model"


def test_read_uri_reads_other_buckets_and_generations(store: GcsObjectStore, gcs_bucket: str) -> None:
    """Any gs:// URI is readable; #generation reads that version of the object."""
    other = f"{gcs_bucket}-b"
    store.client.create_bucket(other)
    store.client.bucket(other).blob("x/y.txt").upload_from_string(b"elsewhere")
    assert store.read_uri(f"gs://{other}/x/y.txt") == b"elsewhere"
    store.put_bytes("k", b"v1")
    blob = store.client.bucket(gcs_bucket).get_blob("env/dev/k")
    assert blob is not None
    assert store.read_uri(f"{store.uri_for('k')}#{blob.generation}") == b"v1"
    with pytest.raises(NotFound, match="missing"):
        store.read_uri(f"gs://{other}/missing")


def test_read_uri_reads_plain_paths_and_file_uris(store: GcsObjectStore, tmp_path: Path) -> None:
    """read_uri also reads any local file, by path or file:// URI."""
    path = tmp_path / "some file.bin"
    path.write_bytes(b"outside")
    assert store.read_uri(str(path)) == b"outside"
    assert store.read_uri(path.as_uri()) == b"outside"


@pytest.mark.parametrize("key", ["", "/abs", "../escape", "a//b", "a/./b", "a\\b", ".tmp-x"])
def test_invalid_keys_are_rejected(store: GcsObjectStore, key: str) -> None:
    """The same key rules as the local store, before any request."""
    with pytest.raises(ValueError, match="invalid object key"):
        store.put_bytes(key, b"x")


def test_open_store_gives_cloud_storage_for_gs_uris(gcs_bucket: str) -> None:
    """open_store("gs://bucket/prefix") is a GcsObjectStore on that bucket and prefix."""
    store = open_store(f"gs://{gcs_bucket}/team/a/")
    assert isinstance(store, GcsObjectStore)
    assert store.put_bytes("k", b"v") == f"gs://{gcs_bucket}/team/a/k"
    assert open_store(f"gs://{gcs_bucket}").uri_for("k") == f"gs://{gcs_bucket}/k"
