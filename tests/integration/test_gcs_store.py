"""What only the Cloud Storage store does, on fake-gcs-server: prefixes, paging, content types, gs:// URIs.

The ObjectStore protocol, which Cloud Storage shares with the local and in-memory stores, is tested once for all
three in tests/contract/test_object_store_protocol.py (its Cloud Storage parameters are marked gcp_emulators, as
this file is).
"""

from __future__ import annotations

import google.cloud.storage as storage
import pytest

from aikube.adapters import open_store
from aikube.gcs import GcsObjectStore
from aikube.storage import NotFound

pytestmark = pytest.mark.gcp_emulators


@pytest.fixture
def store(gcs_bucket: str) -> GcsObjectStore:
    """A store under a prefix of an empty bucket."""
    return GcsObjectStore(gcs_bucket, prefix="env/dev")


def test_uri_is_the_gs_uri_under_the_prefix(store: GcsObjectStore, gcs_bucket: str) -> None:
    """uri_for gives gs://bucket/prefix/key."""
    assert store.uri_for("a/b.bin") == f"gs://{gcs_bucket}/env/dev/a/b.bin"


def test_list_sees_only_the_store_prefix(store: GcsObjectStore, gcs_bucket: str) -> None:
    """Objects under a sibling prefix (env/devx beside env/dev) are not listed; keys are relative to the prefix."""
    store.put_bytes("a/mine", b"")
    GcsObjectStore(gcs_bucket, prefix="env/devx").put_bytes("a/other", b"")
    assert store.list("a") == ["a/mine"]
    assert store.list() == ["a/mine"]


def test_list_pages_through_many_objects(gcs_bucket: str) -> None:
    """Listings are complete beyond one page of results."""
    store = GcsObjectStore(gcs_bucket, client=storage.Client(project="p"))
    keys = [f"many/{i:04d}" for i in range(30)]
    for key in keys:
        store.put_bytes(key, b"")
    blobs = store.client.list_blobs(gcs_bucket, prefix="many/", max_results=None, page_size=7)
    assert sum(1 for _ in blobs.pages) > 1  # the server really pages
    assert store.list("many/") == keys


def test_json_objects_have_the_json_content_type(store: GcsObjectStore) -> None:
    """.json objects are stored as application/json, under the store's prefix."""
    store.put_json("d.json", {"v": 1})
    blob = store.client.bucket(store.bucket_name).get_blob("env/dev/d.json")
    assert blob is not None and blob.content_type == "application/json"


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


def test_open_store_takes_bucket_and_prefix_from_the_gs_uri(gcs_bucket: str) -> None:
    """open_store("gs://bucket/prefix/") stores under that bucket and prefix; without a prefix, at the bucket's root."""
    assert open_store(f"gs://{gcs_bucket}/team/a/").put_bytes("k", b"v") == f"gs://{gcs_bucket}/team/a/k"
    assert open_store(f"gs://{gcs_bucket}").uri_for("k") == f"gs://{gcs_bucket}/k"
