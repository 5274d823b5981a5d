"""Drift checks as pure functions: Evidently's per-column tests mapped into our own event-shaped result.

Evidently is imported inside check_drift only: its import takes 6-10 s and no other code path needs it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from aikube.metrics import primary_metric, score

DriftStatus = Literal["checked", "empty_window", "no_reference"]
# Evidently treats integer columns with at most this many distinct values as categories; we decide it once,
# from the reference, so a small window cannot flip a column's method from one check to the next.
CATEGORY_INT_LIMIT = 10
_UNSEEN_SHOWN = 5


class DriftCheckError(RuntimeError):
    """Evidently failed on the given frames; the message names the columns and the cause."""


@dataclass(frozen=True)
class DriftResult:
    """One window compared with the reference; `columns` items match DriftCheckedData.columns."""

    status: DriftStatus
    drifted: bool
    share: float
    threshold: float
    columns: list[dict[str, Any]]
    drifted_columns: list[str]  # DriftDetectedData.drifted_columns (includes drifted unseen_categories columns)
    report_html: str | None = None


def _is_categorical(reference: pd.Series) -> bool:
    if ptypes.is_bool_dtype(reference):
        return True
    if ptypes.is_integer_dtype(reference):
        return reference.nunique() <= CATEGORY_INT_LIMIT
    # Text is always a category here: Evidently's "text" drift (a trained classifier) suits prose, not ids.
    return not ptypes.is_numeric_dtype(reference)


def _prepared(series: pd.Series, categorical: bool) -> pd.Series:
    """Plain numpy-backed values Evidently reads the same way on both sides (nullable dtypes become NaN)."""
    if categorical:
        return series.map(str, na_action="ignore").astype(object)
    return pd.to_numeric(series, errors="coerce").astype("float64")


def _unseen(reference: pd.Series, current: pd.Series) -> list[str]:
    return sorted(set(current.dropna()) - set(reference.dropna()))


def _unseen_note(unseen: list[str]) -> str:
    shown = ", ".join(repr(value) for value in unseen[:_UNSEEN_SHOWN])
    more = f" (+{len(unseen) - _UNSEEN_SHOWN} more)" if len(unseen) > _UNSEEN_SHOWN else ""
    return f"unseen categories: {shown}{more}"


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _run_evidently(
    reference: pd.DataFrame, current: pd.DataFrame, categorical: list[str], numerical: list[str], share: float
) -> Any:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    columns = [*numerical, *categorical]
    report = Report([DataDriftPreset(columns=columns, drift_share=share)], include_tests=True)
    try:
        # Statistical tests on small or constant samples emit numpy RuntimeWarnings; the result says enough.
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            return report.run(
                current_data=Dataset.from_pandas(current, data_definition=definition),
                reference_data=Dataset.from_pandas(reference, data_definition=definition),
            )
    except Exception as exc:  # Evidently raises assorted types; the caller routes one
        raise DriftCheckError(f"evidently failed on columns {columns}: {type(exc).__name__}: {exc}") from exc


def _column_verdicts(snapshot: Any) -> dict[str, tuple[dict[str, Any], bool]]:
    """Per column: (method, score and threshold; whether Evidently's drift test failed)."""
    content = snapshot.dict()
    failed = {
        test["metric_config"]["metric_id"]: str(test["status"]).upper().endswith("FAIL") for test in content["tests"]
    }
    verdicts: dict[str, tuple[dict[str, Any], bool]] = {}
    for metric in content["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            measured = {
                "method": config["method"],
                "score": _finite(metric["value"]),
                "threshold": _finite(config["threshold"]),
            }
            verdicts[config["column"]] = (measured, failed[metric["id"]])
    return verdicts


def check_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str],
    share_threshold: float,
    *,
    with_report: bool = True,
) -> DriftResult:
    """Compare a window with the reference, column by column, and decide dataset drift.

    Evidently picks the test per column (K-S / chi² p-values for ≤ 1,000 reference rows, Wasserstein /
    Jensen-Shannon distances above). Columns that cannot be tested are reported, not raised: absent from a
    side (`error`) or with no values on a side (`all_missing`); they do not count in the share.
    Categories never seen in the reference are named (`unseen_categories`) and the column is still tested.

    Args:
        reference: rows the deployed model was trained on.
        current: the window to check.
        columns: the columns to compare.
        share_threshold: the window drifts when (drifted columns / tested columns) ≥ this.
        with_report: also render Evidently's HTML report (several MB).

    Returns:
        DriftResult; status `empty_window` for a window without rows, `no_reference` for an empty reference.

    Raises:
        DriftCheckError: Evidently failed on the tested columns.
    """
    if current.empty:
        return DriftResult("empty_window", False, 0.0, share_threshold, [], [])
    if reference.empty:
        return DriftResult("no_reference", False, 0.0, share_threshold, [], [])

    columns = list(dict.fromkeys(columns))  # a name asked twice is tested once
    entries: dict[str, dict[str, Any]] = {}
    categorical: list[str] = []
    numerical: list[str] = []
    prepared_reference: dict[str, pd.Series] = {}
    prepared_current: dict[str, pd.Series] = {}
    for name in columns:
        sides = [
            side for side, frame in (("reference", reference), ("current window", current)) if name not in frame.columns
        ]
        if sides:
            entries[name] = {"name": name, "status": "error", "note": f"column absent from the {' and '.join(sides)}"}
            continue
        empty = [
            side for side, frame in (("reference", reference), ("current window", current)) if frame[name].isna().all()
        ]
        if empty:
            note = f"no values in the {' and '.join(empty)}: not tested, not counted in the share"
            entries[name] = {"name": name, "status": "all_missing", "note": note}
            continue
        is_category = _is_categorical(reference[name])
        (categorical if is_category else numerical).append(name)
        prepared_reference[name] = _prepared(reference[name], is_category)
        prepared_current[name] = _prepared(current[name], is_category)
        entries[name] = {"name": name}

    tested = [*numerical, *categorical]
    if not tested:
        return DriftResult("checked", False, 0.0, share_threshold, [entries[name] for name in columns], [])

    snapshot = _run_evidently(
        pd.DataFrame(prepared_reference), pd.DataFrame(prepared_current), categorical, numerical, share_threshold
    )
    drifted_columns: list[str] = []
    for name, (measured, drifted) in _column_verdicts(snapshot).items():
        entries[name].update(measured, status="drifted" if drifted else "ok")
        if drifted:
            drifted_columns.append(name)
        unseen = _unseen(prepared_reference[name], prepared_current[name]) if name in categorical else []
        if unseen:
            verdict = "drift detected" if drifted else "no drift detected"
            entries[name].update(status="unseen_categories", note=f"{_unseen_note(unseen)}; {verdict}")
    share = len(drifted_columns) / len(tested)
    html = snapshot.get_html_str(as_iframe=False) if with_report else None
    listed = [entries[name] for name in columns]
    return DriftResult("checked", share >= share_threshold, share, share_threshold, listed, drifted_columns, html)


def performance(
    task: str,
    y_true: Any,
    prediction: Any,
    baseline: float,
    ratio_threshold: float,
    *,
    labels: list[Any] | None = None,
) -> dict[str, Any]:
    """Score the deployed model on a labeled window and compare with its holdout score (DriftCheckedData.performance).

    Args:
        task: "regression" or "classification".
        y_true: the window's true targets.
        prediction: the model's predictions (values, or class probabilities in `labels` order).
        baseline: the model's primary metric on its holdout slice.
        ratio_threshold: the model degraded when value / baseline ≥ this.
        labels: class order of the probability columns (classification).

    Raises:
        ValueError: no rows or mismatched shapes (from aikube.metrics.score).
    """
    value = score(task, y_true, prediction, labels=labels)
    result: dict[str, Any] = {"metric": primary_metric(task), "value": value, "baseline": baseline}
    if baseline > 0:
        result["ratio"] = value / baseline
        result["degraded"] = result["ratio"] >= ratio_threshold
    else:  # a perfect baseline has no ratio: any error at all is a degradation
        result["degraded"] = value > baseline
    return result
