"""The demo's entry checks and closing lines (which point the operator at a chain worth reading)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aikube.catalog import Catalog
from aikube.demo import _closing, _progress_line, run_demo
from aikube.demo.replay import BatchScore, outcome_of
from aikube.envelope import make_event


def summary(*retrains: dict[str, Any]) -> dict[str, Any]:
    return {
        "batches": 3,
        "drift_checks": [{}, {}, {}],
        "retrains": list(retrains),
        "models": [{"status": "deployed"}],
        "dead_letters": 0,
        "online_metric": {"name": "mae", "deployed": None, "static": None, "rows_scored": 0},
    }


def retrain(trace_id: str, outcome: str) -> dict[str, Any]:
    return {"trace_id": trace_id, "outcome": outcome, "reason": "drift"}


def test_the_trace_to_follow_is_the_first_retrain_that_redeployed() -> None:
    text = _closing(summary(retrain("a" * 32, "rejected"), retrain("b" * 32, "deployed")), Path("out"), 1.0)
    assert f"retrain → redeploy chain: aikube trace {'b' * 32}" in text


def test_without_a_redeploy_the_first_retrain_is_shown() -> None:
    text = _closing(summary(retrain("a" * 32, "rejected")), Path("out"), 1.0)
    assert f"Follow the first retrain chain: aikube trace {'a' * 32}" in text


def test_without_retrains_no_trace_is_suggested() -> None:
    assert "aikube trace" not in _closing(summary(), Path("out"), 1.0)


def outcome(key: str, **data: Any) -> Any:
    spec = Catalog.load()[key]
    return make_event(spec, {**spec.example(), **data}, source="/test", subject="x")


def test_each_batch_line_says_how_the_training_it_requested_ended() -> None:
    failed = outcome_of(outcome("training.v1.failed", error="too few labeled rows"))
    scored = BatchScore("b", "2011-01-01T00:00:00+00:00", 7, None, None, None, "requested", "bootstrap", outcome=failed)

    line = _progress_line(1, 4, scored)

    assert line.endswith("→ requested: bootstrap → failed: too few labeled rows")
    assert outcome_of(outcome("model.v1.deployed")) == "deployed"
    assert outcome_of(outcome("model.v1.rejected")) == "rejected"


@pytest.mark.parametrize("max_batches", [0, -1])
def test_run_demo_refuses_fewer_than_one_batch(tmp_path: Path, max_batches: int) -> None:
    """`[:-1]` would silently mean "all but the last": refused before anything starts."""
    with pytest.raises(ValueError, match="max_batches must be at least 1"):
        run_demo(tmp_path / "unused.yaml", tmp_path / "out", max_batches=max_batches)
    assert not (tmp_path / "out").exists()
