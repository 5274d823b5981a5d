"""The warehouse: partitioned tables queried with SQL (embedded DuckDB over Parquet here; BigQuery in bigquery.py).

A table is a set of partitions (one per batch or snapshot). Writing a partition again replaces it, which makes
every write idempotent under at-least-once delivery. Every stored row carries a `_partition` column.

Example:
    >>> wh = DuckDBWarehouse(Path("state/warehouse"))
    >>> wh.append("raw_demo", frame, partition="2011-01-01")
    >>> wh.materialize("daily", "SELECT count(*) AS n FROM raw_demo", partition="2011-01-01")
    >>> wh.query("SELECT * FROM daily WHERE _partition = $p", {"p": "2011-01-01"})
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from aikube.storage import SEGMENT_PATTERN, check_name, staged_file

__all__ = [
    "PARTITION_COLUMN",
    "TABLE_PATTERN",
    "DuckDBWarehouse",
    "UnknownTable",
    "Warehouse",
    "connect",
]

PARTITION_COLUMN = "_partition"
# Lower-case plain identifiers: valid unquoted in DuckDB and BigQuery, and no case-folding clashes between tables.
TABLE_PATTERN = r"[a-z_][a-z0-9_]{0,127}"
_SUFFIX = ".parquet"


class UnknownTable(LookupError):
    """A query referenced a table that does not exist or has no partitions yet."""


@runtime_checkable
class Warehouse(Protocol):
    """Partitioned tables, queried by plain table name; `$name` parameters.

    `dialect` names the SQL dialect its queries are written in ("duckdb", "bigquery"): SQL built for it, such as
    `feature_sql(..., dialect=warehouse.dialect)`, must use that dialect's quoting, types and functions.
    """

    dialect: str

    def append(self, table: str, frame: pd.DataFrame, *, partition: str) -> int: ...

    def materialize(self, table: str, sql: str, *, partition: str, params: dict[str, Any] | None = None) -> int: ...

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame: ...

    def partitions(self, table: str) -> list[str]: ...


def connect() -> duckdb.DuckDBPyConnection:
    """Open an in-memory DuckDB connection with the settings every AIkube query relies on."""
    connection = duckdb.connect(":memory:")
    # Time-zone-aware inputs are read as UTC wall time, whatever the machine's zone.
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class DuckDBWarehouse:
    """Tables as folders of Parquet files, `root/<table>/<partition>.parquet`, each written atomically.

    Every query opens a fresh in-memory DuckDB connection with one view per table, so many processes can read
    and write the same root without DuckDB file locks. A table whose folder holds no partition yet has no view:
    querying it raises UnknownTable, exactly like a table that was never written.
    """

    dialect: str = "duckdb"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _files(self, table: str) -> list[Path]:
        folder = self.root / check_name(table, "table name", TABLE_PATTERN)
        return sorted(folder.glob("*" + _SUFFIX)) if folder.is_dir() else []

    def partitions(self, table: str) -> list[str]:
        """Return the sorted partition names of `table` ([] for a table never written)."""
        return [path.name.removesuffix(_SUFFIX) for path in self._files(table)]

    def _path(self, table: str, partition: str) -> Path:
        """Return the file of a partition, after checking both names (they become a path)."""
        check_name(table, "table name", TABLE_PATTERN)
        return self.root / table / (check_name(partition, "partition name", SEGMENT_PATTERN) + _SUFFIX)

    @staticmethod
    def _write(path: Path, partition: str, data: pa.Table) -> int:
        if PARTITION_COLUMN in data.column_names:
            data = data.drop_columns([PARTITION_COLUMN])  # the stored partition is the one being written
        data = data.append_column(PARTITION_COLUMN, pa.array([partition] * data.num_rows, type=pa.string()))
        with staged_file(path) as tmp:
            pq.write_table(data, tmp)
            os.replace(tmp, path)
        return data.num_rows

    def append(self, table: str, frame: pd.DataFrame, *, partition: str) -> int:
        """Store `frame` as `partition` of `table`, replacing that partition if present; returns the row count.

        Raises:
            ValueError: when the table or partition name is invalid.
        """
        return self._write(self._path(table, partition), partition, pa.Table.from_pandas(frame, preserve_index=False))

    def materialize(self, table: str, sql: str, *, partition: str, params: dict[str, Any] | None = None) -> int:
        """Run a SELECT over warehouse tables and store its result as `partition` of `table`; returns rows.

        Raises:
            UnknownTable: when the SELECT references a table with no partitions.
            ValueError: when the table or partition name is invalid.
        """
        path = self._path(table, partition)  # bad names fail before the query runs
        with self._connection(sql) as connection:
            result = self._run(connection, sql, params).to_arrow_table()
        return self._write(path, partition, result)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Run `sql` (tables referenced by plain name, `$name` parameters) and return the result.

        Raises:
            UnknownTable: when the query references a table with no partitions.
        """
        with self._connection(sql) as connection:
            return self._run(connection, sql, params).df()

    def _connection(self, sql: str) -> duckdb.DuckDBPyConnection:
        """Open a connection with a view for each table that `sql` may reference."""
        connection = connect()
        for folder in sorted(self.root.iterdir()):
            # Only names that appear in the SQL: a view reads its files' metadata, so skip the other tables.
            if re.fullmatch(TABLE_PATTERN, folder.name) is None or not re.search(
                rf"\b{folder.name}\b", sql, re.IGNORECASE
            ):
                continue
            files = self._files(folder.name)
            if files:
                file_list = ", ".join(_sql_string(str(path)) for path in files)
                connection.execute(
                    f'CREATE VIEW "{folder.name}" AS SELECT * FROM read_parquet([{file_list}], union_by_name = true)'
                )
        return connection

    @staticmethod
    def _run(connection: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None) -> duckdb.DuckDBPyRelation:
        try:
            return connection.sql(sql, params=params or None)
        except duckdb.CatalogException as exc:
            match = re.search(r"Table with name (\S+) does not exist", str(exc))
            if match is None:
                raise
            raise UnknownTable(f"table {match.group(1)!r} does not exist or has no partitions yet") from exc
