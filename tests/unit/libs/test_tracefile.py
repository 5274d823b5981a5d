"""Reading span files back: loading, listing traces, rendering one trace as a tree across services."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

from aikube.telemetry import (
    EVENT_ID,
    EVENT_SUBJECT,
    EVENT_TYPE,
    SpanRecord,
    context_from,
    inject_traceparent,
    setup_tracing,
    shutdown_tracing,
)
from aikube.tracefile import load_spans, render_trace, trace_command, traces

T0 = datetime(2026, 1, 2, 3, 0, 0, tzinfo=timezone.utc)
LOOP = "a" * 32  # a trace through three services
OTHER = "ab" + "c" * 30  # a later one-span trace sharing the prefix "a"

tracer = trace.get_tracer("tests.tracefile")


@pytest.fixture(autouse=True)
def _tracing_off() -> Iterator[None]:
    yield
    shutdown_tracing()


def span(
    trace_id: str, span_id: str, parent: str | None, service: str, name: str, start_ms: float, duration_ms: float,
    status: str = "UNSET", status_message: str | None = None, **attributes: Any,
) -> SpanRecord:  # fmt: skip
    start = T0 + timedelta(milliseconds=start_ms)
    return SpanRecord(
        trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name, service=service, kind="INTERNAL",
        start=start, end=start + timedelta(milliseconds=duration_ms), duration_ms=duration_ms,
        status=status, status_message=status_message, attributes=attributes,
    )  # fmt: skip


def fields(line: str) -> list[str]:
    """A rendered span line split into its double-space-separated fields, the tree glyphs kept on the first."""
    label_start = len(line) - len(line.lstrip(" │├└─"))
    first, *rest = line[label_start:].split("  ")
    return [line[:label_start] + first, *rest]


def write_files(trace_dir: Path, spans: list[SpanRecord]) -> None:
    """One file per service, as one process per service would write them."""
    trace_dir.mkdir(exist_ok=True)
    for record in spans:
        with (trace_dir / f"{record.service}-100.jsonl").open("a") as out:
            out.write(record.to_json() + "\n")


LOOP_SPANS = [
    span(LOOP, "1" * 16, None, "aikube-sdk", "dataset.v1.arrived publish", 0, 2,
         **{EVENT_TYPE: "dev.aikube.dataset.v1.arrived", EVENT_ID: "evt-1", EVENT_SUBJECT: "dataset/bikes"}),
    span(LOOP, "2" * 16, "1" * 16, "ingestor", "dataset.v1.arrived process", 5, 40,
         **{EVENT_TYPE: "dev.aikube.dataset.v1.arrived", EVENT_ID: "evt-1", EVENT_SUBJECT: "dataset/bikes"}),
    span(LOOP, "3" * 16, "2" * 16, "ingestor", "land raw", 6, 20),
    span(LOOP, "4" * 16, "2" * 16, "ingestor", "dataset.v1.ingested publish", 30, 1),
    span(LOOP, "5" * 16, "4" * 16, "feature-builder", "dataset.v1.ingested process", 50, 1500,
         status="ERROR", status_message="KeyError: 'rides'"),
]  # fmt: skip
OTHER_SPANS = [span(OTHER, "6" * 16, None, "drift-watcher", "drift check", 60_000, 12)]


# --- loading ------------------------------------------------------------------------------------------------------


def test_load_spans_reads_every_file_of_the_folder(tmp_path: Path) -> None:
    """Spans of all services' files are loaded, each as written."""
    write_files(tmp_path, LOOP_SPANS + OTHER_SPANS)
    assert sorted(load_spans(tmp_path), key=lambda s: s.span_id) == LOOP_SPANS + OTHER_SPANS


def test_load_spans_skips_a_truncated_line_and_blank_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A half-written last line (process killed mid-write) is skipped with a warning naming file and line."""
    write_files(tmp_path, OTHER_SPANS)
    with (tmp_path / "drift-watcher-100.jsonl").open("a") as out:
        out.write("\n" + OTHER_SPANS[0].to_json()[:40])
    with caplog.at_level(logging.WARNING):
        assert load_spans(tmp_path) == OTHER_SPANS
    assert "drift-watcher-100.jsonl line 3" in caplog.text


def test_load_spans_of_a_missing_folder_is_empty(tmp_path: Path) -> None:
    """A folder that does not exist holds no spans."""
    assert load_spans(tmp_path / "absent") == []


# --- listing ------------------------------------------------------------------------------------------------------


def test_traces_are_summarised_newest_first(tmp_path: Path) -> None:
    """traces() lists the later trace first."""
    assert [summary.trace_id for summary in traces(LOOP_SPANS + OTHER_SPANS)] == [OTHER, LOOP]


def test_trace_summary_counts_spans_services_and_errors() -> None:
    """A summary has the root span, services in order of appearance, span and error counts, and the duration."""
    [summary] = traces(LOOP_SPANS)
    assert summary.root == "dataset.v1.arrived publish"
    assert summary.services == ("aikube-sdk", "ingestor", "feature-builder")
    assert (summary.span_count, summary.errors, summary.start) == (5, 1, T0)
    assert summary.duration_ms == pytest.approx(1550)


def test_trace_command_without_id_lists_traces(tmp_path: Path) -> None:
    """`aikube trace` without an id prints a header and one row per trace, newest first."""
    write_files(tmp_path, LOOP_SPANS + OTHER_SPANS)
    header, *rows = trace_command(None, tmp_path).splitlines()
    assert header.split()[:2] == ["TRACE", "ID"]
    assert [row.split()[0] for row in rows] == [OTHER, LOOP]
    assert rows[1].endswith("aikube-sdk, ingestor, feature-builder")


# --- rendering ----------------------------------------------------------------------------------------------------


def test_render_shows_a_multi_service_trace_as_an_indented_tree() -> None:
    """Children sit under their parent across services, siblings in start order, with tree glyphs."""
    lines = render_trace(LOOP_SPANS + OTHER_SPANS, LOOP).splitlines()
    assert [fields(line)[0] for line in lines[1:]] == [
        "└─ aikube-sdk: dataset.v1.arrived publish",
        "   └─ ingestor: dataset.v1.arrived process",
        "      ├─ ingestor: land raw",
        "      └─ ingestor: dataset.v1.ingested publish",
        "         └─ feature-builder: dataset.v1.ingested process",
    ]


def test_render_header_names_the_trace_and_its_size() -> None:
    """The first line gives the trace id, span and service counts, total duration and start."""
    header = render_trace(LOOP_SPANS, LOOP).splitlines()[0]
    assert header == f"trace {LOOP}  5 spans  3 services  1.55 s  started 2026-01-02 03:00:00.000 UTC"


def test_render_shows_duration_offset_and_event_attributes() -> None:
    """A span line has its duration, its offset from the trace start and the event's type, id and subject."""
    line = render_trace(LOOP_SPANS, LOOP).splitlines()[2]
    assert fields(line)[1:] == [
        "40.0 ms",
        "@+5.0 ms",
        "type=dev.aikube.dataset.v1.arrived id=evt-1 subject=dataset/bikes",
    ]


def test_render_marks_failed_spans() -> None:
    """A span with status ERROR shows ERROR and its message."""
    assert render_trace(LOOP_SPANS, LOOP).splitlines()[-1].endswith("ERROR KeyError: 'rides'")


def test_render_shows_a_span_with_an_unrecorded_parent_as_a_root() -> None:
    """When the producer's span is missing (it traced with exporter none), its consumer is still shown."""
    lines = render_trace(LOOP_SPANS[1:], LOOP).splitlines()
    assert lines[1].startswith("└─ ingestor: dataset.v1.arrived process")


def test_render_of_an_unknown_trace_raises_key_error() -> None:
    """Rendering a trace id without spans is a KeyError naming it."""
    with pytest.raises(KeyError, match=OTHER):
        render_trace(LOOP_SPANS, OTHER)


def test_spans_of_two_real_services_render_as_one_tree(tmp_path: Path) -> None:
    """A parent traced in one service and a child continued from its traceparent in another render as one tree."""
    setup_tracing("ingestor", exporter="file", trace_dir=tmp_path)
    with tracer.start_as_current_span("dataset.v1.ingested publish"):
        extensions = inject_traceparent()
    setup_tracing("feature-builder", exporter="file", trace_dir=tmp_path)
    with tracer.start_as_current_span("dataset.v1.ingested process", context=context_from(extensions)):
        with tracer.start_as_current_span("build features"):
            pass
    shutdown_tracing()
    trace_id = extensions["traceparent"].split("-")[1]
    lines = trace_command(trace_id[:8], tmp_path).splitlines()
    assert lines[0].startswith(f"trace {trace_id}  3 spans  2 services")
    assert [fields(line)[0] for line in lines[1:]] == [
        "└─ ingestor: dataset.v1.ingested publish",
        "   └─ feature-builder: dataset.v1.ingested process",
        "      └─ feature-builder: build features",
    ]


# --- the CLI text -------------------------------------------------------------------------------------------------


def test_trace_command_resolves_an_id_prefix_case_insensitively(tmp_path: Path) -> None:
    """A unique prefix, in any case, selects the trace."""
    write_files(tmp_path, LOOP_SPANS + OTHER_SPANS)
    assert trace_command("ABC", tmp_path) == render_trace(OTHER_SPANS, OTHER)


def test_trace_command_explains_an_ambiguous_prefix(tmp_path: Path) -> None:
    """A prefix matching several traces asks for more characters and lists the candidates."""
    write_files(tmp_path, LOOP_SPANS + OTHER_SPANS)
    text = trace_command("a", tmp_path)
    assert text.startswith("'a' matches 2 traces; give more characters")
    assert LOOP in text and OTHER in text


def test_trace_command_explains_an_unknown_id(tmp_path: Path) -> None:
    """An id matching no trace says so, with the folder and how many traces it holds."""
    write_files(tmp_path, LOOP_SPANS + OTHER_SPANS)
    assert trace_command("ffff", tmp_path) == f"No trace starting with 'ffff' in {tmp_path} (2 traces there)."


@pytest.mark.parametrize("trace_id", [None, "abc"])
def test_trace_command_explains_an_empty_folder(tmp_path: Path, trace_id: str | None) -> None:
    """An empty or missing folder gives a message on how to produce span files."""
    assert trace_command(trace_id, tmp_path / "absent").startswith(f"No spans in {tmp_path / 'absent'}.")
