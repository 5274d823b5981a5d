"""What only the BigQuery warehouse does, on bqemulator: parameter types in BigQuery's SQL.

The Warehouse protocol, which BigQuery shares with DuckDB, is tested once for both in
tests/contract/test_warehouse_protocol.py (its BigQuery parameters are marked gcp_emulators, as this file is).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from aikube.bigquery import BigQueryWarehouse

pytestmark = pytest.mark.gcp_emulators


@pytest.fixture
def warehouse(bigquery_project: str, bigquery_dataset: str) -> BigQueryWarehouse:
    """A warehouse on an empty dataset of its own."""
    return BigQueryWarehouse(bigquery_project, bigquery_dataset)


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


def test_empty_frame_is_not_a_listed_partition(warehouse: BigQueryWarehouse) -> None:
    """An empty batch stores no row, so partitions does not list it (DuckDB, storing a file, does)."""
    assert warehouse.append("raw", pd.DataFrame({"v": pd.Series([], dtype="int64")}), partition="b1") == 0
    assert warehouse.partitions("raw") == []
