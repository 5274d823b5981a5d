"""The Cloud Storage and BigQuery backends' pure parts: URIs, parameters, SQL rewriting (no stand-in needed).

Their behaviour against the stand-ins is in tests/contract/test_object_store_protocol.py and
test_warehouse_protocol.py (what they share with the local backends) and tests/integration/test_gcs_store.py and
test_bigquery_warehouse.py (what is theirs alone).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pytest

from aikube.adapters import open_store, open_warehouse
from aikube.bigquery import _query_parameter, to_bigquery_sql
from aikube.gcs import parse_gs_uri
from aikube.settings import ConfigError


def test_dollar_parameters_become_at_parameters_outside_strings() -> None:
    """$name → @name, but not inside strings, quoted names or comments."""
    sql = "SELECT '$a', \"$b\", `$c`, $d -- $e\nFROM t WHERE x = $f /* $g */ AND y = 'it\\'s $h'"
    expected = "SELECT '$a', \"$b\", `$c`, @d -- $e\nFROM t WHERE x = @f /* $g */ AND y = 'it\\'s $h'"
    assert to_bigquery_sql(sql) == expected


@pytest.mark.parametrize(
    ("value", "bq_type"),
    [
        (True, "BOOL"),
        (np.bool_(False), "BOOL"),
        (3, "INT64"),
        (np.int32(3), "INT64"),
        (2.5, "FLOAT64"),
        (np.float64(2.5), "FLOAT64"),
        (Decimal("1.10"), "NUMERIC"),
        ("b1", "STRING"),
        (b"\x00", "BYTES"),
        (dt.datetime(2011, 1, 1, 10), "TIMESTAMP"),
        (dt.date(2011, 1, 1), "DATE"),
        (dt.time(10, 30), "TIME"),
        (None, "STRING"),
    ],
)
def test_query_parameters_are_typed_from_python_values(value: object, bq_type: str) -> None:
    """Each Python value gets the BigQuery type it means; bool is not taken for an int."""
    parameter = _query_parameter("p", value)
    assert parameter.to_api_repr()["parameterType"]["type"] == bq_type


def test_lists_become_arrays_of_one_type() -> None:
    """A list is an ARRAY of its items' type; mixed types are refused."""
    parameter = _query_parameter("ps", ["b1", "b2"]).to_api_repr()
    assert parameter["parameterType"] == {"type": "ARRAY", "arrayType": {"type": "STRING"}}
    with pytest.raises(TypeError, match="mixed types"):
        _query_parameter("ps", ["b1", 2])


def test_unsupported_parameter_type_is_named() -> None:
    """A value with no BigQuery type is a TypeError naming the parameter."""
    with pytest.raises(TypeError, match="'p'"):
        _query_parameter("p", object())


def test_parse_gs_uri() -> None:
    """gs:// URIs split into bucket, name and optional generation; names are taken as written."""
    assert parse_gs_uri("gs://b/a/b.json") == ("b", "a/b.json", None)
    assert parse_gs_uri("gs://b/a b%20#42") == ("b", "a b%20", 42)
    with pytest.raises(ValueError, match="gs://bucket/object"):
        parse_gs_uri("gs://bucket-only")


@pytest.mark.parametrize(
    "uri", ["bigquery://project", "bigquery://project/", "bigquery:///dataset", "bigquery://p/d/x"]
)
def test_bad_bigquery_uris_are_config_errors(uri: str) -> None:
    """A BigQuery URI needs a project and one dataset."""
    with pytest.raises(ConfigError, match="bigquery://project/dataset"):
        open_warehouse(uri)


def test_unknown_schemes_name_the_supported_ones() -> None:
    """Unsupported URIs list what is supported."""
    with pytest.raises(ConfigError, match="gs://bucket/prefix"):
        open_store("s3://bucket/x")
    with pytest.raises(ConfigError, match="bigquery://project/dataset"):
        open_warehouse("postgres://db")
