"""The local folder store's own behaviour, and the file helpers every store uses.

The ObjectStore protocol, which the local, in-memory and Cloud Storage stores share, is tested once for all three in
tests/contract/test_object_store_protocol.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aikube.storage import LocalObjectStore, NotFound, check_name, read_file_uri


def test_local_store_hides_temporary_files(tmp_path: Path) -> None:
    """An in-progress write (a temp file) is not listed."""
    store = LocalObjectStore(tmp_path)
    store.put_bytes("dir/done", b"1")
    (tmp_path / "dir" / ".tmp-abc.partial").write_bytes(b"half")
    assert store.list("dir/") == ["dir/done"]


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
