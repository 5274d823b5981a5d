"""Tracing setup, the span file, trace context in event extensions, and JSON log lines."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from aikube import telemetry
from aikube.telemetry import (
    EVENT_ID,
    SpanRecord,
    context_from,
    inject_traceparent,
    setup_logging,
    setup_tracing,
    shutdown_tracing,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")

tracer = trace.get_tracer("tests.telemetry")  # fetched before any setup, as modules do at import time


pytestmark = pytest.mark.usefixtures("restore_process_state")  # each test sets up logging and tracing


def read_span_file(trace_dir: Path, service: str) -> list[dict]:
    path = trace_dir / f"{service}-{os.getpid()}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- tracing setup and the span file ------------------------------------------------------------------------------


def test_file_exporter_writes_one_json_line_per_span_to_a_per_process_file(tmp_path: Path) -> None:
    """Each finished span is a line of <trace_dir>/<service>-<pid>.jsonl with the documented fields."""
    setup_tracing("ingestor", exporter="file", trace_dir=tmp_path)
    with tracer.start_as_current_span("dataset.v1.arrived process", kind=trace.SpanKind.CONSUMER) as span:
        span.set_attribute(EVENT_ID, "evt-1")
    [line] = read_span_file(tmp_path, "ingestor")
    assert set(line) == {
        "trace_id", "span_id", "parent_span_id", "name", "service", "kind",
        "start", "end", "duration_ms", "status", "status_message", "attributes",
    }  # fmt: skip
    assert (line["name"], line["service"], line["kind"]) == ("dataset.v1.arrived process", "ingestor", "CONSUMER")
    assert (line["parent_span_id"], line["attributes"]) == (None, {EVENT_ID: "evt-1"})


def test_span_times_are_iso_and_consistent_with_the_duration(tmp_path: Path) -> None:
    """start and end are ISO timestamps with an offset, and duration_ms is their difference."""
    setup_tracing("ingestor", exporter="file", trace_dir=tmp_path)
    with tracer.start_as_current_span("work"):
        pass
    [line] = read_span_file(tmp_path, "ingestor")
    start, end = datetime.fromisoformat(line["start"]), datetime.fromisoformat(line["end"])
    assert start.tzinfo is not None
    assert line["duration_ms"] == pytest.approx((end - start).total_seconds() * 1000, abs=0.01)


def test_span_file_records_error_status_and_message(tmp_path: Path) -> None:
    """A span that failed is written with status ERROR and the exception's message."""
    setup_tracing("trainer", exporter="file", trace_dir=tmp_path)
    with pytest.raises(RuntimeError), tracer.start_as_current_span("train"):
        raise RuntimeError("out of memory")
    [line] = read_span_file(tmp_path, "trainer")
    assert (line["status"], line["status_message"]) == ("ERROR", "RuntimeError: out of memory")


def test_span_file_is_written_when_the_span_ends_without_a_flush(tmp_path: Path) -> None:
    """The file exporter writes at span end, so a killed process loses nothing already finished."""
    setup_tracing("deployer", exporter="file", trace_dir=tmp_path)
    with tracer.start_as_current_span("rollout"):
        pass
    assert len(read_span_file(tmp_path, "deployer")) == 1  # read before shutdown_tracing


def test_span_record_round_trips_through_its_json_line(tmp_path: Path) -> None:
    """from_json(to_json(record)) gives back an equal record."""
    setup_tracing("ingestor", exporter="file", trace_dir=tmp_path)
    with tracer.start_as_current_span("work", attributes={"rows": 3, "ok": True}):
        pass
    line = (tmp_path / f"ingestor-{os.getpid()}.jsonl").read_text().strip()
    record = SpanRecord.from_json(line)
    assert SpanRecord.from_json(record.to_json()) == record


def test_span_record_refuses_a_truncated_line() -> None:
    """A line cut short by a killed process is a ValueError, not a crash of another kind."""
    with pytest.raises(ValueError, match="not a span record"):
        SpanRecord.from_json('{"trace_id": "4bf9", "span_id": ')


def test_file_exporter_needs_a_trace_dir() -> None:
    """exporter 'file' without trace_dir is a configuration error."""
    with pytest.raises(ValueError, match="trace_dir"):
        setup_tracing("ingestor", exporter="file", trace_dir=None)


def test_unknown_exporter_is_refused() -> None:
    """An unknown exporter name is a configuration error naming it."""
    with pytest.raises(ValueError, match="'jaeger'"):
        setup_tracing("ingestor", exporter="jaeger")  # type: ignore[arg-type]


def test_setting_up_again_reroutes_tracers_fetched_earlier(tmp_path: Path) -> None:
    """A second setup_tracing sends spans of already-fetched tracers to the new service's file."""
    setup_tracing("first", exporter="file", trace_dir=tmp_path)
    with tracer.start_as_current_span("one"):
        pass
    setup_tracing("second", exporter="file", trace_dir=tmp_path)
    with tracer.start_as_current_span("two"):
        pass
    assert [line["name"] for line in read_span_file(tmp_path, "first")] == ["one"]
    assert [line["name"] for line in read_span_file(tmp_path, "second")] == ["two"]


def test_no_spans_are_recorded_after_shutdown(tmp_path: Path) -> None:
    """After shutdown_tracing, spans go nowhere until tracing is set up again."""
    setup_tracing("ingestor", exporter="file", trace_dir=tmp_path)
    shutdown_tracing()
    with tracer.start_as_current_span("late"):
        pass
    assert not (tmp_path / f"ingestor-{os.getpid()}.jsonl").exists()


def test_otlp_exporter_posts_spans_with_the_service_name(tmp_path: Path) -> None:
    """exporter 'otlp' sends the spans, under service.name, to <endpoint>/v1/traces."""
    received: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (stdlib name)
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        setup_tracing("drift-watcher", exporter="otlp", otlp_endpoint=f"http://127.0.0.1:{server.server_port}")
        with tracer.start_as_current_span("drift check"):
            pass
        shutdown_tracing()  # flushes the batch
    finally:
        server.shutdown()
        server.server_close()
    [(path, body)] = received
    request = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = request.resource_spans
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
    span_name = resource_spans.scope_spans[0].spans[0].name
    assert (path, service, span_name) == ("/v1/traces", "drift-watcher", "drift check")


def test_otlp_exporter_is_imported_only_when_selected() -> None:
    """Tracing without OTLP does not import the OTLP exporter (nor protobuf's HTTP stack)."""
    source_dir = Path(telemetry.__file__).parents[1]
    code = (
        "import sys; from pathlib import Path; from aikube.telemetry import setup_tracing; "
        "setup_tracing('x', exporter='file', trace_dir=Path(sys.argv[1])); "
        "print(any(name.startswith('opentelemetry.exporter') for name in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "unused-dir"],
        env={**os.environ, "PYTHONPATH": str(source_dir)},
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent,
    )
    assert result.stdout.strip() == "False"


# --- trace context in events --------------------------------------------------------------------------------------


def test_inject_outside_a_span_is_empty() -> None:
    """Without a current span there is no trace context to put in an event."""
    assert inject_traceparent() == {}


def test_inject_gives_the_current_span_as_traceparent() -> None:
    """Inside a span, traceparent holds that span's trace id and span id."""
    setup_tracing("ingestor", exporter="none")
    with tracer.start_as_current_span("publish") as span:
        extensions = inject_traceparent()
    match = TRACEPARENT_RE.match(extensions["traceparent"])
    assert match is not None
    context = span.get_span_context()
    assert match.groups() == (trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id))


@pytest.mark.parametrize("flags", ["01", "03", "ff"])
def test_context_from_accepts_any_trace_flags(flags: str) -> None:
    """traceparent flags other than 00/01 (the SDK emits 03) still continue the trace."""
    context = context_from({"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-{flags}"})
    parent = trace.get_current_span(context).get_span_context()
    assert (trace.format_trace_id(parent.trace_id), trace.format_span_id(parent.span_id)) == (TRACE_ID, PARENT_ID)
    assert parent.is_remote and parent.trace_flags.sampled


def test_context_from_normalises_upper_case_hex() -> None:
    """An upper-case traceparent (which the stock propagator rejects) is read as its lower-case form."""
    context = context_from({"traceparent": f"00-{TRACE_ID.upper()}-{PARENT_ID.upper()}-03"})
    assert trace.format_trace_id(trace.get_current_span(context).get_span_context().trace_id) == TRACE_ID


@pytest.mark.parametrize("extensions", [{}, {"traceparent": "garbage"}, {"traceparent": 42}])
def test_context_from_without_a_usable_traceparent_starts_a_new_trace(extensions: dict) -> None:
    """A missing, malformed or non-string traceparent gives a context without a parent."""
    assert not trace.get_current_span(context_from(extensions)).get_span_context().is_valid


def test_child_span_continues_the_trace_of_the_extensions(tmp_path: Path) -> None:
    """A span started in context_from(...) records the event's trace id and the producer's span as parent."""
    setup_tracing("feature-builder", exporter="file", trace_dir=tmp_path)
    extensions = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-03"}
    with tracer.start_as_current_span("process", context=context_from(extensions)):
        pass
    [line] = read_span_file(tmp_path, "feature-builder")
    assert (line["trace_id"], line["parent_span_id"]) == (TRACE_ID, PARENT_ID)


def test_tracestate_travels_from_extensions_to_the_next_event() -> None:
    """tracestate read from an event is injected again into the events emitted under it."""
    setup_tracing("feature-builder", exporter="none")
    extensions = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-03", "tracestate": "aikube=1"}
    with tracer.start_as_current_span("process", context=context_from(extensions)):
        emitted = inject_traceparent()
    assert emitted["tracestate"] == "aikube=1"
    assert emitted["traceparent"].startswith(f"00-{TRACE_ID}-")


def test_parent_and_child_in_two_services_write_two_linked_files(tmp_path: Path) -> None:
    """A producer span and a consumer span continued from its traceparent land in two files of one trace."""
    setup_tracing("ingestor", exporter="file", trace_dir=tmp_path)
    with tracer.start_as_current_span("publish"):
        extensions = inject_traceparent()
    setup_tracing("feature-builder", exporter="file", trace_dir=tmp_path)
    with tracer.start_as_current_span("process", context=context_from(extensions)):
        pass
    [parent] = read_span_file(tmp_path, "ingestor")
    [child] = read_span_file(tmp_path, "feature-builder")
    assert child["trace_id"] == parent["trace_id"]
    assert child["parent_span_id"] == parent["span_id"]


# --- logging ------------------------------------------------------------------------------------------------------


def test_log_line_is_json_with_standard_fields_and_extras(capsys: pytest.CaptureFixture[str]) -> None:
    """A log call prints one JSON line: timestamp, severity, message, service, logger and the extra key-values."""
    setup_logging("ingestor")
    logging.getLogger("aikube.test").warning("rows %s", "masked", extra={"dataset": "bikes", "rows": 3})
    [line] = capsys.readouterr().out.splitlines()
    entry = json.loads(line)
    assert {key: entry[key] for key in ("severity", "message", "service", "logger", "dataset", "rows")} == {
        "severity": "WARNING",
        "message": "rows masked",
        "service": "ingestor",
        "logger": "aikube.test",
        "dataset": "bikes",
        "rows": 3,
    }
    assert datetime.fromisoformat(entry["timestamp"]).tzinfo is not None


def test_log_line_inside_a_span_carries_its_trace_ids(capsys: pytest.CaptureFixture[str]) -> None:
    """Logs written inside a span carry trace_id and span_id, so logs and traces can be joined."""
    setup_tracing("ingestor", exporter="none")
    setup_logging("ingestor")
    with tracer.start_as_current_span("process") as span:
        logging.getLogger("aikube.test").info("inside")
    entry = json.loads(capsys.readouterr().out)
    context = span.get_span_context()
    assert (entry["trace_id"], entry["span_id"]) == (
        trace.format_trace_id(context.trace_id),
        trace.format_span_id(context.span_id),
    )


def test_log_line_includes_the_exception(capsys: pytest.CaptureFixture[str]) -> None:
    """log.exception adds the formatted traceback under `exception`."""
    setup_logging("trainer")
    try:
        raise KeyError("model")
    except KeyError:
        logging.getLogger("aikube.test").exception("failed")
    entry = json.loads(capsys.readouterr().out)
    assert (entry["severity"], entry["exception"].splitlines()[-1]) == ("ERROR", "KeyError: 'model'")


def test_extra_key_cannot_hide_a_standard_field(capsys: pytest.CaptureFixture[str]) -> None:
    """An extra named like a standard field does not overwrite it."""
    setup_logging("ingestor")
    logging.getLogger("aikube.test").info("hello", extra={"service": "impostor"})
    assert json.loads(capsys.readouterr().out)["service"] == "ingestor"


def test_log_level_filters_lower_severities(capsys: pytest.CaptureFixture[str]) -> None:
    """At level INFO, debug messages are not printed."""
    setup_logging("ingestor", level="info")
    logging.getLogger("aikube.test").debug("hidden")
    logging.getLogger("aikube.test").info("shown")
    assert [json.loads(line)["message"] for line in capsys.readouterr().out.splitlines()] == ["shown"]


def test_setting_up_logging_twice_does_not_duplicate_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """A second setup_logging replaces the handler instead of adding one."""
    setup_logging("ingestor")
    setup_logging("ingestor")
    logging.getLogger("aikube.test").info("once")
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_terminal_gets_readable_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a TTY a log line is human-readable text with the key-values, not JSON."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    setup_logging("ingestor")
    logging.getLogger("aikube.test").info("landed", extra={"rows": 3})
    line = terminal.getvalue().strip()
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} INFO +ingestor +landed +rows=3", line)
