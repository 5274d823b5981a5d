"""Feature computation as SQL, general over any DatasetSpec; the same SQL serves training and serving.

Example:
    >>> sql = feature_sql(spec, "raw_bikeshare", where="_partition = $batch")
    >>> warehouse.materialize("features_bikeshare", sql, partition="b1", params={"batch": "b1"})
    >>> compute_features(spec, pd.DataFrame(records))   # serving: same SQL on an in-memory frame
"""

from __future__ import annotations

import duckdb
import pandas as pd

from aikube.datasets import ColumnType, DatasetSpec
from aikube.warehouse import connect

__all__ = ["CALENDAR_FEATURES", "compute_features", "feature_sql", "model_columns"]

CALENDAR_FEATURES = ("hour", "day_of_week", "month")

# --- DuckDB dialect: the only dialect-specific part (BigQuery: backticks, INT64/FLOAT64/STRING/BOOL,
# EXTRACT(DAYOFWEEK ...) - 1 because BigQuery counts Sunday as 1).
_SQL_TYPES: dict[ColumnType, str] = {
    "int": "BIGINT",
    "float": "DOUBLE",
    "string": "VARCHAR",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP",
}
_CALENDAR_PARTS = {"hour": "hour", "day_of_week": "dow", "month": "month"}  # DuckDB dow: 0 = Sunday


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _cast(expression: str, column_type: ColumnType) -> str:
    return f"CAST({expression} AS {_SQL_TYPES[column_type]})"


def _calendar(timestamp: str, feature: str) -> str:
    return f"EXTRACT({_CALENDAR_PARTS[feature]} FROM {timestamp})"


# --- end of the dialect-specific part


def _check_no_clash(spec: DatasetSpec) -> None:
    """Raise ValueError when a selected column has the name of a calendar feature."""
    clashes = [name for name in (spec.timestamp, spec.target, *spec.feature_columns) if name in CALENDAR_FEATURES]
    if clashes:
        raise ValueError(
            f"dataset {spec.name!r}: columns {clashes} clash with the calendar features "
            f"{list(CALENDAR_FEATURES)}; drop or rename them"
        )


def model_columns(spec: DatasetSpec) -> list[str]:
    """Return the columns a model is trained on: the calendar features, then spec.feature_columns.

    Raises:
        ValueError: when a column has the name of a calendar feature.
    """
    _check_no_clash(spec)
    return [*CALENDAR_FEATURES, *spec.feature_columns]


def feature_sql(spec: DatasetSpec, source: str, where: str = "", *, with_target: bool = True) -> str:
    """Build the SELECT computing features from `source`.

    Columns: the timestamp (as TIMESTAMP, so text timestamps work), the calendar features derived from it, the
    feature columns cast to their declared types, and the target when `with_target` (data without labels has none).

    Args:
        spec: the dataset.
        source: table (or registered frame) to read from.
        where: an optional SQL condition, e.g. "_partition = $batch".
        with_target: include the target column.

    Raises:
        ValueError: when a column has the name of a calendar feature.
    """
    _check_no_clash(spec)
    timestamp = _cast(_quote(spec.timestamp), "timestamp")
    selected = [f"{timestamp} AS {_quote(spec.timestamp)}"]
    selected += [f"{_calendar(timestamp, name)} AS {_quote(name)}" for name in CALENDAR_FEATURES]
    columns = spec.feature_columns + ([spec.target] if with_target else [])
    for name in columns:
        declared = spec.columns.get(name)
        expression = _quote(name) if declared is None else _cast(_quote(name), declared)
        selected.append(f"{expression} AS {_quote(name)}")
    sql = "SELECT " + ", ".join(selected) + f" FROM {_quote(source)}"
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
