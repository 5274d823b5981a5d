"""summary.json and the closing lines say what went wrong: rejected rows, failed trainings, dead letters."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent

from aikube.catalog import Catalog
from aikube.datasets import DatasetSpec
from aikube.demo import _closing
from aikube.demo.observer import DeadLetter
from aikube.demo.replay import BatchScore
from aikube.demo.report import plot_timeline, summarize
from aikube.envelope import make_event

CATALOG = Catalog.load(Path(__file__).resolve().parents[3] / "events")
KEPT_KEYS = {"dataset", "rows", "batches", "models", "drift_checks", "retrains", "decisions", "online_metric"}
KEPT_KEYS |= {"dead_letters", "timeline"}


class Observer:
    """What summarize reads from the real observer: the events by catalog key, and the dead letters."""

    def __init__(self, events: list[tuple[str, CloudEvent]], dead_letters: list[DeadLetter] | None = None) -> None:
        self.events = events
        self.dead_letters = dead_letters or []

    def of(self, key: str) -> list[CloudEvent]:
        return [event for k, event in self.events if k == key]


def event(key: str, **data: Any) -> tuple[str, CloudEvent]:
    """An event of a catalog type: its minimal example with `data` on top, validated like a real one."""
    spec = CATALOG[key]
    return key, make_event(spec, {**spec.example("minimal"), **data}, source="/test", subject="x")


def dataset() -> DatasetSpec:
    return DatasetSpec.model_validate({"name": "bikeshare", "timestamp": "ts", "target": "y", "task": "regression"})


def score(rows: int, served: float | None, static: float | None, scored: int) -> BatchScore:
    version = "v1" if served is not None else None
    return BatchScore("b", "2011-01-01T00:00:00+00:00", rows, version, served, static, scored_rows=scored)


def test_failed_trainings_are_recorded_bootstrap_included_and_closed_on() -> None:
    observed = Observer(
        [
            event("training.v1.requested", request_id="bootstrap-1", reason="bootstrap"),
            event("training.v1.failed", request_id="bootstrap-1", error="too few labeled rows"),
            event("training.v1.requested", request_id="bootstrap-2", reason="bootstrap"),
            event("training.v1.failed", request_id="bootstrap-2", error="a single class"),
        ]
    )

    summary = summarize(dataset(), 10, [], observed)  # type: ignore[arg-type]

    failed = summary["failed_trainings"]
    assert [(f["request_id"], f["reason"], f["error"]) for f in failed] == [
        ("bootstrap-1", "bootstrap", "too few labeled rows"),
        ("bootstrap-2", "bootstrap", "a single class"),
    ]
    assert summary["retrains"] == []  # bootstraps are not retrains
    assert "2 trainings failed; the first (bootstrap): too few labeled rows" in _closing(summary, Path("out"), 1.0)


def test_rejected_rows_are_totalled_with_their_top_reasons() -> None:
    observed = Observer(
        [
            event("dataset.v1.ingested", batch_id="b1", rows_received=10, rows_accepted=7, rows_rejected=3,
                  rejects_uri="file:///r1", reject_reasons={"ts: not a timestamp": 2, "y: missing value": 1}),
            event("dataset.v1.ingested", batch_id="b2", rows_received=5, rows_accepted=4, rows_rejected=1,
                  rejects_uri="file:///r2", reject_reasons={"y: missing value": 1}),
            event("dataset.v1.ingested", batch_id="b3", rows_received=6, rows_accepted=6, rows_rejected=0),
        ]
    )  # fmt: skip

    summary = summarize(dataset(), 21, [], observed)  # type: ignore[arg-type]

    assert summary["ingestion"] == {
        "rows_received": 21,
        "rows_accepted": 17,
        "rows_rejected": 4,
        "reject_reasons": {"ts: not a timestamp": 2, "y: missing value": 2},
    }
    closing = _closing(summary, Path("out"), 1.0)
    assert "4 of 21 rows rejected by the ingestor: ts: not a timestamp (2), y: missing value (2)" in closing


def test_a_clean_run_closes_without_problem_lines_and_keeps_every_summary_key() -> None:
    observed = Observer([event("dataset.v1.ingested", rows_received=5, rows_accepted=5, rows_rejected=0)])

    summary = summarize(dataset(), 5, [], observed)  # type: ignore[arg-type]

    assert KEPT_KEYS <= set(summary)
    closing = _closing(summary, Path("out"), 1.0)
    assert "rejected" not in closing and "failed" not in closing


def test_dead_letters_are_counted_and_described() -> None:
    dead = DeadLetter("feature-builder.dataset.ingested", "dev.aikube.dataset.v1.ingested", "rejected: no table")

    summary = summarize(dataset(), 0, [], Observer([], [dead]))  # type: ignore[arg-type]

    assert summary["dead_letters"] == 1
    assert summary["dead_lettered"] == [vars(dead)]


def test_the_online_metric_is_weighted_by_the_rows_actually_scored() -> None:
    scores = [score(100, 1.0, 2.0, scored=10), score(100, 4.0, 8.0, scored=30), score(50, None, None, scored=0)]

    metric = summarize(dataset(), 250, scores, Observer([]))["online_metric"]  # type: ignore[arg-type]

    assert metric["deployed"] == pytest.approx((1.0 * 10 + 4.0 * 30) / 40)
    assert metric["static"] == pytest.approx((2.0 * 10 + 8.0 * 30) / 40)
    assert (metric["batches_scored"], metric["rows_scored"]) == (2, 40)


def test_a_timeline_without_any_served_model_draws_without_warnings(tmp_path: Path) -> None:
    summary = summarize(dataset(), 5, [score(5, None, None, scored=0)], Observer([]))  # type: ignore[arg-type]

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "No artists with labels" is a UserWarning
        plot_timeline(summary, tmp_path / "timeline.png")

    assert (tmp_path / "timeline.png").read_bytes()[:4] == b"\x89PNG"
