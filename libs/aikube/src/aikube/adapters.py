"""Choose the object store and the warehouse from configuration URIs (never from `if testing` in product code).

The Google Cloud backends are imported only when chosen: their client libraries take about a second to import.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from aikube.settings import ConfigError, check_store_uri, check_warehouse_uri
from aikube.storage import LocalObjectStore, ObjectStore, read_file_uri
from aikube.warehouse import DuckDBWarehouse, Warehouse


def open_store(uri: str) -> ObjectStore:
    """`file:///folder` → a local folder; `gs://bucket[/prefix]` → Cloud Storage (STORAGE_EMULATOR_HOST honoured).

    Raises:
        ConfigError: an unsupported URI.
    """
    parsed = urlparse(_checked(check_store_uri, uri))
    if parsed.scheme == "file":
        return LocalObjectStore(Path(parsed.path))
    from aikube.gcs import GcsObjectStore

    return GcsObjectStore(parsed.netloc, prefix=parsed.path.strip("/"))


def open_warehouse(uri: str) -> Warehouse:
    """`duckdb:///folder` → embedded DuckDB over Parquet; `bigquery://project/dataset` → BigQuery.

    BigQuery honours BIGQUERY_EMULATOR_HOST (see aikube.bigquery.bigquery_client).

    Raises:
        ConfigError: an unsupported or incomplete URI.
    """
    parsed = urlparse(_checked(check_warehouse_uri, uri))
    if parsed.scheme == "duckdb":
        return DuckDBWarehouse(Path(parsed.path))
    from aikube.bigquery import BigQueryWarehouse

    return BigQueryWarehouse(parsed.netloc, parsed.path.strip("/"))


def read_uri(uri: str) -> bytes:
    """Read an object by URI wherever it lives: gs://bucket/name[#generation], file:// or a plain path.

    Raises:
        NotFound: nothing there.
    """
    if uri.startswith("gs://"):
        from aikube.gcs import GcsObjectStore, parse_gs_uri

        return GcsObjectStore(parse_gs_uri(uri)[0]).read_uri(uri)
    return read_file_uri(uri)


def _checked(check: Callable[[str], str], uri: str) -> str:
    # the settings validate the same URIs; outside of settings (the CLI) a bad one is still a configuration error
    try:
        return check(uri)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
