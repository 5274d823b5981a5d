"""Cloud Storage as an ObjectStore: one bucket, keys under an optional prefix.

The client honours STORAGE_EMULATOR_HOST (a stand-in such as fake-gcs-server) by itself; otherwise it uses
Application Default Credentials.

Example:
    >>> store = GcsObjectStore("aikube-state", prefix="dev")         # doctest: +SKIP
    >>> store.put_json("datasets/demo.json", {"name": "demo"})         # doctest: +SKIP
    'gs://aikube-state/dev/datasets/demo.json'
"""

from __future__ import annotations

import mimetypes
import re

import google.cloud.storage as storage
from google.api_core import exceptions as google_exceptions
from google.cloud.storage.retry import DEFAULT_RETRY

from aikube.storage import (
    AlreadyExists,
    NotFound,
    PreconditionFailed,
    Versioned,
    _BaseStore,
    _check_key,
    _check_preconditions,
    read_file_uri,
)

__all__ = ["GcsObjectStore", "parse_gs_uri"]

_SCHEME = "gs://"
# gs://bucket/object, optionally #generation (gsutil's notation for one version of an object). Names are not
# percent-encoded, as in gsutil and in the URIs uri_for returns.
_GS_URI = re.compile(r"gs://(?P<bucket>[^/#]+)/(?P<name>[^#]+)(?:#(?P<generation>\d+))?")


def parse_gs_uri(uri: str) -> tuple[str, str, int | None]:
    """Split `gs://bucket/name[#generation]` into (bucket, object name, generation or None).

    Raises:
        ValueError: when `uri` is not such a URI.
    """
    match = _GS_URI.fullmatch(uri)
    if match is None:
        raise ValueError(f"invalid Cloud Storage URI {uri!r}: expected gs://bucket/object[#generation]")
    generation = match.group("generation")
    return match.group("bucket"), match.group("name"), int(generation) if generation else None


def _content_type(key: str) -> str:
    guessed, _ = mimetypes.guess_type(key)
    return guessed or "application/octet-stream"


class GcsObjectStore(_BaseStore):
    """Objects in `gs://bucket/prefix/`; URIs are gs:// URIs.

    Conditional writes carry the precondition `ifGenerationMatch` (0 for `if_absent`, else the generation the
    writer read), so Cloud Storage itself refuses the second writer (HTTP 412) and two processes racing for one key
    cannot both win.
    """

    def __init__(self, bucket: str, prefix: str = "", client: storage.Client | None = None) -> None:
        prefix = prefix.strip("/")
        if prefix:
            _check_key(prefix)
        self.bucket_name = bucket
        self.prefix = prefix
        self.client = client or storage.Client()
        self._bucket = self.client.bucket(bucket)

    def _name(self, key: str) -> str:
        """Return the object name of `key` (the prefix, then the checked key)."""
        key = _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri_for(self, key: str) -> str:
        """Return the gs:// URI of `key`."""
        return f"{_SCHEME}{self.bucket_name}/{self._name(key)}"

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False, if_generation: str | None = None) -> str:
        """Write `data` at `key` (one upload: readers see the old or the new object); returns its URI.

        Raises:
            AlreadyExists: when `if_absent` and the key is present.
            PreconditionFailed: when `if_generation` is not the generation of the stored object.
        """
        _check_preconditions(if_absent, if_generation)
        blob = self._bucket.blob(self._name(key))
        content_type = _content_type(key)
        try:
            if if_absent or if_generation is not None:
                # The default retry for uploads covers conditional writes only; a retried conditional write whose
                # first attempt had landed would see 412, as a real second writer would.
                match = 0 if if_absent else int(if_generation or 0)
                blob.upload_from_string(bytes(data), content_type=content_type, if_generation_match=match)
            else:
                # An unconditional write of the same bytes is idempotent, so retrying it is safe.
                blob.upload_from_string(bytes(data), content_type=content_type, retry=DEFAULT_RETRY)
        except google_exceptions.PreconditionFailed as exc:
            if if_absent:
                raise AlreadyExists(f"object {key!r} already exists") from exc
            raise PreconditionFailed(f"object {key!r} changed since generation {if_generation}") from exc
        return self.uri_for(key)

    def get_bytes(self, key: str) -> bytes:
        """Read the object at `key` (NotFound when absent)."""
        return self._download(key)[1]

    def get_versioned(self, key: str) -> Versioned:
        """Read the object at `key` with its generation, from the one download (NotFound when absent)."""
        blob, data = self._download(key)
        if blob.generation is None:  # the download's x-goog-generation header is how we know what we read
            raise RuntimeError(f"Cloud Storage gave no generation for {key!r}")
        return Versioned(data, str(blob.generation))

    def _download(self, key: str) -> tuple[storage.Blob, bytes]:
        blob = self._bucket.blob(self._name(key))
        try:
            return blob, bytes(blob.download_as_bytes())
        except google_exceptions.NotFound as exc:
            raise NotFound(f"object {key!r} not found in {_SCHEME}{self.bucket_name}/{self.prefix}") from exc

    def exists(self, key: str) -> bool:
        """Tell whether an object is stored at `key`."""
        return bool(self._bucket.blob(self._name(key)).exists())

    def list(self, prefix: str = "") -> list[str]:
        """Return the sorted keys that start with `prefix` (a plain string prefix), relative to the store's prefix."""
        base = f"{self.prefix}/" if self.prefix else ""
        names = (blob.name for blob in self.client.list_blobs(self.bucket_name, prefix=base + prefix))
        return sorted(name.removeprefix(base) for name in names)

    def read_uri(self, uri: str) -> bytes:
        """Read a gs:// URI (any bucket; `#generation` reads that version), a file:// URI or a plain path.

        Raises:
            NotFound: when the object or file does not exist.
            ValueError: for other schemes or a malformed gs:// URI.
        """
        if not uri.startswith(_SCHEME):
            return read_file_uri(uri)
        bucket, name, generation = parse_gs_uri(uri)
        blob = self.client.bucket(bucket).blob(name, generation=generation)
        try:
            return bytes(blob.download_as_bytes())
        except google_exceptions.NotFound as exc:
            raise NotFound(f"no object at {uri!r}") from exc
