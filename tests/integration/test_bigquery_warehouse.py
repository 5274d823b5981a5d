"""The BigQuery warehouse on bqemulator: the same behaviour as the DuckDB warehouse, and the same features."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from aikube.adapters import open_warehouse
from aikube.bigquery import BigQueryWarehouse
from aikube.datasets import DatasetSpec
from aikube.features import feature_sql
from aikube.warehouse import PARTITION_COLUMN, DuckDBWarehouse, UnknownTable, Warehouse

pytestmark = pytest.mark.gcp_emulators


@pytest.fixture
def warehouse(bigquery_project: str, bigquery_dataset: str) -> BigQueryWarehouse:
    """A warehouse on an empty dataset of its own."""
    return BigQueryWarehouse(bigquery_project, bigquery_dataset)


def frame(values: list[int], label: str = "x") -> pd.DataFrame:
    """A small frame with one int and one string column."""
    return pd.DataFrame({"v": values, "label": [label] * len(values)})


def test_is_a_warehouse_in_the_bigquery_dialect(warehouse: BigQueryWarehouse) -> None:
    """BigQueryWarehouse satisfies the Warehouse protocol and says which SQL it speaks."""
    assert isinstance(warehouse, Warehouse)
    assert warehouse.dialect == "bigquery"


def test_append_returns_rows_and_stores_the_partition_column(warehouse: BigQueryWarehouse) -> None:
    """Appended rows are queryable by plain table name and carry their partition."""
    assert warehouse.append("raw", frame([1, 2, 3]), partition="b1") == 3
    result = warehouse.query(f"SELECT v, {PARTITION_COLUMN} FROM raw ORDER BY v")
    assert result["v"].tolist() == [1, 2, 3]
    assert set(result[PARTITION_COLUMN]) == {"b1"}


def test_re_append_replaces_the_partition(warehouse: BigQueryWarehouse) -> None:
    """Appending the same partition again replaces it instead of duplicating rows."""
    warehouse.append("raw", frame([1, 2, 3]), partition="b1")
    warehouse.append("raw", frame([1, 2, 3]), partition="b1")
    warehouse.append("raw", frame([9]), partition="b2")
    warehouse.append("raw", frame([7, 8]), partition="b1")
    assert warehouse.query("SELECT v FROM raw ORDER BY v")["v"].tolist() == [7, 8, 9]


def test_partitions_are_listed_sorted(warehouse: BigQueryWarehouse) -> None:
    """partitions lists the stored partition names in order; unknown tables have none."""
    for name in ["2011-01-08", "2011-01-01", "2011-01-15"]:
        warehouse.append("raw", frame([1]), partition=name)
    assert warehouse.partitions("raw") == ["2011-01-01", "2011-01-08", "2011-01-15"]
    assert warehouse.partitions("never_written") == []


def test_query_with_named_params(warehouse: BigQueryWarehouse) -> None:
    """$name parameters are bound from the dict, typed from the Python values."""
    warehouse.append("raw", frame([1, 2], "a"), partition="b1")
    warehouse.append("raw", frame([3], "b"), partition="b2")
    result = warehouse.query("SELECT sum(v) AS s FROM raw WHERE _partition = $p AND v >= $low", {"p": "b1", "low": 2})
    assert result["s"].tolist() == [2]


def test_parameter_types(warehouse: BigQueryWarehouse) -> None:
    """bool, float, datetime, date, None and lists become BOOL, FLOAT64, TIMESTAMP, DATE, NULL and ARRAY."""
    result = warehouse.query(
        "SELECT $b AS b, $f * 2 AS f, TIMESTAMP_ADD($t, INTERVAL 1 HOUR) AS t, $d AS d, $n IS NULL AS n, "
        "ARRAY_LENGTH($l) AS l, '$not_a_param' AS s",
        {"b": True, "f": 1.25, "t": dt.datetime(2011, 1, 1, 10), "d": dt.date(2011, 1, 2), "n": None, "l": [1, 2]},
    )
    row = result.iloc[0].to_dict()
    assert row == {
        "b": True,
        "f": 2.5,
        "t": pd.Timestamp("2011-01-01 11:00:00"),  # naive UTC, as DuckDB returns timestamps
        "d": dt.date(2011, 1, 2),
        "n": True,
        "l": 2,
        "s": "$not_a_param",
    }


def test_materialize_stores_a_query_over_another_table(warehouse: BigQueryWarehouse) -> None:
    """materialize runs SQL over a table inside BigQuery and stores the result as a partition of another table."""
    warehouse.append("raw", frame([1, 2], "a"), partition="b1")
    warehouse.append("raw", frame([5], "b"), partition="b2")
    rows = warehouse.materialize(
        "totals",
        "SELECT label, sum(v) AS total FROM raw WHERE _partition = $p GROUP BY label",
        partition="s1",
        params={"p": "b1"},
    )
    assert rows == 1
    result = warehouse.query("SELECT label, total, _partition FROM totals")
    assert result.to_dict("records") == [{"label": "a", "total": 3, "_partition": "s1"}]


def test_materialize_is_idempotent_on_its_partition(warehouse: BigQueryWarehouse) -> None:
    """Materializing the same partition twice leaves one copy; other partitions stay."""
    warehouse.append("raw", frame([1, 2]), partition="b1")
    for _ in range(2):
        warehouse.materialize("copy", "SELECT * FROM raw", partition="s1")
    warehouse.materialize("copy", "SELECT * FROM raw", partition="s2")
    counts = warehouse.query("SELECT _partition, count(*) AS n FROM copy GROUP BY _partition ORDER BY _partition")
    assert counts.to_dict("records") == [{"_partition": "s1", "n": 2}, {"_partition": "s2", "n": 2}]


def test_materialize_overrides_the_source_partition_column(warehouse: BigQueryWarehouse) -> None:
    """Rows copied with SELECT * get the partition they are written to, not their source's."""
    warehouse.append("raw", frame([1]), partition="b1")
    warehouse.materialize("copy", "SELECT * FROM raw", partition="snap")
    assert warehouse.query("SELECT _partition FROM copy")["_partition"].tolist() == ["snap"]


def test_partitions_with_different_columns_are_unioned_by_name(warehouse: BigQueryWarehouse) -> None:
    """A column added by a later frame reads as NULL in earlier rows, and a column a frame lacks is NULL in its rows."""
    warehouse.append("raw", pd.DataFrame({"v": [1]}), partition="b1")
    warehouse.append("raw", pd.DataFrame({"extra": ["e"], "v": [2]}), partition="b2")
    warehouse.append("raw", pd.DataFrame({"v": [3]}), partition="b3")
    result = warehouse.query("SELECT v, extra FROM raw ORDER BY v")
    assert result["v"].tolist() == [1, 2, 3]
    assert result["extra"].isna().tolist() == [True, False, True]


def test_unknown_table_raises_unknown_table(warehouse: BigQueryWarehouse) -> None:
    """A query over a table never written raises UnknownTable naming it."""
    with pytest.raises(UnknownTable, match="ghost"):
        warehouse.query("SELECT * FROM ghost")


def test_materialize_from_unknown_table_raises(warehouse: BigQueryWarehouse) -> None:
    """materialize over a missing source raises UnknownTable and writes nothing."""
    with pytest.raises(UnknownTable, match="ghost"):
        warehouse.materialize("out", "SELECT * FROM ghost", partition="s1")
    assert warehouse.partitions("out") == []


def test_empty_frame_writes_no_rows(warehouse: BigQueryWarehouse) -> None:
    """An empty batch counts zero rows and leaves the table queryable."""
    assert warehouse.append("raw", frame([]), partition="b1") == 0
    assert warehouse.query("SELECT count(*) AS n FROM raw")["n"].tolist() == [0]


@pytest.mark.parametrize("table", ["Raw", "raw-data", "1raw", "raw/x", "", "a b", "a`b"])
def test_invalid_table_names_are_rejected(warehouse: BigQueryWarehouse, table: str) -> None:
    """The same table names as DuckDB's: lower-case plain identifiers."""
    with pytest.raises(ValueError, match="table name"):
        warehouse.append(table, frame([1]), partition="b1")


@pytest.mark.parametrize("partition", ["../b1", "a/b", "", ".hidden", "a'b"])
def test_invalid_partition_names_are_rejected(warehouse: BigQueryWarehouse, partition: str) -> None:
    """The same partition names as DuckDB's."""
    with pytest.raises(ValueError, match="partition name"):
        warehouse.append("raw", frame([1]), partition=partition)


def test_two_warehouses_share_a_dataset(bigquery_project: str, bigquery_dataset: str) -> None:
    """Writes by one instance (process) are read by another on the same dataset; open_warehouse picks BigQuery."""
    BigQueryWarehouse(bigquery_project, bigquery_dataset).append("raw", frame([4]), partition="b1")
    other = open_warehouse(f"bigquery://{bigquery_project}/{bigquery_dataset}")
    assert isinstance(other, BigQueryWarehouse)
    assert other.query("SELECT v FROM raw")["v"].tolist() == [4]


# --- feature SQL in the BigQuery dialect gives what it gives in DuckDB

TIMES = ["2011-01-01 00:00:00", "2011-01-02 13:00:00", "2011-07-15 23:00:00", "2012-02-29 06:30:00"]


def _spec() -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "name": "synthetic",
            "timestamp": "when",
            "target": "label",
            "task": "classification",
            "drop": ["row_id"],
            "columns": {
                "row_id": "int",
                "when": "timestamp",
                "amount": "float",
                "count": "int",
                "city": "string",
                "member": "bool",
                "label": "string",
            },
        }
    )


def _rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row_id": range(len(TIMES)),
            "when": pd.to_datetime(TIMES),
            "amount": [1.5, 2.0, -3.25, 0.0],
            "count": [1, 2, 3, 4],
            "city": ["Paris", "Lyon", "Paris", "Nice"],
            "member": [True, False, True, False],
            "label": ["a", "b", "a", "c"],
        }
    )


@pytest.mark.parametrize("text_timestamps", [False, True], ids=["timestamp", "text"])
def test_feature_sql_gives_the_same_features_as_duckdb(
    warehouse: BigQueryWarehouse, tmp_path: Path, text_timestamps: bool
) -> None:
    """The same rows through feature_sql in each warehouse's dialect give equal feature tables (0 = Sunday)."""
    spec, rows = _spec(), _rows()
    if text_timestamps:
        rows = rows.assign(when=TIMES)  # as a CSV lands them
    results = []
    for wh in (DuckDBWarehouse(tmp_path), warehouse):
        wh.append("raw", rows, partition="b1")
        wh.append("raw", rows.assign(amount=99.0), partition="b2")
        sql = feature_sql(spec, "raw", "_partition = $p", dialect=wh.dialect)
        assert wh.materialize("features", sql, partition="s1", params={"p": "b1"}) == len(rows)
        stored = wh.query("SELECT * FROM features ORDER BY amount").drop(columns=[PARTITION_COLUMN])
        results.append(stored)
    duckdb_features, bigquery_features = results
    # By amount: Fri 2011-07-15, Wed 2012-02-29, Sat 2011-01-01, Sun 2011-01-02.
    assert bigquery_features["day_of_week"].tolist() == [5, 3, 6, 0]
    pd.testing.assert_frame_equal(bigquery_features, duckdb_features)  # values and dtypes
