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

__all__ = ["known_classes", "primary_metric", "score"]

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
            y_true does not contain every class.

    Raises:
        ValueError: for an unknown task, no rows, or shapes that do not match.
    """
    metric = primary_metric(task)
    if len(y_true) == 0:
        raise ValueError("cannot score: no rows")
    if metric == "mae":
        return float(mean_absolute_error(y_true, prediction))
    return float(log_loss(y_true, np.asarray(prediction), labels=labels))


def known_classes(y_true: Any, classes: Sequence[Any] | None) -> np.ndarray:
    """The rows a model can be scored on: all of them for regression (no classes), else those whose class the
    model was trained on (log loss has no probability for a class the model never saw)."""
    truth = np.asarray(y_true)
    return np.ones(len(truth), dtype=bool) if classes is None else np.isin(truth, list(classes))
