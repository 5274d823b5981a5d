"""The DuckDB warehouse: partitioned Parquet tables, idempotent writes, SQL with parameters."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from aikube.warehouse import PARTITION_COLUMN, DuckDBWarehouse, UnknownTable, Warehouse


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    """An empty warehouse in a temporary folder."""
    return DuckDBWarehouse(tmp_path / "wh")


def frame(values: list[int], label: str = "x") -> pd.DataFrame:
    """A small frame with one int and one string column."""
    return pd.DataFrame({"v": values, "label": [label] * len(values)})


def test_is_a_warehouse(warehouse: DuckDBWarehouse) -> None:
    """DuckDBWarehouse satisfies the Warehouse protocol and says which SQL it speaks."""
    assert isinstance(warehouse, Warehouse)
    assert warehouse.dialect == "duckdb"


def test_append_returns_rows_and_stores_the_partition_column(warehouse: DuckDBWarehouse) -> None:
    """Appended rows are queryable by plain table name and carry their partition."""
    assert warehouse.append("raw", frame([1, 2, 3]), partition="b1") == 3
    result = warehouse.query(f"SELECT v, {PARTITION_COLUMN} FROM raw ORDER BY v")
    assert result["v"].tolist() == [1, 2, 3]
    assert set(result[PARTITION_COLUMN]) == {"b1"}


def test_re_append_replaces_the_partition(warehouse: DuckDBWarehouse) -> None:
    """Appending the same partition again replaces it instead of duplicating rows."""
    warehouse.append("raw", frame([1, 2, 3]), partition="b1")
    warehouse.append("raw", frame([1, 2, 3]), partition="b1")
    warehouse.append("raw", frame([9]), partition="b2")
    warehouse.append("raw", frame([7, 8]), partition="b1")
    result = warehouse.query("SELECT v FROM raw ORDER BY v")
    assert result["v"].tolist() == [7, 8, 9]


def test_partitions_are_listed_sorted(warehouse: DuckDBWarehouse) -> None:
    """partitions lists the stored partition names in order; unknown tables have none."""
    for name in ["2011-01-08", "2011-01-01", "2011-01-15"]:
        warehouse.append("raw", frame([1]), partition=name)
    assert warehouse.partitions("raw") == ["2011-01-01", "2011-01-08", "2011-01-15"]
    assert warehouse.partitions("never_written") == []


def test_query_with_named_params(warehouse: DuckDBWarehouse) -> None:
    """$name parameters are bound from the dict."""
    warehouse.append("raw", frame([1, 2], "a"), partition="b1")
    warehouse.append("raw", frame([3], "b"), partition="b2")
    result = warehouse.query("SELECT sum(v) AS s FROM raw WHERE _partition = $p AND v >= $low", {"p": "b1", "low": 2})
    assert result["s"].tolist() == [2]


def test_materialize_stores_a_query_over_another_table(warehouse: DuckDBWarehouse) -> None:
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


def test_materialize_is_idempotent_on_its_partition(warehouse: DuckDBWarehouse) -> None:
    """Materializing the same partition twice leaves one copy."""
    warehouse.append("raw", frame([1, 2]), partition="b1")
    for _ in range(2):
        warehouse.materialize("copy", "SELECT * FROM raw", partition="s1")
    assert warehouse.query("SELECT count(*) AS n FROM copy")["n"].tolist() == [2]


def test_materialize_overrides_the_source_partition_column(warehouse: DuckDBWarehouse) -> None:
    """Rows copied with SELECT * get the partition they are written to, not their source's."""
    warehouse.append("raw", frame([1]), partition="b1")
    warehouse.materialize("copy", "SELECT * FROM raw", partition="snap")
    assert warehouse.query("SELECT _partition FROM copy")["_partition"].tolist() == ["snap"]


def test_partitions_with_different_columns_are_unioned_by_name(warehouse: DuckDBWarehouse) -> None:
    """A column missing from one partition reads as NULL there."""
    warehouse.append("raw", pd.DataFrame({"v": [1]}), partition="b1")
    warehouse.append("raw", pd.DataFrame({"v": [2], "extra": ["e"]}), partition="b2")
    result = warehouse.query("SELECT v, extra FROM raw ORDER BY v")
    assert result["extra"].isna().tolist() == [True, False]


def test_unknown_table_raises_unknown_table(warehouse: DuckDBWarehouse) -> None:
    """A query over a table never written raises UnknownTable naming it."""
    with pytest.raises(UnknownTable, match="ghost"):
        warehouse.query("SELECT * FROM ghost")


def test_table_without_partitions_behaves_as_absent(warehouse: DuckDBWarehouse) -> None:
    """A table folder with no partition yet (first write in progress) is an UnknownTable, not a DuckDB error."""
    (warehouse.root / "pending").mkdir()
    (warehouse.root / "pending" / ".tmp-x.partial").write_bytes(b"half-written")
    with pytest.raises(UnknownTable, match="pending"):
        warehouse.query("SELECT * FROM pending")


def test_materialize_from_unknown_table_raises(warehouse: DuckDBWarehouse) -> None:
    """materialize over a missing source raises UnknownTable and writes nothing."""
    with pytest.raises(UnknownTable):
        warehouse.materialize("out", "SELECT * FROM ghost", partition="s1")
    assert warehouse.partitions("out") == []


def test_empty_frame_is_a_partition_with_no_rows(warehouse: DuckDBWarehouse) -> None:
    """An empty batch is stored and counts zero rows."""
    assert warehouse.append("raw", frame([]), partition="b1") == 0
    assert warehouse.query("SELECT count(*) AS n FROM raw")["n"].tolist() == [0]


@pytest.mark.parametrize("table", ["Raw", "raw-data", "1raw", "raw/x", "", "a b"])
def test_invalid_table_names_are_rejected(warehouse: DuckDBWarehouse, table: str) -> None:
    """Table names become folders and SQL identifiers, so only lower-case plain identifiers are allowed."""
    with pytest.raises(ValueError, match="table name"):
        warehouse.append(table, frame([1]), partition="b1")


@pytest.mark.parametrize("partition", ["../b1", "a/b", "", ".hidden"])
def test_invalid_partition_names_are_rejected(warehouse: DuckDBWarehouse, partition: str) -> None:
    """Partition names become file names, so separators and leading dots are refused."""
    with pytest.raises(ValueError, match="partition name"):
        warehouse.append("raw", frame([1]), partition=partition)


def test_two_warehouses_share_a_root(tmp_path: Path) -> None:
    """Writes by one instance (process) are read by another on the same root."""
    DuckDBWarehouse(tmp_path).append("raw", frame([4]), partition="b1")
    assert DuckDBWarehouse(tmp_path).query("SELECT v FROM raw")["v"].tolist() == [4]
