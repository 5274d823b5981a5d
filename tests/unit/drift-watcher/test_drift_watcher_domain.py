"""Unit tests of the drift-watcher's pure checks (Evidently runs for real, on small frames)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest

from drift_watcher.domain import DriftResult, check_drift, performance

SCHEMA = Path(__file__).parents[3] / "events" / "schemas" / "drift" / "v1" / "DriftCheckedData.json"


def frame(n: int, seed: int, shift: float = 0.0, weather: tuple[str, ...] = ("clear", "mist", "rain")) -> pd.DataFrame:
    """`n` rows: a numeric temp (shifted by `shift`) and a categorical weather drawn from `weather`."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"temp": rng.normal(shift, 1.0, n), "weather": rng.choice(list(weather), n)})


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    """300 reference rows (≤ 1,000: Evidently uses K-S and chi² p-values)."""
    return frame(300, seed=1)


@pytest.fixture(scope="module")
def stable(reference: pd.DataFrame) -> DriftResult:
    """A window from the reference's distribution (a seed without a chance false alarm at p < 0.05)."""
    return check_drift(reference, frame(150, seed=5), ["temp", "weather"], 0.5, with_report=False)


@pytest.fixture(scope="module")
def shifted(reference: pd.DataFrame) -> DriftResult:
    """A window where both columns moved, with the HTML report."""
    current = frame(150, seed=3, shift=2.0, weather=("rain",))
    return check_drift(reference, current, ["temp", "weather"], 0.5, with_report=True)


def column(result: DriftResult, name: str) -> dict:
    """The result entry of one column."""
    return next(entry for entry in result.columns if entry["name"] == name)


def test_same_distribution_does_not_drift(stable: DriftResult) -> None:
    """A window drawn like the reference is checked and not drifted."""
    assert (stable.status, stable.drifted, stable.share) == ("checked", False, 0.0)
    assert [entry["status"] for entry in stable.columns] == ["ok", "ok"]


def test_moved_columns_drift(shifted: DriftResult) -> None:
    """Both moved columns drift, so the share is 1 and the window drifts."""
    assert (shifted.drifted, shifted.share, shifted.drifted_columns) == (True, 1.0, ["temp", "weather"])


def test_columns_carry_evidently_method_score_threshold(shifted: DriftResult) -> None:
    """Each tested column reports the test Evidently chose, its score and threshold."""
    temp, weather = column(shifted, "temp"), column(shifted, "weather")
    assert (temp["method"], temp["threshold"]) == ("K-S p_value", 0.05)
    assert weather["method"].startswith("chi-square") and weather["score"] < 0.05


def test_report_html_is_rendered_on_request(shifted: DriftResult, stable: DriftResult) -> None:
    """The Evidently HTML report is produced with with_report=True, and skipped otherwise."""
    assert shifted.report_html is not None and "<html" in shifted.report_html.lower()
    assert stable.report_html is None


def test_result_fits_the_event_schema(shifted: DriftResult) -> None:
    """Columns and share go into DriftCheckedData as they are: JSON-serialisable and schema-valid."""
    data = {
        "model": "rides",
        "dataset": "rides",
        "batch_id": "b1",
        "status": shifted.status,
        "rows": 150,
        "drifted": shifted.drifted,
        "share": shifted.share,
        "threshold": shifted.threshold,
        "columns": json.loads(json.dumps(shifted.columns)),
    }
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))


def test_share_threshold_decides_dataset_drift(reference: pd.DataFrame) -> None:
    """With one of two columns drifted (share 0.5) the window drifts at threshold 0.5, not at 0.75."""
    current = frame(150, seed=4, shift=2.0).assign(weather=frame(150, seed=5)["weather"])
    at_half = check_drift(reference, current, ["temp", "weather"], 0.5)
    assert (at_half.share, at_half.drifted) == (0.5, True)
    assert not check_drift(reference, current, ["temp", "weather"], 0.75).drifted


def test_empty_window_is_a_result_not_an_error(reference: pd.DataFrame) -> None:
    """A window without rows gives status empty_window and no drift."""
    result = check_drift(reference, reference.iloc[:0], ["temp"], 0.5)
    assert (result.status, result.drifted, result.columns) == ("empty_window", False, [])


def test_empty_reference_is_no_reference(reference: pd.DataFrame) -> None:
    """Without reference rows nothing can be compared: status no_reference."""
    assert check_drift(reference.iloc[:0], reference, ["temp"], 0.5).status == "no_reference"


def test_all_missing_current_column_is_excluded(reference: pd.DataFrame) -> None:
    """A column with no values in the window is all_missing and not counted in the share."""
    current = frame(150, seed=6, shift=2.0).assign(weather=None)
    result = check_drift(reference, current, ["temp", "weather"], 0.5)
    assert column(result, "weather")["status"] == "all_missing"
    assert "current window" in column(result, "weather")["note"]
    assert (result.share, result.drifted) == (1.0, True)  # 1 drifted of 1 tested


def test_all_missing_reference_column_is_excluded(reference: pd.DataFrame) -> None:
    """A column with no reference values is all_missing, and the note says the reference."""
    result = check_drift(reference.assign(temp=np.nan), frame(150, seed=7), ["temp", "weather"], 0.5)
    assert column(result, "temp")["status"] == "all_missing" and "reference" in column(result, "temp")["note"]


def test_no_testable_column_is_a_clear_result(reference: pd.DataFrame) -> None:
    """When every column is all missing, the result says so instead of raising."""
    current = frame(10, seed=8).assign(temp=np.nan, weather=None)
    result = check_drift(reference, current, ["temp", "weather"], 0.5)
    assert (result.status, result.drifted, result.share) == ("checked", False, 0.0)
    assert {entry["status"] for entry in result.columns} == {"all_missing"}


def test_absent_column_is_an_error_entry(reference: pd.DataFrame) -> None:
    """A requested column missing from the window is reported as error, not raised."""
    result = check_drift(reference, frame(150, seed=9).drop(columns="weather"), ["temp", "weather"], 0.5)
    assert column(result, "weather") == {
        "name": "weather",
        "status": "error",
        "note": "column absent from the current window",
    }


def test_unseen_categories_are_named_and_still_tested(reference: pd.DataFrame) -> None:
    """Categories the reference never had are listed; the column is still tested and counted."""
    current = frame(150, seed=10, weather=("clear", "mist", "rain", "snow", "hail"))
    weather = column(check_drift(reference, current, ["temp", "weather"], 0.5), "weather")
    assert weather["status"] == "unseen_categories"
    assert "'hail', 'snow'" in weather["note"] and "method" in weather


def test_nullable_window_dtypes_are_compared_like_the_reference() -> None:
    """A window whose ints arrive as nullable Int64 (as the warehouse returns them) is tested, not skipped."""
    rng = np.random.default_rng(11)
    reference = pd.DataFrame({"hour": rng.integers(0, 24, 300)})
    current = pd.DataFrame({"hour": pd.array([*rng.integers(0, 24, 99), None], dtype="Int64")})
    entry = column(check_drift(reference, current, ["hour"], 0.5), "hour")
    assert entry["status"] == "ok" and entry["method"] == "K-S p_value"


def test_performance_ratio_and_degradation() -> None:
    """MAE 20 against a baseline of 10 is ratio 2: degraded at threshold 1.5."""
    result = performance("regression", [0.0, 0.0], [20.0, -20.0], baseline=10.0, ratio_threshold=1.5)
    assert result == {"metric": "mae", "value": 20.0, "baseline": 10.0, "ratio": 2.0, "degraded": True}


def test_performance_below_threshold_is_not_degraded() -> None:
    """MAE 12 against 10 (ratio 1.2) is not degraded at 1.5."""
    assert not performance("regression", [0.0], [12.0], baseline=10.0, ratio_threshold=1.5)["degraded"]


def test_performance_with_zero_baseline_has_no_ratio() -> None:
    """A perfect baseline has no ratio; any error then counts as degraded."""
    result = performance("regression", [0.0], [1.0], baseline=0.0, ratio_threshold=1.5)
    assert "ratio" not in result and result["degraded"]


def test_performance_scores_classification_by_log_loss() -> None:
    """Classification uses log loss on class probabilities in the model's class order."""
    result = performance(
        "classification",
        ["no", "yes"],
        [[0.9, 0.1], [0.2, 0.8]],
        baseline=0.1,
        ratio_threshold=1.5,
        labels=["no", "yes"],
    )
    assert result["metric"] == "log_loss" and result["degraded"]
