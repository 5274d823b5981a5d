"""Feature SQL: calendar features, general column handling, dialects.

That the warehouse path equals the serving path, in every warehouse: tests/contract/test_warehouse_protocol.py.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest
from synthetic_dataset import TIMES, synthetic_frame, synthetic_spec

from aikube.features import CALENDAR_FEATURES, compute_features, feature_sql, model_columns


def test_calendar_features_match_python_calendar() -> None:
    """hour, day_of_week (0 = Sunday) and month agree with Python's datetime for known timestamps."""
    features = compute_features(synthetic_spec(), synthetic_frame())
    parsed = [datetime.fromisoformat(text) for text in TIMES]
    assert features["hour"].tolist() == [moment.hour for moment in parsed]
    assert features["day_of_week"].tolist() == [moment.isoweekday() % 7 for moment in parsed]
    assert features["month"].tolist() == [moment.month for moment in parsed]


def test_sunday_is_day_zero() -> None:
    """2011-01-02 was a Sunday: day_of_week 0; the Saturday before is 6."""
    features = compute_features(synthetic_spec(), synthetic_frame())
    assert features["day_of_week"].tolist()[:2] == [6, 0]


def test_output_columns_are_timestamp_model_columns_and_target() -> None:
    """The output holds the timestamp, the model columns and the target, and nothing dropped."""
    spec = synthetic_spec()
    features = compute_features(spec, synthetic_frame())
    assert list(features.columns) == [spec.timestamp, *model_columns(spec), spec.target]


def test_model_columns_are_calendar_then_feature_columns() -> None:
    """model_columns lists the calendar features, then the spec's feature columns."""
    spec = synthetic_spec()
    assert model_columns(spec) == [*CALENDAR_FEATURES, "amount", "count", "city", "member"]


def test_feature_values_pass_through() -> None:
    """String, bool and numeric feature columns keep their values."""
    frame = synthetic_frame()
    features = compute_features(synthetic_spec(), frame)
    for name in ["amount", "count", "city", "member", "label"]:
        assert features[name].tolist() == frame[name].tolist()


def test_text_and_datetime_timestamps_give_the_same_features() -> None:
    """A text timestamp is read as a timestamp: the result equals that of a datetime column."""
    spec = synthetic_spec()
    text = compute_features(spec, synthetic_frame())
    typed = compute_features(spec, synthetic_frame().assign(when=pd.to_datetime(TIMES)))
    pd.testing.assert_frame_equal(text, typed)


def test_target_is_omitted_when_absent() -> None:
    """Unlabelled rows (serving) give features without the target."""
    spec = synthetic_spec()
    features = compute_features(spec, synthetic_frame().drop(columns=["label"]))
    assert spec.target not in features.columns


def test_row_order_is_kept() -> None:
    """Output row i belongs to input row i, whatever the timestamps' order."""
    frame = synthetic_frame().iloc[[3, 0, 2, 1]].reset_index(drop=True)
    features = compute_features(synthetic_spec(), frame)
    assert features["amount"].tolist() == frame["amount"].tolist()


def test_features_of_features_are_the_same_features() -> None:
    """Feature rows read back from the warehouse (calendar columns included) give the same features again."""
    spec = synthetic_spec()
    once = compute_features(spec, synthetic_frame())
    pd.testing.assert_frame_equal(compute_features(spec, once.assign(_partition="s1")), once)


def test_missing_column_is_named() -> None:
    """A missing feature column is a ValueError naming it."""
    with pytest.raises(ValueError, match="amount"):
        compute_features(synthetic_spec(), synthetic_frame().drop(columns=["amount"]))


def test_value_of_wrong_type_is_a_value_error() -> None:
    """A value that cannot be read as its declared type is a ValueError."""
    with pytest.raises(ValueError, match="cannot compute features"):
        compute_features(synthetic_spec(), synthetic_frame().assign(amount=["x", "1", "2", "3"]))


def test_sensitive_columns_are_never_features() -> None:
    """A masked column holds tokens whatever its declared type: it is neither selected nor cast."""
    frame = synthetic_frame().assign(phone=["3fc38197e0017350"] * len(synthetic_frame()))  # tokens in an int column
    features = compute_features(synthetic_spec(), frame)
    assert "phone" not in features.columns and "email" not in features.columns


def test_calendar_name_clash_is_rejected() -> None:
    """A feature column named like a calendar feature is refused by the spec, naming it."""
    with pytest.raises(ValueError, match="month.*clash with the calendar features"):
        synthetic_spec(columns={"when": "timestamp", "month": "int", "label": "string"}, drop=[], sensitive={})


def test_where_clause_is_applied() -> None:
    """The optional condition ends up as the WHERE clause."""
    sql = feature_sql(synthetic_spec(), "raw", where="_partition = $p")
    assert sql.endswith('FROM "raw" WHERE _partition = $p')


def test_bigquery_dialect_quotes_types_and_calendar() -> None:
    """The BigQuery dialect uses backticks, INT64/FLOAT64/STRING/BOOL and DAYOFWEEK - 1 (so 0 = Sunday)."""
    sql = feature_sql(synthetic_spec(), "raw", where="_partition = $p", dialect="bigquery")
    timestamp = "CAST(`when` AS TIMESTAMP)"
    assert sql.startswith(f"SELECT {timestamp} AS `when`, EXTRACT(HOUR FROM {timestamp}) AS `hour`, ")
    assert f"(EXTRACT(DAYOFWEEK FROM {timestamp}) - 1) AS `day_of_week`" in sql
    assert f"EXTRACT(MONTH FROM {timestamp}) AS `month`" in sql
    for column, sql_type in [("amount", "FLOAT64"), ("count", "INT64"), ("city", "STRING"), ("member", "BOOL")]:
        assert f"CAST(`{column}` AS {sql_type}) AS `{column}`" in sql
    assert sql.endswith("FROM `raw` WHERE _partition = $p")
    assert '"' not in sql


def test_duckdb_is_the_default_dialect() -> None:
    """Without a dialect, feature_sql is DuckDB's (the serving path runs it in-process)."""
    spec = synthetic_spec()
    assert feature_sql(spec, "raw") == feature_sql(spec, "raw", dialect="duckdb")
    assert 'EXTRACT(dow FROM CAST("when" AS TIMESTAMP)) AS "day_of_week"' in feature_sql(spec, "raw")


def test_unknown_dialect_is_rejected() -> None:
    """A dialect other than duckdb and bigquery is a ValueError naming it."""
    with pytest.raises(ValueError, match="postgres"):
        feature_sql(synthetic_spec(), "raw", dialect="postgres")
