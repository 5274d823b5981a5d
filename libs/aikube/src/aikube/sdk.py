"""Publishing from data sources: announce a new batch of a registered dataset.

Example:
    >>> source = DataSource(project_id="my-project")                      # doctest: +SKIP
    >>> source.publish_batch("bikeshare", "2011-03-01", records=[{...}])  # small batch, inline
    >>> source.publish_batch("bikeshare", "2011-03", uri="gs://landing/bikeshare/2011-03.parquet", generation="17")
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd
from cloudevents.core.v1.event import CloudEvent
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider

from aikube.bus import PubSubBus
from aikube.catalog import SDK_PRODUCER, Catalog
from aikube.envelope import derived_id, make_event, source_of

ARRIVED = "dataset.v1.arrived"
MAX_INLINE_BYTES = 8 * 1024 * 1024  # Pub/Sub takes 10 MB per message; larger batches travel by reference
tracer = trace.get_tracer("aikube.sdk")
_IDS_ONLY = TracerProvider(resource=Resource.create({SERVICE_NAME: SDK_PRODUCER})).get_tracer("aikube.sdk")


class BatchError(ValueError):
    """The batch cannot be announced as given; the message says what to change."""


@dataclass(frozen=True)
class Published:
    event_id: str
    trace_id: str


def arrived_event(
    catalog: Catalog,
    dataset: str,
    batch_id: str,
    *,
    records: list[dict[str, Any]] | pd.DataFrame | None = None,
    uri: str | None = None,
    generation: str | None = None,
    file_format: str | None = None,
    window: tuple[str, str] | None = None,
) -> CloudEvent:
    """A valid dataset-arrived event: inline records for small batches, or a reference for large ones.

    The event id derives from dataset and batch id, so announcing the same batch twice has one effect.

    Raises:
        BatchError: neither or both of records/uri, records not JSON-serialisable, or an inline batch too large.
        SchemaViolation: the data violates DatasetArrivedData (e.g. a bad batch id).
    """
    if (records is None) == (uri is None):
        raise BatchError("give either records (inline) or uri (a gs://, file:// or local path), not both or neither")
    data: dict[str, Any] = {"dataset": dataset, "batch_id": batch_id}
    if records is not None:
        data["records"] = records_of(records)
        if len(json.dumps(data["records"])) > MAX_INLINE_BYTES:
            raise BatchError(
                f"inline batch is over {MAX_INLINE_BYTES // 2**20} MiB: write it to a file and send its uri"
            )
    else:
        data["uri"] = uri
        if generation:
            data["generation"] = generation
        if file_format:
            data["format"] = file_format
    if window:
        data["window"] = {"start": window[0], "end": window[1]}
    return make_event(
        catalog[ARRIVED],
        data,
        source=source_of(SDK_PRODUCER),
        subject=f"dataset/{dataset}",
        event_id=derived_id(SDK_PRODUCER, dataset, batch_id),
    )


def records_of(records: list[dict[str, Any]] | pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: timestamps as ISO strings, missing values as null."""
    if isinstance(records, pd.DataFrame):
        # pandas writes timestamps as ISO strings and NaN as null, which JSON and the ingestor both read
        parsed: list[dict[str, Any]] = json.loads(records.to_json(orient="records", date_format="iso"))
        return parsed
    try:
        return json.loads(json.dumps(records))  # type: ignore[no-any-return]
    except TypeError as exc:
        raise BatchError(f"records must be JSON-serialisable: {exc}") from None


class DataSource:
    """A data source's handle on the bus."""

    def __init__(self, project_id: str, *, catalog: Catalog | None = None, bus: PubSubBus | None = None) -> None:
        """Connect to the project's Pub/Sub (the emulator when PUBSUB_EMULATOR_HOST is set).

        Raises:
            BusError: no emulator host and no Google Cloud credentials.
        """
        self.catalog = catalog or Catalog.load()
        self.bus = bus or PubSubBus(project_id, self.catalog)

    def publish_batch(self, dataset: str, batch_id: str, **batch: Any) -> Published:
        """Announce a batch (see `arrived_event` for the arguments) and wait until Pub/Sub accepted it.

        The publish span starts the batch's trace: every event the loop derives from it joins that trace. It is
        recorded only if this process set up tracing (`aikube.telemetry.setup_tracing`), but its id is real either way.

        Raises:
            BatchError, SchemaViolation: see `arrived_event`.
            BusError: Pub/Sub did not accept the event within the bus's publish timeout (unreachable, topic not
                provisioned, no permission); the message says which.
        """
        with trace.use_span(_publish_span(dataset), end_on_exit=True) as span:
            event = arrived_event(self.catalog, dataset, batch_id, **batch)
            span.set_attribute("cloudevents.event_id", event.get_id())
            span.set_attribute("cloudevents.event_type", event.get_type())
            span.set_attribute("cloudevents.event_subject", event.get_subject() or "")
            self.bus.publish_all([event])
            return Published(event.get_id(), format(span.get_span_context().trace_id, "032x"))

    def close(self) -> None:
        self.bus.close()


def _publish_span(dataset: str) -> trace.Span:
    """The span of a publish: the configured tracer's, or, where tracing is not set up, one exported nowhere.

    Without the fallback the span would be a no-op with trace id 0: the event would carry no traceparent, so each
    service would start a trace of its own and the id given back would name none of them.
    """
    name, kind, attributes = f"{ARRIVED} publish", trace.SpanKind.PRODUCER, {"aikube.dataset": dataset}
    span = tracer.start_span(name, kind=kind, attributes=attributes)
    if span.get_span_context().is_valid:
        return span
    return _IDS_ONLY.start_span(name, kind=kind, attributes=attributes)
