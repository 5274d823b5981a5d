"""Reading the span files of the `file` trace exporter: list the traces, render one as a tree across services.

Each process writes its own `<service>-<pid>.jsonl`; a trace that crossed services through events is spread over
several files and joined here by trace id and parent span id.

Example:
    >>> print(trace_command(None, Path("var/traces")))            # doctest: +SKIP
    TRACE ID                          STARTED (UTC)            DURATION  SPANS  ROOT ...
    >>> print(trace_command("4bf9", Path("var/traces")))          # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aikube.telemetry import EVENT_ID, EVENT_SUBJECT, EVENT_TYPE, SpanRecord

__all__ = ["TraceSummary", "load_spans", "render_trace", "trace_command", "traces"]

log = logging.getLogger(__name__)

# Event attributes shown on a span line, with their short labels.
_EVENT_LABELS = {EVENT_TYPE: "type", EVENT_ID: "id", EVENT_SUBJECT: "subject"}


@dataclass(frozen=True)
class TraceSummary:
    """One trace in a listing."""

    trace_id: str
    start: datetime
    duration_ms: float
    span_count: int
    root: str  # name of the earliest root span
    services: tuple[str, ...]  # in order of first appearance
    errors: int  # spans with status ERROR


def load_spans(trace_dir: Path) -> list[SpanRecord]:
    """Every span in the folder's `*.jsonl` files; an empty list when the folder is missing.

    Lines that are not complete span records (a process killed mid-write) are skipped with a warning.
    """
    spans: list[SpanRecord] = []
    for path in sorted(Path(trace_dir).glob("*.jsonl")):
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    spans.append(SpanRecord.from_json(line))
                except ValueError as exc:
                    log.warning("skipped %s line %d: %s", path.name, number, exc)
    return spans


def traces(spans: Iterable[SpanRecord]) -> list[TraceSummary]:
    """One summary per trace, newest first."""
    summaries = [_summary(trace_id, members) for trace_id, members in _by_trace(spans).items()]
    return sorted(summaries, key=lambda summary: summary.start, reverse=True)


def render_trace(spans: Iterable[SpanRecord], trace_id: str) -> str:
    """An indented tree of one trace: service, span name, duration, offset from the start, event attributes.

    A span whose parent was not recorded (e.g. a producer tracing with exporter `none`) is shown as a root.

    Raises:
        KeyError: no span belongs to trace_id.
    """
    members = _by_trace(spans).get(trace_id)
    if not members:
        raise KeyError(f"no spans of trace {trace_id}")
    summary = _summary(trace_id, members)
    ids = {span.span_id for span in members}
    children: dict[str | None, list[SpanRecord]] = defaultdict(list)
    for span in members:
        children[span.parent_span_id if span.parent_span_id in ids else None].append(span)

    lines = [
        f"trace {trace_id}  {summary.span_count} spans  {len(summary.services)} services  "
        f"{_duration(summary.duration_ms)}  started {_clock(summary.start)} UTC"
    ]

    def walk(parent: str | None, indent: str) -> None:
        ordered = sorted(children.get(parent, []), key=lambda span: span.start)
        for position, span in enumerate(ordered):
            last = position == len(ordered) - 1
            lines.append(indent + ("└─ " if last else "├─ ") + _span_line(span, summary.start))
            walk(span.span_id, indent + ("   " if last else "│  "))

    walk(None, "")
    return "\n".join(lines)


def trace_command(trace_id: str | None, trace_dir: Path) -> str:
    """The text `aikube trace [TRACE_ID] --dir DIR` prints: the trace list, or one trace (an id prefix will do)."""
    spans = load_spans(trace_dir)
    if not spans:
        return f"No spans in {trace_dir}. Run the services with the trace exporter 'file' writing to that folder."
    summaries = traces(spans)
    if trace_id is None:
        return _listing(summaries)
    prefix = trace_id.strip().lower()
    matches = [summary for summary in summaries if summary.trace_id.startswith(prefix)]
    if not matches:
        return f"No trace starting with {trace_id!r} in {trace_dir} ({len(summaries)} traces there)."
    if len(matches) > 1:
        return f"{trace_id!r} matches {len(matches)} traces; give more characters:\n{_listing(matches)}"
    return render_trace(spans, matches[0].trace_id)


def _by_trace(spans: Iterable[SpanRecord]) -> dict[str, list[SpanRecord]]:
    grouped: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        grouped[span.trace_id].append(span)
    return grouped


def _summary(trace_id: str, members: list[SpanRecord]) -> TraceSummary:
    ordered = sorted(members, key=lambda span: span.start)
    ids = {span.span_id for span in members}
    roots = [span for span in ordered if span.parent_span_id not in ids]
    start = ordered[0].start
    end = max(span.end for span in members)
    return TraceSummary(
        trace_id=trace_id,
        start=start,
        duration_ms=round((end - start).total_seconds() * 1000, 3),
        span_count=len(members),
        root=roots[0].name if roots else ordered[0].name,  # no root only in corrupt files (a parent cycle)
        services=tuple(dict.fromkeys(span.service for span in ordered)),
        errors=sum(span.status == "ERROR" for span in members),
    )


def _span_line(span: SpanRecord, trace_start: datetime) -> str:
    offset_ms = (span.start - trace_start).total_seconds() * 1000
    parts = [f"{span.service}: {span.name}", _duration(span.duration_ms), f"@+{_duration(offset_ms)}"]
    if span.status == "ERROR":
        parts.append(f"ERROR {span.status_message}" if span.status_message else "ERROR")
    labels = [f"{label}={span.attributes[key]}" for key, label in _EVENT_LABELS.items() if span.attributes.get(key)]
    if labels:
        parts.append(" ".join(labels))
    return "  ".join(parts)


def _listing(summaries: list[TraceSummary]) -> str:
    root_width = max(len("ROOT"), *(len(summary.root) for summary in summaries))
    header = (
        f"{'TRACE ID':<32}  {'STARTED (UTC)':<23}  {'DURATION':>10}  SPANS  ERRORS  {'ROOT':<{root_width}}  SERVICES"
    )
    rows = [
        f"{s.trace_id:<32}  {_clock(s.start):<23}  {_duration(s.duration_ms):>10}  {s.span_count:>5}  {s.errors:>6}  "
        f"{s.root:<{root_width}}  {', '.join(s.services)}"
        for s in summaries
    ]
    return "\n".join([header, *rows])


def _clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]  # milliseconds are enough to order spans by eye


def _duration(milliseconds: float) -> str:
    return f"{milliseconds / 1000:.2f} s" if abs(milliseconds) >= 1000 else f"{milliseconds:.1f} ms"
