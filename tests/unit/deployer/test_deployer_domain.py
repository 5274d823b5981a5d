"""Unit tests of the deployer's evaluation gate."""

from __future__ import annotations

from deployer.domain import gate


def test_first_model_is_promoted() -> None:
    """With no champion the candidate is promoted as the first model."""
    decision = gate("regression", 30.0, None, tolerance=0.0)
    assert decision.promote and decision.reason == "first model"


def test_better_candidate_is_promoted() -> None:
    """Lower is better: a lower score than the champion wins."""
    assert gate("regression", 20.0, 25.0, tolerance=0.0).promote


def test_worse_candidate_is_rejected() -> None:
    """A higher score than the champion loses when there is no tolerance."""
    assert not gate("regression", 26.0, 25.0, tolerance=0.0).promote


def test_equal_score_is_promoted() -> None:
    """A tie promotes (candidate ≤ champion): the newer model saw more recent data."""
    assert gate("classification", 0.5, 0.5, tolerance=0.0).promote


def test_tolerance_allows_a_slightly_worse_candidate() -> None:
    """With 10 % tolerance, 27 against 25 passes (27 ≤ 27.5) but 28 does not."""
    assert gate("regression", 27.0, 25.0, tolerance=0.1).promote
    assert not gate("regression", 28.0, 25.0, tolerance=0.1).promote


def test_reason_names_metric_and_scores() -> None:
    """The reason states the metric and both scores, for the rejected event and the operator."""
    reason = gate("regression", 26.0, 25.0, tolerance=0.0).reason
    assert "mae" in reason and "26" in reason and "25" in reason


def test_reason_uses_the_classification_metric() -> None:
    """Classification models are compared on log loss."""
    assert "log_loss" in gate("classification", 0.7, 0.6, tolerance=0.0).reason


def test_non_finite_candidate_is_rejected() -> None:
    """A NaN candidate score never promotes, even without a champion."""
    assert not gate("regression", float("nan"), None, tolerance=0.0).promote


def test_unmeasurable_champion_loses_to_a_measured_candidate() -> None:
    """A champion whose score is NaN on the slice is replaced by a measurable candidate."""
    assert gate("regression", 30.0, float("nan"), tolerance=0.0).promote
