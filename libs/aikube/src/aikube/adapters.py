"""Choose the object store and the warehouse from configuration URIs (never from `if testing` in product code).

The Google Cloud backends are imported only when chosen: their client libraries take about a second to import.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from aikube.settings import ConfigError
from aikube.storage import LocalObjectStore, ObjectStore, read_file_uri
from aikube.warehouse import DuckDBWarehouse, Warehouse


def open_store(uri: str) -> ObjectStore:
    """`file:///folder` → a local folder; `gs://bucket[/prefix]` → Cloud Storage (STORAGE_EMULATOR_HOST honoured)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return LocalObjectStore(Path(parsed.path))
    if parsed.scheme == "gs" and parsed.netloc:
        from aikube.gcs import GcsObjectStore

        return GcsObjectStore(parsed.netloc, prefix=parsed.path.strip("/"))
    raise ConfigError(f"unsupported object store URI {uri!r}: use file:///folder or gs://bucket/prefix")


def open_warehouse(uri: str) -> Warehouse:
    """`duckdb:///folder` → embedded DuckDB over Parquet; `bigquery://project/dataset` → BigQuery.

    BigQuery honours BIGQUERY_EMULATOR_HOST (see aikube.bigquery.bigquery_client).
    """
    parsed = urlparse(uri)
    if parsed.scheme == "duckdb":
        return DuckDBWarehouse(Path(parsed.path))
    if parsed.scheme == "bigquery":
        dataset = parsed.path.strip("/")
        if not parsed.netloc or not dataset or "/" in dataset:
            raise ConfigError(f"invalid warehouse URI {uri!r}: use bigquery://project/dataset")
        from aikube.bigquery import BigQueryWarehouse

        return BigQueryWarehouse(parsed.netloc, dataset)
    raise ConfigError(f"unsupported warehouse URI {uri!r}: use duckdb:///folder or bigquery://project/dataset")


def read_uri(uri: str) -> bytes:
    """Read an object by URI wherever it lives: gs://bucket/name[#generation], file:// or a plain path.

    Raises:
        NotFound: nothing there.
    """
    if uri.startswith("gs://"):
        from aikube.gcs import GcsObjectStore, parse_gs_uri

        return GcsObjectStore(parse_gs_uri(uri)[0]).read_uri(uri)
    return read_file_uri(uri)
