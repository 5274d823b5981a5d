"""Data-source SDK: building dataset-arrived events, and their errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from aikube.catalog import Catalog, SchemaViolation
from aikube.sdk import BatchError, DataSource, arrived_event
from aikube.telemetry import setup_tracing, shutdown_tracing


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


class RecordingBus:
    def __init__(self) -> None:
        self.published: list[Any] = []

    def publish_all(self, events: list[Any]) -> list[str]:
        self.published.extend(events)
        return ["1"]


def test_publish_without_tracing_still_starts_a_trace(catalog: Catalog) -> None:
    """A data source that set up no tracing gets a real trace id, and the event carries it to the services."""
    shutdown_tracing()
    bus = RecordingBus()
    published = DataSource("p", catalog=catalog, bus=bus).publish_batch("d", "b1", uri="file:///x.csv")  # type: ignore[arg-type]
    assert published.trace_id != "0" * 32
    (event,) = bus.published
    assert event.get_extension("traceparent").split("-")[1] == published.trace_id


def test_publish_with_tracing_uses_the_configured_tracer(catalog: Catalog, tmp_path: Path) -> None:
    """Where tracing is set up the publish span is recorded in its trace."""
    setup_tracing("source", exporter="file", trace_dir=tmp_path)
    try:
        published = DataSource("p", catalog=catalog, bus=RecordingBus()).publish_batch(  # type: ignore[arg-type]
            "d", "b1", uri="file:///x.csv"
        )
    finally:
        shutdown_tracing()
    (span_file,) = tmp_path.glob("source-*.jsonl")
    assert json.loads(span_file.read_text())["trace_id"] == published.trace_id
