"""The Warehouse protocol, written once for every backend: DuckDB always, BigQuery on bqemulator (`gcp_emulators`).

What only one backend does is tested beside it: tests/unit/libs/test_warehouse.py (DuckDB's Parquet files) and
tests/integration/test_bigquery_warehouse.py (BigQuery's SQL and parameter types).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest
from synthetic_dataset import TIMES, synthetic_frame, synthetic_spec

from aikube.adapters import open_warehouse
from aikube.features import compute_features, feature_sql
from aikube.warehouse import PARTITION_COLUMN, UnknownTable, Warehouse

# The class open_warehouse gives for each URI scheme; the scheme is also the dialect the backend speaks.
BACKENDS = {"duckdb": "DuckDBWarehouse", "bigquery": "BigQueryWarehouse"}


@pytest.fixture(params=["duckdb", pytest.param("bigquery", marks=pytest.mark.gcp_emulators)])
def warehouse_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The configuration URI of an empty warehouse: a folder under tmp_path, or a new dataset on bqemulator."""
    if request.param == "duckdb":
        return f"duckdb://{tmp_path / 'wh'}"
    project, dataset = request.getfixturevalue("bigquery_project"), request.getfixturevalue("bigquery_dataset")
    return f"bigquery://{project}/{dataset}"


@pytest.fixture
def warehouse(warehouse_uri: str) -> Warehouse:
    """The warehouse at `warehouse_uri`, opened as the services open theirs."""
    return open_warehouse(warehouse_uri)


def frame(values: list[int], label: str = "x") -> pd.DataFrame:
    """A small frame with one int and one string column."""
    return pd.DataFrame({"v": values, "label": [label] * len(values)})


def test_open_warehouse_gives_the_backend_the_uri_names(warehouse: Warehouse, warehouse_uri: str) -> None:
    """open_warehouse gives a Warehouse of the URI scheme's backend, which says it speaks that scheme's SQL."""
    scheme = urlparse(warehouse_uri).scheme
    assert isinstance(warehouse, Warehouse)
    assert type(warehouse).__name__ == BACKENDS[scheme]
    assert warehouse.dialect == scheme


def test_append_returns_rows_and_stores_the_partition_column(warehouse: Warehouse) -> None:
    """Appended rows are queryable by plain table name and carry their partition."""
    assert warehouse.append("raw", frame([1, 2, 3]), partition="b1") == 3
    result = warehouse.query(f"SELECT v, {PARTITION_COLUMN} FROM raw ORDER BY v")
    assert result["v"].tolist() == [1, 2, 3]
    assert set(result[PARTITION_COLUMN]) == {"b1"}


def test_re_append_replaces_the_partition(warehouse: Warehouse) -> None:
    """Appending the same partition again replaces it instead of duplicating rows."""
    warehouse.append("raw", frame([1, 2, 3]), partition="b1")
    warehouse.append("raw", frame([1, 2, 3]), partition="b1")
    warehouse.append("raw", frame([9]), partition="b2")
    warehouse.append("raw", frame([7, 8]), partition="b1")
    assert warehouse.query("SELECT v FROM raw ORDER BY v")["v"].tolist() == [7, 8, 9]


def test_partitions_are_listed_sorted(warehouse: Warehouse) -> None:
    """partitions lists the stored partition names in order; unknown tables have none."""
    for name in ["2011-01-08", "2011-01-01", "2011-01-15"]:
        warehouse.append("raw", frame([1]), partition=name)
    assert warehouse.partitions("raw") == ["2011-01-01", "2011-01-08", "2011-01-15"]
    assert warehouse.partitions("never_written") == []


def test_query_with_named_params(warehouse: Warehouse) -> None:
    """$name parameters are bound from the dict."""
    warehouse.append("raw", frame([1, 2], "a"), partition="b1")
    warehouse.append("raw", frame([3], "b"), partition="b2")
    result = warehouse.query("SELECT sum(v) AS s FROM raw WHERE _partition = $p AND v >= $low", {"p": "b1", "low": 2})
    assert result["s"].tolist() == [2]


def test_materialize_stores_a_query_over_another_table(warehouse: Warehouse) -> None:
    """materialize runs SQL over a table and stores the result as a partition of another table."""
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


def test_materialize_is_idempotent_on_its_partition(warehouse: Warehouse) -> None:
    """Materializing the same partition twice leaves one copy; other partitions stay."""
    warehouse.append("raw", frame([1, 2]), partition="b1")
    for _ in range(2):
        warehouse.materialize("copy", "SELECT * FROM raw", partition="s1")
    warehouse.materialize("copy", "SELECT * FROM raw", partition="s2")
    counts = warehouse.query("SELECT _partition, count(*) AS n FROM copy GROUP BY _partition ORDER BY _partition")
    assert counts.to_dict("records") == [{"_partition": "s1", "n": 2}, {"_partition": "s2", "n": 2}]


def test_materialize_overrides_the_source_partition_column(warehouse: Warehouse) -> None:
    """Rows copied with SELECT * get the partition they are written to, not their source's."""
    warehouse.append("raw", frame([1]), partition="b1")
    warehouse.materialize("copy", "SELECT * FROM raw", partition="snap")
    assert warehouse.query("SELECT _partition FROM copy")["_partition"].tolist() == ["snap"]


def test_partitions_with_different_columns_are_unioned_by_name(warehouse: Warehouse) -> None:
    """A column added by a later frame reads as NULL in earlier rows, and a column a frame lacks is NULL in its rows."""
    warehouse.append("raw", pd.DataFrame({"v": [1]}), partition="b1")
    warehouse.append("raw", pd.DataFrame({"extra": ["e"], "v": [2]}), partition="b2")
    warehouse.append("raw", pd.DataFrame({"v": [3]}), partition="b3")
    result = warehouse.query("SELECT v, extra FROM raw ORDER BY v")
    assert result["v"].tolist() == [1, 2, 3]
    assert result["extra"].isna().tolist() == [True, False, True]


def test_unknown_table_raises_unknown_table(warehouse: Warehouse) -> None:
    """A query over a table never written raises UnknownTable naming it."""
    with pytest.raises(UnknownTable, match="ghost"):
        warehouse.query("SELECT * FROM ghost")


def test_materialize_from_unknown_table_raises(warehouse: Warehouse) -> None:
    """materialize over a missing source raises UnknownTable naming it and writes nothing."""
    with pytest.raises(UnknownTable, match="ghost"):
        warehouse.materialize("out", "SELECT * FROM ghost", partition="s1")
    assert warehouse.partitions("out") == []


def test_empty_frame_writes_no_rows(warehouse: Warehouse) -> None:
    """An empty batch counts zero rows and leaves the table queryable."""
    assert warehouse.append("raw", frame([]), partition="b1") == 0
    assert warehouse.query("SELECT count(*) AS n FROM raw")["n"].tolist() == [0]


@pytest.mark.parametrize("table", ["Raw", "raw-data", "1raw", "raw/x", "", "a b", "a`b"])
def test_invalid_table_names_are_rejected(warehouse: Warehouse, table: str) -> None:
    """Table names become folders and SQL identifiers, so only lower-case plain identifiers are allowed."""
    with pytest.raises(ValueError, match="table name"):
        warehouse.append(table, frame([1]), partition="b1")


@pytest.mark.parametrize("partition", ["../b1", "a/b", "", ".hidden", "a'b"])
def test_invalid_partition_names_are_rejected(warehouse: Warehouse, partition: str) -> None:
    """Partition names become file names and SQL values, so separators, quotes and leading dots are refused."""
    with pytest.raises(ValueError, match="partition name"):
        warehouse.append("raw", frame([1]), partition=partition)


def test_two_warehouses_share_their_tables(warehouse: Warehouse, warehouse_uri: str) -> None:
    """Writes by one instance (process) are read by another opened on the same URI."""
    warehouse.append("raw", frame([4]), partition="b1")
    other = open_warehouse(warehouse_uri)
    assert other is not warehouse
    assert other.query("SELECT v FROM raw")["v"].tolist() == [4]


@pytest.mark.parametrize("text_timestamps", [True, False], ids=["text", "timestamp"])
def test_feature_sql_in_the_warehouse_gives_the_serving_features(warehouse: Warehouse, text_timestamps: bool) -> None:
    """feature_sql in the warehouse's dialect stores exactly what compute_features (serving) gives on the same rows."""
    spec, rows = synthetic_spec(), synthetic_frame()  # text timestamps, as a CSV lands them
    if not text_timestamps:
        rows = rows.assign(when=pd.to_datetime(TIMES))
    warehouse.append("raw", rows, partition="b1")
    warehouse.append("raw", rows.assign(amount=99.0), partition="b2")
    sql = feature_sql(spec, "raw", "_partition = $p", dialect=warehouse.dialect)
    assert warehouse.materialize("features", sql, partition="s1", params={"p": "b1"}) == len(rows)
    stored = warehouse.query("SELECT * FROM features ORDER BY amount").drop(columns=[PARTITION_COLUMN])
    served = compute_features(spec, rows).sort_values("amount").reset_index(drop=True)
    # By amount: Fri 2011-07-15, Wed 2012-02-29, Sat 2011-01-01, Sun 2011-01-02 (0 = Sunday).
    assert stored["day_of_week"].tolist() == [5, 3, 6, 0]
    pd.testing.assert_frame_equal(stored, served)  # values and dtypes
