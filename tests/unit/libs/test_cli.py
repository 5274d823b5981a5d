"""The `aikube` command: exit codes and messages of trace, publish, provision and demo's arguments."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent

from aikube import bus, cli
from aikube.bus import BusError
from aikube.cli import main
from aikube.telemetry import SpanRecord, shutdown_tracing

T0 = datetime(2026, 1, 2, 3, 0, 0, tzinfo=timezone.utc)
ONE = "a" * 32
TWO = "ab" + "c" * 30  # shares the prefix "a" with ONE


@pytest.fixture(autouse=True)
def _tracing_off() -> Iterator[None]:
    yield
    shutdown_tracing()


def record(trace_id: str, span_id: str, parent: str | None, service: str, name: str) -> SpanRecord:
    return SpanRecord(
        trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name, service=service, kind="INTERNAL",
        start=T0, end=T0 + timedelta(milliseconds=5), duration_ms=5.0, status="UNSET", status_message=None,
        attributes={},
    )  # fmt: skip


@pytest.fixture
def trace_dir(tmp_path: Path) -> Path:
    """Two traces: a publish continued by the ingestor, and a one-span trace."""
    folder = tmp_path / "traces"
    folder.mkdir()
    spans = [
        record(ONE, "1" * 16, None, "aikube-publish", "dataset.v1.arrived publish"),
        record(ONE, "2" * 16, "1" * 16, "ingestor", "dataset.v1.arrived process"),
        record(TWO, "3" * 16, None, "ingestor", "other"),
    ]
    (folder / "all-1.jsonl").write_text("".join(span.to_json() + "\n" for span in spans))
    return folder


# --- trace ---------------------------------------------------------------------------------------------------------


def test_trace_missing_folder_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A folder that does not exist is not 'no spans': exit 1 and say which folder and what it should hold."""
    assert main(["trace", "--dir", str(tmp_path / "nonexistent")]) == 1
    assert f"aikube trace: no trace folder {tmp_path / 'nonexistent'}" in capsys.readouterr().err


def test_trace_unknown_id_is_an_error(trace_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An id that matches nothing exits 1, naming it and how to list the traces."""
    assert main(["trace", "ffff", "--dir", str(trace_dir)]) == 1
    captured = capsys.readouterr()
    assert "no trace starting with 'ffff'" in captured.err and "aikube trace --dir" in captured.err
    assert captured.out == ""


def test_trace_ambiguous_prefix_lists_the_candidates(trace_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A prefix of two traces is an error that shows both to choose from."""
    assert main(["trace", "a", "--dir", str(trace_dir)]) == 1
    err = capsys.readouterr().err
    assert "matches 2 traces" in err and ONE in err and TWO in err


def test_trace_prints_one_trace_as_a_tree(trace_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A unique prefix prints the chain, publisher first, and exits 0."""
    assert main(["trace", "aaaa", "--dir", str(trace_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"trace {ONE}  2 spans")
    assert lines[1].startswith("└─ aikube-publish: dataset.v1.arrived publish")
    assert lines[2].startswith("   └─ ingestor: dataset.v1.arrived process")


def test_trace_without_id_lists(trace_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No id lists every trace."""
    assert main(["trace", "--dir", str(trace_dir)]) == 0
    out = capsys.readouterr().out
    assert ONE in out and TWO in out


# --- publish -------------------------------------------------------------------------------------------------------


class RecordingBus:
    """Stands in for PubSubBus: keeps what is published."""

    published: list[CloudEvent] = []

    def __init__(self, project_id: str, catalog: Any, **options: Any) -> None:
        self.options = options

    def publish_all(self, events: list[CloudEvent]) -> list[str]:
        RecordingBus.published.extend(events)
        return ["1"]

    def close(self) -> None:
        pass


@pytest.fixture
def batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`aikube publish` arguments of a small CSV batch, against a recording bus."""
    csv = tmp_path / "b.csv"
    csv.write_text("a,b\n1,2\n")
    RecordingBus.published = []
    monkeypatch.setattr(bus, "PubSubBus", RecordingBus)
    for name in ("AIKUBE_TRACE_EXPORTER", "AIKUBE_TRACE_DIR"):
        monkeypatch.delenv(name, raising=False)
    return ["publish", "--project", "p", "--dataset", "d", "--batch-id", "b1", "--file", str(csv)]


def printed_trace_id(out: str) -> str:
    return out.strip().rsplit("trace ", 1)[1]


def test_publish_prints_the_trace_the_event_carries(batch: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Without any trace setting the printed id is still real: the one in the event's traceparent."""
    assert main(batch) == 0
    trace_id = printed_trace_id(capsys.readouterr().out)
    assert trace_id != "0" * 32
    (event,) = RecordingBus.published
    assert event.get_extension("traceparent").split("-")[1] == trace_id


def test_publish_records_its_span_with_the_file_exporter(
    batch: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With AIKUBE_TRACE_EXPORTER=file the publish span is written, so `aikube trace` starts at the publisher."""
    monkeypatch.setenv("AIKUBE_TRACE_EXPORTER", "file")
    monkeypatch.setenv("AIKUBE_TRACE_DIR", str(tmp_path / "traces"))
    assert main(batch) == 0
    trace_id = printed_trace_id(capsys.readouterr().out)
    (span_file,) = (tmp_path / "traces").glob("aikube-publish-*.jsonl")
    (span,) = [json.loads(line) for line in span_file.read_text().splitlines()]
    assert (span["trace_id"], span["name"], span["parent_span_id"]) == (trace_id, "dataset.v1.arrived publish", None)


def test_publish_with_file_exporter_and_no_folder_is_refused(
    batch: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same rule as for the services, before anything is sent."""
    monkeypatch.setenv("AIKUBE_TRACE_EXPORTER", "file")
    assert main(batch) == 1
    assert "AIKUBE_TRACE_DIR is required when AIKUBE_TRACE_EXPORTER=file" in capsys.readouterr().err
    assert RecordingBus.published == []


def test_publish_failure_has_a_message(
    batch: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bus error reaches the user as its message, and the CLI's bus waits a bounded time."""

    def refuse(self: RecordingBus, events: list[CloudEvent]) -> list[str]:
        assert 0 < self.options["publish_timeout_s"] <= 30
        raise BusError("cannot publish x: the Pub/Sub emulator at h:1 (project p) does not answer")

    monkeypatch.setattr(RecordingBus, "publish_all", refuse)
    assert main(batch) == 1
    assert capsys.readouterr().err == (
        "aikube publish: cannot publish x: the Pub/Sub emulator at h:1 (project p) does not answer\n"
    )


# --- provision, demo -------------------------------------------------------------------------------------------------


def test_provision_without_emulator_or_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No traceback: one line saying to set PUBSUB_EMULATOR_HOST or provide credentials."""
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    assert main(["provision", "--project", "p"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("aikube provision: no Google Cloud credentials") and "PUBSUB_EMULATOR_HOST" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argument", "says"),
    [
        (["--max-batches", "-1"], "argument --max-batches: must be at least 1, not -1"),
        (["--max-batches", "0"], "argument --max-batches: must be at least 1, not 0"),
        (["--max-batches", "x"], "argument --max-batches: not an integer: 'x'"),
        (["--emulator", "localhost"], "argument --emulator: expected host:port"),
        (["--emulator", "127.0.0.1:0"], "argument --emulator: expected host:port"),
    ],
)
def test_demo_refuses_bad_arguments(
    argument: list[str], says: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused by the parser (exit 2) before anything starts."""
    monkeypatch.setitem(cli.COMMANDS, "demo", lambda args: pytest.fail("the demo ran"))
    with pytest.raises(SystemExit) as stopped:
        main(["demo", *argument])
    assert stopped.value.code == 2 and says in capsys.readouterr().err
