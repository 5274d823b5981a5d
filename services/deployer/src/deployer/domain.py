"""The evaluation gate: whether a trained candidate may replace the serving champion."""

from __future__ import annotations

import math
from dataclasses import dataclass

from aikube.metrics import primary_metric


@dataclass(frozen=True)
class GateDecision:
    """Promote or not, and why (the reason goes into model.deployed / model.rejected events)."""

    promote: bool
    reason: str


def gate(task: str, candidate_score: float, champion_score: float | None, tolerance: float) -> GateDecision:
    """Compare a candidate with the champion on the same slice; lower scores are better.

    The candidate wins when candidate ≤ champion × (1 + tolerance); with no champion it is the first model.

    Args:
        task: "regression" or "classification" (names the metric in the reason).
        candidate_score: the candidate's primary metric.
        champion_score: the champion's primary metric on the same slice, or None when nothing serves yet.
        tolerance: allowed relative worsening (0.0 = must be at least as good).
    """
    metric = primary_metric(task)
    if not math.isfinite(candidate_score):
        return GateDecision(False, f"candidate {metric} is not a finite number: {candidate_score}")
    if champion_score is None:
        return GateDecision(True, "first model")
    if not math.isfinite(champion_score):
        # The champion cannot be measured on this slice, so any measurable candidate is an improvement.
        return GateDecision(True, f"champion {metric} is not a finite number: {champion_score}")
    bound = champion_score * (1 + tolerance)
    comparison = f"candidate {metric} {candidate_score:.4g} {{}} champion {champion_score:.4g} × {1 + tolerance:g}"
    if candidate_score <= bound:
        return GateDecision(True, comparison.format("≤"))
    return GateDecision(False, comparison.format(">"))
