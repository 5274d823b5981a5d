"""Primary metrics per task."""

from __future__ import annotations

import math

import pytest
from sklearn.metrics import log_loss

from aikube.metrics import primary_metric, score


def test_primary_metric_per_task() -> None:
    """Regression is scored by MAE, classification by log loss."""
    assert (primary_metric("regression"), primary_metric("classification")) == ("mae", "log_loss")


def test_unknown_task_is_rejected() -> None:
    """An unknown task is a ValueError naming it."""
    with pytest.raises(ValueError, match="ranking"):
        primary_metric("ranking")


def test_regression_score_is_mean_absolute_error() -> None:
    """The regression score is the mean of absolute errors."""
    truth, prediction = [10.0, 20.0, 30.0], [12.0, 17.0, 30.0]
    expected = sum(abs(t - p) for t, p in zip(truth, prediction, strict=True)) / len(truth)
    assert score("regression", truth, prediction) == pytest.approx(expected)


def test_classification_score_is_log_loss() -> None:
    """The classification score is the mean negative log probability of the true class."""
    truth = ["a", "b"]
    probabilities = [[0.8, 0.2], [0.4, 0.6]]
    expected = -(math.log(0.8) + math.log(0.6)) / 2
    assert score("classification", truth, probabilities) == pytest.approx(expected)


def test_classification_labels_cover_absent_classes() -> None:
    """With labels, y_true may lack some of the model's classes."""
    probabilities = [[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]]
    expected = -(math.log(0.7) + math.log(0.6)) / 2
    assert score("classification", ["a", "b"], probabilities, labels=["a", "b", "c"]) == pytest.approx(expected)


def test_no_rows_is_rejected() -> None:
    """Scoring nothing is an error, not NaN."""
    with pytest.raises(ValueError, match="no rows"):
        score("regression", [], [])


def test_a_class_the_model_never_saw_is_scored_as_probability_zero() -> None:
    """A true class outside the model's classes counts as a zero-probability prediction (log loss's clip bound)."""
    probabilities = [[0.7, 0.3], [0.2, 0.8]]
    seen = score("classification", ["a", "b"], probabilities, labels=["a", "b"])
    unseen = score("classification", ["a", "c"], probabilities, labels=["a", "b"])
    by_hand = log_loss(["a", "c"], [[0.7, 0.3, 0.0], [0.2, 0.8, 0.0]], labels=["a", "b", "c"])
    assert unseen == pytest.approx(by_hand) and unseen > 10 * seen


def test_unseen_classes_are_placed_in_sorted_column_order() -> None:
    """log_loss reads columns in sorted label order: an unseen class sorting first must not shift the others."""
    widened = score("classification", ["b", "c"], [[0.9, 0.1], [0.2, 0.8]], labels=["b", "c"])
    with_unseen = score("classification", ["b", "c", "a"], [[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]], labels=["b", "c"])
    assert with_unseen > widened
    expected = log_loss(["b", "c", "a"], [[0, 0.9, 0.1], [0, 0.2, 0.8], [0, 0.5, 0.5]], labels=["a", "b", "c"])
    assert with_unseen == pytest.approx(expected)
