"""Building CloudEvents from catalog entries, and the envelope facts a handler sees."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from aikube.catalog import EventSpec
from aikube.telemetry import inject_traceparent

# Namespace of the deterministic ids of emitted events (so a re-run of a handler re-emits the same ids).
EVENT_ID_NAMESPACE = uuid.UUID("6f1c2a8e-3d1b-4f57-9c0a-2b7e8d5f4a10")


def source_of(service: str) -> str:
    """The CloudEvents `source` of a service or producer."""
    return f"/aikube/{service}"


def make_event(
    spec: EventSpec, data: dict[str, Any], *, source: str, subject: str, event_id: str | None = None
) -> CloudEvent:
    """A validated CloudEvent of a catalog type, carrying the current trace context.

    Args:
        spec: the catalog entry (type, dataschema, schema).
        data: the payload; validated against the entry's JSON Schema.
        source: the producer, e.g. `/aikube/ingestor`.
        subject: the entity, e.g. `dataset/bikeshare`; also the ordering key of ordered types.
        event_id: a deterministic id when the producer has one (derived ids make re-emits recognisable).

    Raises:
        SchemaViolation: the data does not match the schema.
    """
    spec.validate(data)
    attributes: dict[str, Any] = {
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": spec.type,
        "specversion": "1.0",
        "subject": subject,
        "time": datetime.now(timezone.utc),
        "datacontenttype": "application/json",
        "dataschema": spec.dataschema,
        **inject_traceparent(),
    }
    return CloudEvent(attributes=attributes, data=data)


def derived_id(*parts: str) -> str:
    """A stable event id derived from what caused it."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, "\x1f".join(parts)))


@dataclass(frozen=True)
class EventContext:
    """Envelope facts of the event a handler is processing."""

    id: str
    source: str
    type: str
    subject: str
    time: datetime | None
    delivery_attempt: int
    trace_id: str  # hex, for lineage records ("" when the event carried no trace)

    @classmethod
    def of(cls, event: CloudEvent, delivery_attempt: int, trace_id: str) -> EventContext:
        return cls(
            id=event.get_id(),
            source=event.get_source(),
            type=event.get_type(),
            subject=event.get_subject() or "",
            time=event.get_time(),
            delivery_attempt=delivery_attempt,
            trace_id=trace_id,
        )


@dataclass(frozen=True)
class Emit:
    """An event a handler asks the runtime to publish: catalog key, data, and subject (default: the input's)."""

    key: str
    data: dict[str, Any]
    subject: str | None = None
