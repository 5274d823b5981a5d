"""BigQuery as a Warehouse: one dataset, tables named as in DuckDB, every row carrying its `_partition`.

The work stays inside BigQuery: `append` loads one Parquet file, `materialize` is DELETE + INSERT … SELECT, and
only `query` results come back to Python. SQL is BigQuery's (GoogleSQL); tables are referenced by plain name
(the dataset is the default dataset of every query) and parameters are written `$name`, as for DuckDB.

Replacing a partition is two jobs (DELETE, then the load or INSERT): in between, readers see the partition
missing, and a failure there leaves it missing until the redelivered event writes it again. BigQuery has
multi-statement transactions, but the BigQuery stand-in used in tests cannot bind parameters inside one, so
that path would be untested.

Example:
    >>> wh = BigQueryWarehouse("my-project", "aikube")                       # doctest: +SKIP
    >>> wh.append("raw_demo", frame, partition="2011-01-01")                 # doctest: +SKIP
    >>> wh.query("SELECT count(*) AS n FROM raw_demo WHERE _partition = $p", {"p": "2011-01-01"})  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import io
import numbers
import os
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from google.api_core import exceptions as google_exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from aikube.features import quote_identifier
from aikube.storage import SEGMENT_PATTERN, check_name
from aikube.warehouse import PARTITION_COLUMN, TABLE_PATTERN, UnknownTable

__all__ = ["BigQueryWarehouse", "bigquery_client", "to_bigquery_sql"]

# Safe inside a backtick-quoted `project.dataset.table` reference; real ids are stricter.
_PROJECT_PATTERN = r"[A-Za-z0-9][A-Za-z0-9.:_-]{0,127}"
_DATASET_PATTERN = r"[A-Za-z_][A-Za-z0-9_]{0,1023}"
# The query parameter carrying the partition being written; user parameters may not use the name.
_PARTITION_PARAM = "aikube_partition"

# Quoted strings, quoted identifiers and comments are copied as they are; `$name` elsewhere becomes `@name`.
_PARAM_OR_SKIPPED = re.compile(
    r"""(?P<skip>'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*"|`(?:\\.|[^`\\])*`|--[^\n]*|\#[^\n]*|/\*.*?\*/)"""
    r"""|\$(?P<name>[A-Za-z_][A-Za-z0-9_]*)""",
    re.DOTALL,
)

# Standard SQL names of the types the API may report under legacy names.
_STANDARD_TYPES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "RECORD": "STRUCT"}
# Arrow types used to write NULLs for a column that a frame lacks.
_ARROW_TYPES: dict[str, pa.DataType] = {
    "INT64": pa.int64(),
    "FLOAT64": pa.float64(),
    "BOOL": pa.bool_(),
    "STRING": pa.string(),
    "BYTES": pa.binary(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "DATETIME": pa.timestamp("us"),
    "DATE": pa.date32(),
    "TIME": pa.time64("us"),
    "NUMERIC": pa.decimal128(38, 9),
    "BIGNUMERIC": pa.decimal256(76, 38),
}


def bigquery_client(project: str) -> bigquery.Client:
    """A BigQuery client for `project`; with BIGQUERY_EMULATOR_HOST set (http://host:port) it talks to that stand-in.

    Unlike the Pub/Sub and Storage clients, the BigQuery client has no emulator switch of its own: it is given
    the endpoint, and anonymous credentials since there is no token to fetch. Otherwise: Application Default
    Credentials, as for every other client.
    """
    endpoint = os.environ.get("BIGQUERY_EMULATOR_HOST", "").strip()
    if not endpoint:
        return bigquery.Client(project=project)
    if "://" not in endpoint:
        endpoint = "http://" + endpoint
    return bigquery.Client(
        project=project, credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=endpoint)
    )


def to_bigquery_sql(sql: str) -> str:
    """Rewrite `$name` parameters as BigQuery's `@name`, leaving strings, quoted names and comments alone."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        return match.group(0) if name is None else "@" + name

    return _PARAM_OR_SKIPPED.sub(replace, sql)


def _scalar_type(name: str, value: Any) -> str:
    if value is None:
        return "STRING"  # a typed NULL
    if isinstance(value, bool | np.bool_):
        return "BOOL"
    if isinstance(value, numbers.Integral):
        return "INT64"
    if isinstance(value, Decimal):
        return "NUMERIC"
    if isinstance(value, numbers.Real):
        return "FLOAT64"
    if isinstance(value, str):
        return "STRING"
    if isinstance(value, bytes):
        return "BYTES"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP"  # a naive datetime is read as UTC, as DuckDB reads it
    if isinstance(value, dt.date):
        return "DATE"
    if isinstance(value, dt.time):
        return "TIME"
    raise TypeError(f"query parameter {name!r}: no BigQuery type for {type(value).__name__} values")


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _query_parameter(name: str, value: Any) -> bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter:
    """A query parameter typed from the Python value; lists and tuples become arrays."""
    if isinstance(value, list | tuple | np.ndarray):
        values = [_plain(item) for item in value]
        kinds = {_scalar_type(name, item) for item in values if item is not None}
        if len(kinds) > 1:
            raise TypeError(f"query parameter {name!r}: array items of mixed types {sorted(kinds)}")
        return bigquery.ArrayQueryParameter(name, kinds.pop() if kinds else "STRING", values)
    value = _plain(value)
    return bigquery.ScalarQueryParameter(name, _scalar_type(name, value), value)


def _standard_type(field: bigquery.SchemaField) -> str:
    return _STANDARD_TYPES.get(field.field_type, field.field_type)


def _column_type(name: str, arrow_type: pa.DataType) -> str:
    """The BigQuery type a frame column is stored as."""
    if pa.types.is_dictionary(arrow_type):  # pandas categoricals
        arrow_type = arrow_type.value_type
    if pa.types.is_boolean(arrow_type):
        return "BOOL"
    if pa.types.is_integer(arrow_type):
        return "INT64"
    if pa.types.is_floating(arrow_type):
        return "FLOAT64"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_null(arrow_type):
        return "STRING"  # an all-empty column (null type) is stored as text
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return "BYTES"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP"
    if pa.types.is_date(arrow_type):
        return "DATE"
    if pa.types.is_time(arrow_type):
        return "TIME"
    if pa.types.is_decimal(arrow_type):
        return "NUMERIC" if arrow_type.precision <= 38 and arrow_type.scale <= 9 else "BIGNUMERIC"
    raise ValueError(f"column {name!r}: no BigQuery type for Arrow type {arrow_type}")


def _storable(column: pa.ChunkedArray, bq_type: str) -> pa.ChunkedArray:
    """Cast a frame column to what a Parquet load of `bq_type` expects (UTC microsecond timestamps, plain values)."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if bq_type == "TIMESTAMP" and pa.types.is_timestamp(column.type):
        if column.type.tz is None:
            column = pc.assume_timezone(column, "UTC")  # naive means UTC wall time, as in DuckDB
        return column.cast(pa.timestamp("us", tz="UTC"), safe=False)
    if pa.types.is_null(column.type):
        return column.cast(_ARROW_TYPES[bq_type])
    return column


class BigQueryWarehouse:
    """Tables of one BigQuery dataset, clustered on `_partition`; the dataset itself is made by infrastructure."""

    dialect: str = "bigquery"

    def __init__(self, project: str, dataset: str, client: bigquery.Client | None = None) -> None:
        self.project = check_name(project, "project id", _PROJECT_PATTERN)
        self.dataset = check_name(dataset, "dataset", _DATASET_PATTERN)
        self.client = client or bigquery_client(project)

    def _ref(self, table: str) -> str:
        return f"{self.project}.{self.dataset}.{check_name(table, 'table name', TABLE_PATTERN)}"

    def _sql_ref(self, table: str) -> str:
        return f"`{self._ref(table)}`"

    # --- reading

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Run `sql` (tables by plain name, `$name` parameters) and return the result.

        TIMESTAMP columns come back as naive UTC datetimes, as DuckDB's do.

        Raises:
            UnknownTable: when the query references a table that does not exist.
        """
        rows = self._run(to_bigquery_sql(sql), params).result()
        frame = rows.to_arrow(create_bqstorage_client=False).to_pandas()
        for name, dtype in frame.dtypes.items():
            if isinstance(dtype, pd.DatetimeTZDtype):
                frame[name] = frame[name].dt.tz_convert("UTC").dt.tz_localize(None)
        return frame

    def partitions(self, table: str) -> list[str]:
        """Return the sorted partition names of `table` ([] for a table never written).

        A partition written with no rows has nothing to show for it here (DuckDB lists it).
        """
        try:
            rows = self._run(f"SELECT DISTINCT {PARTITION_COLUMN} FROM {self._sql_ref(table)}").result()
        except UnknownTable:
            return []
        return sorted(str(row[0]) for row in rows)

    # --- writing

    def append(self, table: str, frame: pd.DataFrame, *, partition: str) -> int:
        """Store `frame` as `partition` of `table`, replacing that partition if present; returns the row count.

        The table is created on the first append, with the frame's columns; columns that later frames add are
        added to it (NULL in earlier rows), and columns a frame lacks are NULL in its rows.

        Raises:
            ValueError: when the table or partition name is invalid, or a column has no BigQuery type.
        """
        ref = self._ref(table)
        check_name(partition, "partition name", SEGMENT_PATTERN)
        data = pa.Table.from_pandas(frame, preserve_index=False)
        if PARTITION_COLUMN in data.column_names:
            data = data.drop_columns([PARTITION_COLUMN])  # the stored partition is the one being written
        data = data.append_column(PARTITION_COLUMN, pa.array([partition] * data.num_rows, type=pa.string()))
        fields = [bigquery.SchemaField(f.name, _column_type(f.name, f.type)) for f in data.schema]
        schema = self._ensure_table(table, fields)

        # Columns in the table's order: the stand-in inserts Parquet columns by position, BigQuery by name.
        by_name = {name.lower(): name for name in data.column_names}
        columns: list[pa.ChunkedArray] = []
        for field in schema:
            bq_type = _standard_type(field)
            if field.name.lower() in by_name:
                columns.append(_storable(data.column(by_name[field.name.lower()]), bq_type))
            elif bq_type in _ARROW_TYPES:
                columns.append(pa.chunked_array([pa.nulls(data.num_rows, _ARROW_TYPES[bq_type])]))
            else:
                raise ValueError(f"table {table!r}: column {field.name!r} ({bq_type}) is missing from the frame")
        aligned = pa.Table.from_arrays(columns, names=[field.name for field in schema])

        buffer = io.BytesIO()
        pq.write_table(aligned, buffer, coerce_timestamps="us")
        buffer.seek(0)
        self._delete_partition(table, partition)
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
        )
        self.client.load_table_from_file(buffer, ref, job_config=config, rewind=True).result()
        return int(data.num_rows)

    def materialize(self, table: str, sql: str, *, partition: str, params: dict[str, Any] | None = None) -> int:
        """Run a SELECT over warehouse tables inside BigQuery and store its result as `partition` of `table`.

        Returns the number of rows written.

        Raises:
            UnknownTable: when the SELECT references a table that does not exist (nothing is written).
            ValueError: when the table or partition name is invalid, or the query returns no column.
        """
        self._ref(table)
        check_name(partition, "partition name", SEGMENT_PATTERN)
        params = dict(params or {})
        if _PARTITION_PARAM in params:
            raise ValueError(f"query parameter name {_PARTITION_PARAM!r} is reserved for the partition")
        select = to_bigquery_sql(sql)
        result_fields = self._result_schema(select, params)  # UnknownTable here, before any write
        fields = [
            bigquery.SchemaField(f.name, _standard_type(f), mode="REPEATED" if f.mode == "REPEATED" else "NULLABLE")
            for f in result_fields
            if f.name.lower() != PARTITION_COLUMN  # the stored partition is the one being written
        ]
        if not fields:
            raise ValueError(f"materialize {table!r}: the query returns no column besides {PARTITION_COLUMN!r}")
        self._ensure_table(table, [*fields, bigquery.SchemaField(PARTITION_COLUMN, "STRING")])
        names = ", ".join(quote_identifier(f.name, "bigquery") for f in fields)
        self._delete_partition(table, partition)
        job = self._run(
            f"INSERT INTO {self._sql_ref(table)} ({names}, {PARTITION_COLUMN}) "
            f"SELECT {names}, @{_PARTITION_PARAM} FROM (\n{select}\n)",
            {**params, _PARTITION_PARAM: partition},
        )
        return int(job.num_dml_affected_rows or 0)

    # --- helpers

    def _run(self, sql: str, params: dict[str, Any] | None = None, *, dry_run: bool = False) -> bigquery.QueryJob:
        """Run one query job to completion (or dry-run it), mapping a missing table to UnknownTable."""
        config = bigquery.QueryJobConfig(
            default_dataset=f"{self.project}.{self.dataset}",
            query_parameters=[_query_parameter(name, value) for name, value in (params or {}).items()],
            dry_run=dry_run,
            use_query_cache=not dry_run,
        )
        try:
            job = self.client.query(sql, job_config=config)
            if not dry_run:
                job.result()
            return job
        except google_exceptions.NotFound as exc:
            match = re.search(r"Table (\S+) was not found", str(exc))
            if match is None:
                raise
            name = re.split(r"[.:]", match.group(1))[-1]
            raise UnknownTable(f"table {name!r} does not exist or has no partitions yet") from exc

    def _result_schema(self, select: str, params: dict[str, Any]) -> Sequence[bigquery.SchemaField]:
        """The columns `select` returns, from a dry run (free in BigQuery) or, failing that, a LIMIT 0 query."""
        schema = self._run(select, params, dry_run=True).schema
        if schema is None:
            schema = self._run(f"SELECT * FROM (\n{select}\n) LIMIT 0", params).result().schema
        return list(schema)

    def _ensure_table(self, table: str, fields: Sequence[bigquery.SchemaField]) -> list[bigquery.SchemaField]:
        """Create `table` with `fields` (clustered on `_partition`), or add the fields it lacks; returns its schema."""
        ref = self._ref(table)
        try:
            existing = self.client.get_table(ref)
        except google_exceptions.NotFound:
            created = bigquery.Table(ref, schema=list(fields))
            created.clustering_fields = [PARTITION_COLUMN]
            try:
                return list(self.client.create_table(created).schema)
            except google_exceptions.Conflict:
                existing = self.client.get_table(ref)  # another writer created it first
        known = {field.name.lower() for field in existing.schema}
        missing = [field for field in fields if field.name.lower() not in known]
        if missing:
            existing = self._add_columns(ref, missing)
        return list(existing.schema)

    def _add_columns(self, ref: str, fields: Sequence[bigquery.SchemaField]) -> bigquery.Table:
        clauses = ", ".join(
            f"ADD COLUMN IF NOT EXISTS {quote_identifier(field.name, 'bigquery')} "
            + (f"ARRAY<{_standard_type(field)}>" if field.mode == "REPEATED" else _standard_type(field))
            for field in fields
        )
        self._run(f"ALTER TABLE `{ref}` {clauses}")
        table = self.client.get_table(ref)
        known = {field.name.lower() for field in table.schema}
        unreported = [field for field in fields if field.name.lower() not in known]
        if unreported:
            # bqemulator 1.4.0 applies ALTER TABLE to its storage but not to the schema it reports (and the
            # reverse for a schema update), so it needs both. BigQuery reports the new columns at once.
            table.schema = [*table.schema, *unreported]
            table = self.client.update_table(table, ["schema"])
        return table

    def _delete_partition(self, table: str, partition: str) -> None:
        self._run(
            f"DELETE FROM {self._sql_ref(table)} WHERE {PARTITION_COLUMN} = @{_PARTITION_PARAM}",
            {_PARTITION_PARAM: partition},
        )
