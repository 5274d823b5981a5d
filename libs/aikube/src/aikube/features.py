"""Feature computation as SQL, general over any DatasetSpec; the same SQL serves training and serving.

Example:
    >>> sql = feature_sql(spec, "raw_bikeshare", where="_partition = $batch")
    >>> warehouse.materialize("features_bikeshare", sql, partition="b1", params={"batch": "b1"})
    >>> compute_features(spec, pd.DataFrame(records))   # serving: same SQL on an in-memory frame
"""

from __future__ import annotations

import duckdb
import pandas as pd

from aikube.datasets import CALENDAR_FEATURES, ColumnType, DatasetSpec
from aikube.warehouse import PARTITION_COLUMN, Warehouse, connect

__all__ = ["CALENDAR_FEATURES", "DIALECTS", "compute_features", "feature_sql", "model_columns", "quote_identifier"]

# --- The only dialect-specific part: quoting, type names and calendar extraction per SQL dialect.
# Both dialects give day_of_week 0 = Sunday: DuckDB's `dow` counts from 0 = Sunday, BigQuery's DAYOFWEEK from
# 1 = Sunday, hence the `- 1`. Timestamps are read as UTC wall time in both.
DIALECTS = ("duckdb", "bigquery")
_SQL_TYPES: dict[str, dict[ColumnType, str]] = {
    "duckdb": {"int": "BIGINT", "float": "DOUBLE", "string": "VARCHAR", "bool": "BOOLEAN", "timestamp": "TIMESTAMP"},
    "bigquery": {"int": "INT64", "float": "FLOAT64", "string": "STRING", "bool": "BOOL", "timestamp": "TIMESTAMP"},
}
_CALENDAR_SQL: dict[str, dict[str, str]] = {
    "duckdb": {
        "hour": "EXTRACT(hour FROM {ts})",
        "day_of_week": "EXTRACT(dow FROM {ts})",
        "month": "EXTRACT(month FROM {ts})",
    },
    "bigquery": {
        "hour": "EXTRACT(HOUR FROM {ts})",
        "day_of_week": "(EXTRACT(DAYOFWEEK FROM {ts}) - 1)",
        "month": "EXTRACT(MONTH FROM {ts})",
    },
}


def _check_dialect(dialect: str) -> str:
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}: use one of {list(DIALECTS)}")
    return dialect


def quote_identifier(identifier: str, dialect: str = "duckdb") -> str:
    """Quote a column or table name for `dialect`: "name" in DuckDB, `name` in BigQuery.

    Raises:
        ValueError: for an unknown dialect.
    """
    if _check_dialect(dialect) == "bigquery":
        return "`" + identifier.replace("\\", "\\\\").replace("`", "\\`") + "`"
    return '"' + identifier.replace('"', '""') + '"'


def _cast(expression: str, column_type: ColumnType, dialect: str) -> str:
    return f"CAST({expression} AS {_SQL_TYPES[dialect][column_type]})"


def _calendar(timestamp: str, feature: str, dialect: str) -> str:
    return _CALENDAR_SQL[dialect][feature].format(ts=timestamp)


# --- end of the dialect-specific part


def model_columns(spec: DatasetSpec) -> list[str]:
    """Return the columns a model is trained on: the calendar features, then spec.feature_columns (the spec
    guarantees no column bears a calendar feature's name)."""
    return [*CALENDAR_FEATURES, *spec.feature_columns]


def feature_sql(
    spec: DatasetSpec, source: str, where: str = "", *, with_target: bool = True, dialect: str = "duckdb"
) -> str:
    """Build the SELECT computing features from `source`.

    Columns: the timestamp (as TIMESTAMP, so text timestamps work), the calendar features derived from it, the
    feature columns cast to their declared types, and the target when `with_target` (data without labels has none).

    Args:
        spec: the dataset.
        source: table (or registered frame) to read from.
        where: an optional SQL condition, e.g. "_partition = $batch".
        with_target: include the target column.
        dialect: "duckdb" (the default, and the serving path) or "bigquery"; pass `warehouse.dialect`.

    Raises:
        ValueError: for an unknown dialect.
    """
    _check_dialect(dialect)

    def quote(name: str) -> str:
        return quote_identifier(name, dialect)

    timestamp = _cast(quote(spec.timestamp), "timestamp", dialect)
    selected = [f"{timestamp} AS {quote(spec.timestamp)}"]
    selected += [f"{_calendar(timestamp, name, dialect)} AS {quote(name)}" for name in CALENDAR_FEATURES]
    columns = spec.feature_columns + ([spec.target] if with_target else [])
    for name in columns:
        declared = spec.columns.get(name)
        expression = quote(name) if declared is None else _cast(quote(name), declared, dialect)
        selected.append(f"{expression} AS {quote(name)}")
    sql = "SELECT " + ", ".join(selected) + f" FROM {quote(source)}"
    return sql + (f" WHERE {where}" if where.strip() else "")


def compute_features(spec: DatasetSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Run feature_sql on an in-memory frame; rows keep their order. The target is included when present.

    Raises:
        ValueError: naming the missing columns, or when a value cannot be read as its declared type.
    """
    missing = [name for name in (spec.timestamp, *spec.feature_columns) if name not in frame.columns]
    if missing:
        raise ValueError(f"dataset {spec.name!r}: input lacks columns {missing}")
    sql = feature_sql(spec, "source", with_target=spec.target in frame.columns)
    with connect() as connection:
        try:
            connection.register("source", frame)
            # Without ORDER BY, DuckDB keeps insertion order (preserve_insertion_order defaults to true),
            # so output row i is input row i: predictions line up with the records sent.
            return connection.sql(sql).df()
        except duckdb.Error as exc:
            raise ValueError(f"dataset {spec.name!r}: cannot compute features: {exc}") from exc


def snapshot_rows(warehouse: Warehouse, table: str, snapshot: str) -> pd.DataFrame:
    """The rows of one feature snapshot (a batch's partition), without the partition column."""
    rows = warehouse.query(f"SELECT * FROM {table} WHERE {PARTITION_COLUMN} = $snapshot", {"snapshot": snapshot})
    return rows.drop(columns=[PARTITION_COLUMN])


def window_rows(
    warehouse: Warehouse, spec: DatasetSpec, table: str, window: dict[str, str], *, keep_partition: bool = False
) -> pd.DataFrame:
    """The feature rows whose timestamp lies in the half-open data-time window [start, end)."""
    stamp = quote_identifier(spec.timestamp, warehouse.dialect)
    rows = warehouse.query(
        f"SELECT * FROM {table} WHERE {stamp} >= CAST($start AS TIMESTAMP) AND {stamp} < CAST($end AS TIMESTAMP)",
        {"start": window["start"], "end": window["end"]},
    )
    return rows if keep_partition else rows.drop(columns=[PARTITION_COLUMN])
