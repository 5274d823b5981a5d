"""Data-source SDK: building dataset-arrived events, and their errors."""

from __future__ import annotations

import pandas as pd
import pytest

from aikube.catalog import Catalog, SchemaViolation
from aikube.sdk import BatchError, arrived_event


def test_inline_frame_becomes_json_records(catalog: Catalog) -> None:
    """A DataFrame batch rides inline with ISO timestamps and nulls for missing values."""
    frame = pd.DataFrame({"ts": pd.to_datetime(["2011-01-01 00:00"]), "temp": [float("nan")]})
    event = arrived_event(catalog, "bikeshare", "b-1", records=frame)
    data = event.get_data()
    assert isinstance(data, dict)
    assert data["records"] == [{"ts": "2011-01-01T00:00:00.000", "temp": None}]


def test_reference_batch_carries_uri_and_generation(catalog: Catalog) -> None:
    """A large batch travels by reference (claim check) with its object generation."""
    event = arrived_event(catalog, "bikeshare", "b-1", uri="gs://landing/b-1.parquet", generation="17")
    assert event.get_data() == {
        "dataset": "bikeshare",
        "batch_id": "b-1",
        "uri": "gs://landing/b-1.parquet",
        "generation": "17",
    }


def test_same_batch_gets_the_same_event_id(catalog: Catalog) -> None:
    """Announcing a batch twice yields one event id, so the ingestor applies it once."""
    first = arrived_event(catalog, "bikeshare", "b-1", uri="file:///x.csv")
    again = arrived_event(catalog, "bikeshare", "b-1", uri="file:///x.csv")
    other = arrived_event(catalog, "bikeshare", "b-2", uri="file:///x.csv")
    assert first.get_id() == again.get_id() != other.get_id()


def test_records_and_uri_together_are_refused(catalog: Catalog) -> None:
    """Exactly one of records and uri: the error says so."""
    with pytest.raises(BatchError, match="either records"):
        arrived_event(catalog, "bikeshare", "b-1", records=[{"a": 1}], uri="gs://x/y.csv")


def test_bad_batch_id_is_a_schema_violation(catalog: Catalog) -> None:
    """A batch id with spaces violates the contract and names the field."""
    with pytest.raises(SchemaViolation, match="batch_id"):
        arrived_event(catalog, "bikeshare", "batch one", uri="gs://x/y.csv")


def test_unserialisable_records_are_refused(catalog: Catalog) -> None:
    """Records that JSON cannot encode get a clear error."""
    with pytest.raises(BatchError, match="JSON-serialisable"):
        arrived_event(catalog, "bikeshare", "b-1", records=[{"a": object()}])
