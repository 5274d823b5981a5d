"""Unit tests of the ingestor's pure rules: validation, type coercion and PII masking."""

from __future__ import annotations

import pandas as pd
import pytest

from aikube.datasets import DatasetSpec
from ingestor.domain import REASON_COLUMN, mask_sensitive, mask_token, required_columns, validate_rows


@pytest.fixture
def spec() -> DatasetSpec:
    """A small contract with every column type, a dropped leak column and two sensitive columns."""
    return DatasetSpec(
        name="rides",
        timestamp="ts",
        target="riders",
        task="regression",
        drop=["leak"],
        sensitive={"email": "mask", "phone": "drop"},
        columns={
            "ts": "timestamp",
            "temp": "float",
            "hr": "int",
            "weather": "string",
            "holiday": "bool",
            "email": "string",
            "phone": "string",
            "leak": "int",
            "riders": "float",
        },
    )


def good_rows(n: int = 3) -> pd.DataFrame:
    """`n` valid rows as a CSV reader would produce them (no phone/leak columns: they are optional)."""
    return pd.DataFrame(
        {
            "ts": [f"2011-01-01 {h:02d}:00:00" for h in range(n)],
            "temp": [0.1 * (h + 1) for h in range(n)],
            "hr": list(range(n)),
            "weather": ["clear"] * n,
            "holiday": ["false"] * n,
            "email": [f"user{h}@example.com" for h in range(n)],
            "riders": [10.0 + h for h in range(n)],
        }
    )


def test_valid_rows_are_all_accepted(spec: DatasetSpec) -> None:
    """A clean batch is accepted whole and nothing is rejected."""
    result = validate_rows(good_rows(), spec)
    assert (len(result.accepted), len(result.rejected), result.reasons) == (3, 0, {})


def test_accepted_rows_carry_the_declared_types(spec: DatasetSpec) -> None:
    """Text values are coerced to the declared int/float/string/bool/timestamp types."""
    accepted = validate_rows(good_rows(), spec).accepted
    assert accepted["ts"].iloc[1] == pd.Timestamp("2011-01-01 01:00:00")
    assert str(accepted["hr"].dtype) == "Int64"
    assert accepted["temp"].dtype == "float64"
    assert accepted["holiday"].tolist() == [False, False, False]
    assert accepted["weather"].tolist() == ["clear"] * 3


def test_missing_required_column_rejects_every_row(spec: DatasetSpec) -> None:
    """A feature column absent from the whole batch rejects all rows with 'missing column <name>', no crash."""
    result = validate_rows(good_rows().drop(columns="temp"), spec)
    assert len(result.accepted) == 0
    assert result.rejected[REASON_COLUMN].tolist() == ["missing column temp"] * 3
    assert result.reasons == {"missing column temp": 3}


def test_batch_without_target_column_is_an_unlabeled_batch(spec: DatasetSpec) -> None:
    """The target may be absent from a whole batch: rows are accepted without it."""
    result = validate_rows(good_rows().drop(columns="riders"), spec)
    assert len(result.accepted) == 3 and "riders" not in result.accepted.columns


def test_required_columns_are_timestamp_and_features(spec: DatasetSpec) -> None:
    """Dropped, sensitive and target columns are not required in every batch."""
    assert required_columns(spec) == ["ts", "temp", "hr", "weather", "holiday"]


def test_unparsable_float_is_rejected_with_its_value(spec: DatasetSpec) -> None:
    """A non-numeric float cell rejects its row and the reason quotes the value."""
    rows = good_rows().astype({"temp": object})
    rows.loc[1, "temp"] = "abc"
    result = validate_rows(rows, spec)
    assert result.rejected[REASON_COLUMN].tolist() == ["temp: not a float: 'abc'"]
    assert result.reasons == {"temp: not a float": 1}
    assert len(result.accepted) == 2


def test_fractional_int_is_rejected(spec: DatasetSpec) -> None:
    """1.5 is not an int: the row is rejected rather than silently truncated."""
    rows = good_rows().astype({"hr": float})
    rows.loc[0, "hr"] = 1.5
    assert validate_rows(rows, spec).rejected[REASON_COLUMN].tolist() == ["hr: not an int: '1.5'"]


def test_unparsable_bool_is_rejected(spec: DatasetSpec) -> None:
    """Only true/false-like values are bools."""
    rows = good_rows()
    rows.loc[2, "holiday"] = "maybe"
    assert validate_rows(rows, spec).reasons == {"holiday: not a bool": 1}


def test_bad_timestamp_is_rejected(spec: DatasetSpec) -> None:
    """A timestamp that is not ISO 8601 is rejected with its value quoted."""
    rows = good_rows()
    rows.loc[0, "ts"] = "yesterday"
    assert validate_rows(rows, spec).rejected[REASON_COLUMN].tolist() == ["ts: not a timestamp: 'yesterday'"]


def test_missing_timestamp_value_is_rejected(spec: DatasetSpec) -> None:
    """A row without a timestamp cannot be placed in time: rejected as a missing value."""
    rows = good_rows()
    rows.loc[0, "ts"] = None
    assert validate_rows(rows, spec).reasons == {"ts: missing value": 1}


def test_missing_target_value_is_rejected(spec: DatasetSpec) -> None:
    """In a labeled batch a row without its target is rejected."""
    rows = good_rows()
    rows.loc[1, "riders"] = None
    assert validate_rows(rows, spec).rejected[REASON_COLUMN].tolist() == ["riders: missing value"]


def test_missing_feature_value_is_kept(spec: DatasetSpec) -> None:
    """Missing feature values (including blank text) are allowed: the model handles them."""
    rows = good_rows().astype({"temp": object})
    rows.loc[0, "temp"] = None
    rows.loc[1, "temp"] = "  "
    accepted = validate_rows(rows, spec).accepted
    assert len(accepted) == 3 and accepted["temp"].isna().tolist() == [True, True, False]


def test_several_problems_in_one_row_are_all_named(spec: DatasetSpec) -> None:
    """Each problem of a row is listed in its reason and counted under its own kind."""
    rows = good_rows().astype({"temp": object})
    rows.loc[0, "temp"] = "x"
    rows.loc[0, "riders"] = None
    result = validate_rows(rows, spec)
    assert result.rejected[REASON_COLUMN].tolist() == ["temp: not a float: 'x'; riders: missing value"]
    assert result.reasons == {"temp: not a float": 1, "riders: missing value": 1}


def test_offset_timestamps_become_naive_utc(spec: DatasetSpec) -> None:
    """Timestamps with an offset are converted to UTC and stored without a zone, like naive ones."""
    rows = good_rows()
    rows.loc[0, "ts"] = "2011-01-01T02:00:00+02:00"
    accepted = validate_rows(rows, spec).accepted
    assert accepted["ts"].iloc[0] == pd.Timestamp("2011-01-01 00:00:00")
    assert accepted["ts"].dt.tz is None


def test_extra_columns_are_dropped_and_reported(spec: DatasetSpec) -> None:
    """Undeclared columns do not land and are reported; their rows are not rejected."""
    result = validate_rows(good_rows().assign(surprise=1), spec)
    assert result.extra_columns == ["surprise"]
    assert "surprise" not in result.accepted.columns and len(result.rejected) == 0


def test_sensitive_values_are_not_quoted_in_reasons() -> None:
    """A bad value in a sensitive column is named by column only, so the rejects file leaks no PII."""
    spec = DatasetSpec(
        name="users",
        timestamp="ts",
        target="y",
        task="regression",
        sensitive={"user_id": "mask"},
        columns={"ts": "timestamp", "user_id": "int", "y": "float"},
    )
    rows = pd.DataFrame({"ts": ["2011-01-01"], "user_id": ["alice@example.com"], "y": [1.0]})
    assert validate_rows(rows, spec).rejected[REASON_COLUMN].tolist() == ["user_id: not an int"]


def test_rejected_rows_keep_raw_values_as_text(spec: DatasetSpec) -> None:
    """Rejected rows hold their raw values as text so mixed-type cells can still be written out."""
    rows = good_rows().astype({"temp": object})
    rows.loc[0, "temp"] = "abc"
    rejected = validate_rows(rows, spec).rejected
    assert rejected.loc[0, "hr"] == "0" and rejected.loc[0, "temp"] == "abc"


def test_mask_replaces_values_with_stable_tokens(spec: DatasetSpec) -> None:
    """Masking is deterministic: equal values get equal tokens, different values different ones."""
    rows = good_rows().assign(email=["a@x.org", "b@x.org", "a@x.org"])
    masked, _, _ = mask_sensitive(rows, spec, salt="pepper")
    tokens = masked["email"].tolist()
    assert tokens[0] == tokens[2] != tokens[1]
    assert "a@x.org" not in tokens


def test_mask_token_depends_on_the_salt() -> None:
    """The same value under two salts gives two tokens (no cross-deployment lookup tables)."""
    assert mask_token("a@x.org", "one") != mask_token("a@x.org", "two")


def test_mask_token_is_the_same_for_accepted_and_raw_text() -> None:
    """An int and its text form get the same token, so accepted and rejected rows stay joinable."""
    assert mask_token(123, "s") == mask_token("123", "s")


def test_mask_and_drop_are_reported(spec: DatasetSpec) -> None:
    """Masked and dropped columns are listed; dropped ones disappear from the frame."""
    rows = good_rows().assign(phone="555-0100")
    masked, masked_columns, dropped_columns = mask_sensitive(rows, spec, salt="pepper")
    assert (masked_columns, dropped_columns) == (["email"], ["phone"])
    assert "phone" not in masked.columns


def test_mask_keeps_missing_values_missing(spec: DatasetSpec) -> None:
    """A missing sensitive value stays missing instead of becoming the token of 'None'."""
    rows = good_rows()
    rows.loc[0, "email"] = None
    masked, _, _ = mask_sensitive(rows, spec, salt="pepper")
    assert pd.isna(masked.loc[0, "email"])


def test_mask_does_not_modify_its_input(spec: DatasetSpec) -> None:
    """mask_sensitive returns a new frame and leaves the caller's frame intact."""
    rows = good_rows()
    mask_sensitive(rows, spec, salt="pepper")
    assert rows["email"].iloc[0] == "user0@example.com"


def test_empty_salt_is_refused(spec: DatasetSpec) -> None:
    """Without a salt the tokens could be reversed by hashing guesses: refuse clearly."""
    with pytest.raises(ValueError, match="salt"):
        mask_sensitive(good_rows(), spec, salt="")
