"""The demo's closing lines point the operator at a chain worth reading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aikube.demo import _closing


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
