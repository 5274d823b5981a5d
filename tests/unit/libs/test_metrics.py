"""Primary metrics per task."""

from __future__ import annotations

import math

import pytest

from aikube.metrics import known_classes, primary_metric, score


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


def test_known_classes_marks_the_rows_a_model_can_be_scored_on() -> None:
    """Regression scores every row; classification only rows of a class the model was trained on."""
    assert known_classes([1.0, 2.0], None).tolist() == [True, True]
    assert known_classes(["a", "z", "b"], ["a", "b"]).tolist() == [True, False, True]
