"""The DuckDB warehouse's own behaviour: tables as folders of Parquet files under its root.

The Warehouse protocol, which DuckDB shares with BigQuery, is tested once for both in
tests/contract/test_warehouse_protocol.py.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from aikube.warehouse import DuckDBWarehouse, UnknownTable


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    """An empty warehouse in a temporary folder."""
    return DuckDBWarehouse(tmp_path / "wh")


def test_a_partition_is_one_parquet_file_replaced_whole(warehouse: DuckDBWarehouse) -> None:
    """A partition is root/<table>/<partition>.parquet; writing it again replaces the file and leaves no temp file."""
    warehouse.append("raw", pd.DataFrame({"v": [1, 2]}), partition="b1")
    warehouse.append("raw", pd.DataFrame({"v": [3]}), partition="b1")
    assert [path.name for path in (warehouse.root / "raw").iterdir()] == ["b1.parquet"]
    assert pq.read_table(warehouse.root / "raw" / "b1.parquet").to_pydict() == {"v": [3], "_partition": ["b1"]}


def test_empty_frame_is_a_listed_partition(warehouse: DuckDBWarehouse) -> None:
    """An empty batch is stored as a partition file, so partitions lists it (BigQuery, storing no row, does not)."""
    assert warehouse.append("raw", pd.DataFrame({"v": pd.Series([], dtype="int64")}), partition="b1") == 0
    assert warehouse.partitions("raw") == ["b1"]


def test_table_without_partitions_behaves_as_absent(warehouse: DuckDBWarehouse) -> None:
    """A table folder with no partition yet (first write in progress) is an UnknownTable, not a DuckDB error."""
    (warehouse.root / "pending").mkdir()
    (warehouse.root / "pending" / ".tmp-x.partial").write_bytes(b"half-written")
    with pytest.raises(UnknownTable, match="pending"):
        warehouse.query("SELECT * FROM pending")
