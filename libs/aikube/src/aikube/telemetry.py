"""Traces and logs of AIkube services: OpenTelemetry tracing, trace context in events, JSON log lines.

Tracing is switched by configuration, not code: `none` (spans still get ids, so the trace context still travels
in events), `file` (JSON lines per process, read back by `aikube trace`), or `otlp` (a collector, e.g. on GKE).

Example:
    >>> from pathlib import Path
    >>> from opentelemetry import trace
    >>> provider = setup_tracing("ingestor", exporter="file", trace_dir=Path(tmp))   # doctest: +SKIP
    >>> with trace.get_tracer(__name__).start_as_current_span("dataset.v1.arrived process"):
    ...     extensions = inject_traceparent()       # {"traceparent": "00-<trace>-<span>-03"} for the next event
    >>> shutdown_tracing()
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final, Literal

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util import types as otel_types

__all__ = [
    "EVENT_ID",
    "EVENT_SOURCE",
    "EVENT_SUBJECT",
    "EVENT_TYPE",
    "JsonLinesSpanExporter",
    "SpanRecord",
    "context_from",
    "inject_traceparent",
    "setup_logging",
    "setup_tracing",
    "shutdown_tracing",
]

# Span attributes of the event a span handles (OpenTelemetry semantic conventions, "CloudEvents").
EVENT_ID: Final = "cloudevents.event_id"
EVENT_TYPE: Final = "cloudevents.event_type"
EVENT_SUBJECT: Final = "cloudevents.event_subject"
EVENT_SOURCE: Final = "cloudevents.event_source"

Exporter = Literal["none", "file", "otlp"]

_PROPAGATOR: Final = TraceContextTextMapPropagator()
_OTLP_TRACES_PATH: Final = "/v1/traces"

# Process state: the provider `setup_tracing` configured last, and the handler `setup_logging` installed.
_active: TracerProvider | None = None
_switch = threading.Lock()
_log_handler: logging.Handler | None = None


@dataclass(frozen=True)
class SpanRecord:
    """One finished span as a line of a span file; the file exporter writes it, `aikube.tracefile` reads it."""

    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str | None  # a remote parent (the producer of an event) is in another service's file
    name: str
    service: str
    kind: str  # INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER
    start: datetime
    end: datetime
    duration_ms: float
    status: str  # UNSET, OK, ERROR
    status_message: str | None
    attributes: dict[str, Any]

    @classmethod
    def of(cls, span: ReadableSpan) -> SpanRecord:
        """The record of a finished SDK span."""
        start_ns = span.start_time or 0
        end_ns = span.end_time or start_ns
        return cls(
            trace_id=trace.format_trace_id(span.context.trace_id),
            span_id=trace.format_span_id(span.context.span_id),
            parent_span_id=trace.format_span_id(span.parent.span_id) if span.parent else None,
            name=span.name,
            service=str(span.resource.attributes.get(SERVICE_NAME, "unknown_service")),
            kind=span.kind.name,
            start=_from_ns(start_ns),
            end=_from_ns(end_ns),
            duration_ms=round((end_ns - start_ns) / 1e6, 3),
            status=span.status.status_code.name,
            status_message=span.status.description,
            attributes=dict(span.attributes or {}),
        )

    def to_json(self) -> str:
        """One JSON line (without the newline)."""
        fields = asdict(self)
        fields["start"] = self.start.isoformat()
        fields["end"] = self.end.isoformat()
        return json.dumps(fields, default=str)

    @classmethod
    def from_json(cls, line: str) -> SpanRecord:
        """Parse a line written by `to_json`.

        Raises:
            ValueError: the line is not a complete span record (e.g. cut short by a killed process).
        """
        try:
            fields = json.loads(line)
            fields["start"] = datetime.fromisoformat(fields["start"])
            fields["end"] = datetime.fromisoformat(fields["end"])
            return cls(**fields)
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(f"not a span record: {exc}") from exc


class JsonLinesSpanExporter(SpanExporter):
    """Appends finished spans as JSON lines to one file (one file per process, so no writer races)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()  # spans end on several threads; keep each line whole

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(SpanRecord.of(span).to_json() + "\n" for span in spans)
        try:
            # Opened per export: nothing to leak, and a killed process leaves every exported line on disk.
            with self._lock, self.path.open("a", encoding="utf-8") as out:
                out.write(lines)
        except OSError:
            logging.getLogger(__name__).exception("cannot write spans to %s", self.path)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release: the file is opened per export."""


def setup_tracing(
    service: str,
    *,
    exporter: Exporter = "none",
    trace_dir: Path | None = None,
    otlp_endpoint: str | None = None,
) -> TracerProvider:
    """Configure tracing for this process; spans of every `trace.get_tracer(...)` go to the returned provider.

    Calling it again (tests, or several services in one process) replaces the previous configuration, which is
    flushed and shut down: the OpenTelemetry global provider can be set only once, so the global one forwards to
    the provider configured last.

    Args:
        service: the service id, recorded as the resource's `service.name`.
        exporter: `none` (ids and propagation only), `file` (JSON lines in trace_dir/<service>-<pid>.jsonl) or
            `otlp` (OTLP over HTTP).
        trace_dir: folder of the span files; required for `file`.
        otlp_endpoint: collector base URL such as `http://collector:4318` (`/v1/traces` is appended unless given);
            None lets the exporter read the standard OTEL_EXPORTER_OTLP_* variables.

    Raises:
        ValueError: `file` without trace_dir, or an unknown exporter.
    """
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    if exporter == "file":
        if trace_dir is None:
            raise ValueError("exporter 'file' needs trace_dir")
        # SimpleSpanProcessor writes each span as it ends. Batching amortises network round trips, which a local
        # append does not need; writing at once means `aikube trace` sees spans immediately and a killed process
        # (SIGKILL, a timed-out subprocess) loses nothing.
        path = Path(trace_dir) / f"{service}-{os.getpid()}.jsonl"
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    elif exporter == "otlp":
        # Imported only when selected: it pulls in protobuf and requests, which the other modes do not need.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = _otlp_traces_url(otlp_endpoint) if otlp_endpoint else None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    elif exporter != "none":
        raise ValueError(f"unknown trace exporter {exporter!r}: expected none, file or otlp")

    global _active
    with _switch:
        previous, _active = _active, provider
        if not isinstance(trace.get_tracer_provider(), _ActiveTracerProvider):
            trace.set_tracer_provider(_ActiveTracerProvider())
    if previous is not None:
        previous.shutdown()
    return provider


def shutdown_tracing() -> None:
    """Flush and stop the configured tracing; later spans are not recorded until the next `setup_tracing`."""
    global _active
    with _switch:
        provider, _active = _active, None
    if provider is not None:
        provider.shutdown()  # span processors export what they still hold before stopping


def inject_traceparent() -> dict[str, str]:
    """The current trace context as CloudEvents extensions: `traceparent`, plus `tracestate` when set.

    Returns an empty dict outside of any span.
    """
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def context_from(extensions: Mapping[str, Any]) -> otel_context.Context:
    """An OpenTelemetry context continuing the trace in an event's `traceparent`/`tracestate` extensions.

    Any trace-flags byte is accepted (the SDK emits `03`: sampled + random trace id), and upper-case hex is
    normalised. Without a usable traceparent the context has no parent, so the next span starts a new trace.
    """
    traceparent = extensions.get("traceparent")
    if not isinstance(traceparent, str):
        return otel_context.Context()
    # W3C prescribes lower-case hex and the stock propagator rejects anything else; tolerate sloppy producers.
    carrier = {"traceparent": traceparent.strip().lower()}
    tracestate = extensions.get("tracestate")
    if isinstance(tracestate, str):
        carrier["tracestate"] = tracestate
    return _PROPAGATOR.extract(carrier, context=otel_context.Context())


def setup_logging(service: str, level: str | int = "INFO") -> None:
    """Log to stdout: JSON lines for machines, or readable lines when stdout is a terminal.

    A JSON line holds `timestamp`, `severity`, `message`, `service`, `logger`, `trace_id`/`span_id` inside a span,
    `exception` when one is logged, and every key passed in `extra=`. Calling it again replaces the handler.
    """
    global _log_handler
    root = logging.getLogger()
    if _log_handler is not None:
        root.removeHandler(_log_handler)
    handler = logging.StreamHandler(sys.stdout)
    formatter = _ConsoleFormatter(service) if sys.stdout.isatty() else _JsonFormatter(service)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    _log_handler = handler


class _ActiveTracerProvider(trace.TracerProvider):
    """The process-global provider: hands out tracers that use whatever `setup_tracing` configured last."""

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: otel_types.Attributes = None,
    ) -> trace.Tracer:
        scope = (instrumenting_module_name, instrumenting_library_version, schema_url, attributes)
        return _ActiveTracer(scope)


class _ActiveTracer(trace.Tracer):
    """Forwards to a tracer of the active provider; modules keep tracers fetched at import time."""

    def __init__(self, scope: tuple[str, str | None, str | None, otel_types.Attributes]) -> None:
        self._scope = scope
        self._cached: tuple[TracerProvider, trace.Tracer] | None = None

    def _target(self) -> trace.Tracer:
        provider, cached = _active, self._cached
        if provider is None:
            return trace.NoOpTracer()
        if cached is None or cached[0] is not provider:
            cached = (provider, provider.get_tracer(*self._scope))
            self._cached = cached
        return cached[1]

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._target().start_span(*args, **kwargs)

    @contextmanager
    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Iterator[trace.Span]:
        with self._target().start_as_current_span(*args, **kwargs) as span:
            yield span


# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_FIELDS: Final = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _log_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Trace ids of the current span, then the record's `extra=` key-values."""
    fields: dict[str, Any] = {}
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        fields["trace_id"] = trace.format_trace_id(span_context.trace_id)
        fields["span_id"] = trace.format_span_id(span_context.span_id)
    fields.update((key, value) for key, value in vars(record).items() if key not in _RECORD_FIELDS)
    return fields


class _JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "severity": record.levelname,
            "message": record.getMessage(),
            "service": self.service,
            "logger": record.name,
        }
        for key, value in _log_fields(record).items():
            entry.setdefault(key, value)  # an extra never hides a standard field
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _ConsoleFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        pairs = " ".join(f"{key}={value}" for key, value in _log_fields(record).items())
        line = f"{moment} {record.levelname:<7} {self.service}  {record.getMessage()}"
        line = f"{line}  {pairs}" if pairs else line
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def _from_ns(nanoseconds: int) -> datetime:
    return datetime.fromtimestamp(nanoseconds / 1e9, timezone.utc)


def _otlp_traces_url(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    return base if base.endswith(_OTLP_TRACES_PATH) else base + _OTLP_TRACES_PATH
