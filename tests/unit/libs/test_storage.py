"""Object stores: the local folder and the in-memory store behave the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from aikube.storage import (
    AlreadyExists,
    LocalObjectStore,
    MemoryObjectStore,
    NotFound,
    ObjectStore,
    check_name,
    read_file_uri,
)


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """Each test runs against both stores."""
    return LocalObjectStore(tmp_path / "store") if request.param == "local" else MemoryObjectStore()


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
    """if_absent on a present key raises AlreadyExists and leaves the first content."""
    store.put_bytes("k", b"first", if_absent=True)
    with pytest.raises(AlreadyExists):
        store.put_bytes("k", b"second", if_absent=True)
    assert store.get_bytes("k") == b"first"


def test_get_missing_key_raises_not_found(store: ObjectStore) -> None:
    """Reading an absent key raises NotFound (a KeyError)."""
    with pytest.raises(NotFound, match="nope"):
        store.get_bytes("nope")


def test_exists_reflects_writes(store: ObjectStore) -> None:
    """exists is false before a write and true after it."""
    assert not store.exists("x/y")
    store.put_bytes("x/y", b"1")
    assert store.exists("x/y")


def test_list_returns_sorted_keys_with_string_prefix(store: ObjectStore) -> None:
    """list matches a plain string prefix, across folders, sorted."""
    for key in ["a/c", "a/b/2", "a/b/1", "ab", "z"]:
        store.put_bytes(key, b"")
    assert store.list("a/b") == ["a/b/1", "a/b/2"]
    assert store.list("a") == ["a/b/1", "a/b/2", "a/c", "ab"]
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
    """Keys that are empty, absolute, climb out or clash with temp files raise ValueError."""
    with pytest.raises(ValueError, match="invalid object key"):
        store.put_bytes(key, b"x")


def test_local_store_hides_temporary_files(tmp_path: Path) -> None:
    """An in-progress write (a temp file) is not listed."""
    store = LocalObjectStore(tmp_path)
    store.put_bytes("dir/done", b"1")
    (tmp_path / "dir" / ".tmp-abc.partial").write_bytes(b"half")
    assert store.list("dir/") == ["dir/done"]


def test_local_stores_share_a_folder(tmp_path: Path) -> None:
    """Two stores on one folder (as two processes would) see each other's objects."""
    LocalObjectStore(tmp_path).put_bytes("shared", b"v")
    assert LocalObjectStore(tmp_path).get_bytes("shared") == b"v"


def test_local_uri_is_an_absolute_file_uri(tmp_path: Path) -> None:
    """Local URIs are file:// URIs of the absolute path."""
    uri = LocalObjectStore(tmp_path).uri_for("a/b")
    assert uri == (tmp_path.resolve() / "a" / "b").as_uri()


def test_read_file_uri_missing_file_raises_not_found(tmp_path: Path) -> None:
    """A missing file reads as NotFound."""
    with pytest.raises(NotFound):
        read_file_uri((tmp_path / "missing").as_uri())


def test_read_file_uri_rejects_other_schemes() -> None:
    """Remote schemes are not read by the local reader."""
    with pytest.raises(ValueError, match="gs://"):
        read_file_uri("gs://bucket/key")


def test_check_name_rejects_path_characters() -> None:
    """Names that would become paths cannot contain separators."""
    assert check_name("v1.2", "version") == "v1.2"
    with pytest.raises(ValueError, match="version"):
        check_name("a/b", "version")
