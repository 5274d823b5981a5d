"""Choose the object store and the warehouse from configuration URIs (never from `if testing` in product code)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from aikube.settings import ConfigError
from aikube.storage import LocalObjectStore, ObjectStore
from aikube.warehouse import DuckDBWarehouse, Warehouse


def open_store(uri: str) -> ObjectStore:
    """`file:///folder` → a local folder. (`gs://bucket/prefix` → Cloud Storage arrives with the GCP backend.)"""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return LocalObjectStore(Path(parsed.path))
    raise ConfigError(f"unsupported object store URI {uri!r}: use file:///folder")


def open_warehouse(uri: str) -> Warehouse:
    """`duckdb:///folder` → embedded DuckDB over Parquet (`bigquery://project/dataset` comes with the GCP backend)."""
    parsed = urlparse(uri)
    if parsed.scheme == "duckdb":
        return DuckDBWarehouse(Path(parsed.path))
    raise ConfigError(f"unsupported warehouse URI {uri!r}: use duckdb:///folder")
