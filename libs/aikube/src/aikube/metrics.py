"""The primary metric per task; lower is better for every metric here.

Example:
    >>> score("regression", [1.0, 2.0], [1.5, 2.5])
    0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import log_loss, mean_absolute_error

__all__ = ["primary_metric", "score"]

_PRIMARY: dict[str, str] = {"regression": "mae", "classification": "log_loss"}


def primary_metric(task: str) -> str:
    """Return the name of the primary metric of `task` ("mae" or "log_loss").

    Raises:
        ValueError: for an unknown task.
    """
    try:
        return _PRIMARY[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}: expected one of {sorted(_PRIMARY)}") from None


def score(task: str, y_true: Any, prediction: Any, *, labels: Sequence[Any] | None = None) -> float:
    """Compute the primary metric of `task`.

    Args:
        task: "regression" or "classification".
        y_true: the true values or classes.
        prediction: predicted values (regression) or the class-probability matrix (classification).
        labels: the classes in the order of the probability columns (a model's `classes_`); needed when
            y_true does not contain every class. A true class not among them gets probability 0, which log loss
            punishes to its clipping bound: a class the model never saw is its worst error, not a row to skip.

    Raises:
        ValueError: for an unknown task, no rows, or shapes that do not match.
    """
    metric = primary_metric(task)
    if len(y_true) == 0:
        raise ValueError("cannot score: no rows")
    if metric == "mae":
        return float(mean_absolute_error(y_true, prediction))
    probabilities = np.asarray(prediction, dtype=float)
    if labels is not None:
        probabilities, labels = _with_unseen_classes(np.asarray(y_true), probabilities, list(labels))
    return float(log_loss(y_true, probabilities, labels=labels))


def _with_unseen_classes(y_true: np.ndarray, probabilities: np.ndarray, labels: list[Any]) -> tuple[np.ndarray, Any]:
    """The probability matrix over labels ∪ y_true's classes, sorted as log_loss reads columns; unseen ones 0."""
    every = np.unique(np.concatenate([np.asarray(labels, dtype=y_true.dtype), y_true]))
    if len(every) == len(labels):
        return probabilities, labels
    widened = np.zeros((len(probabilities), len(every)))
    widened[:, np.searchsorted(every, np.asarray(labels, dtype=y_true.dtype))] = probabilities
    return widened, every
