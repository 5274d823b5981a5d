"""Training as pure functions: name the job, split by time, fit, score the recent slice, name the version."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from aikube.datasets import DatasetSpec
from aikube.features import model_columns
from aikube.metrics import primary_metric, score
from aikube.windows import utc

MIN_TRAIN_ROWS = 20
MIN_HOLDOUT_ROWS = 5
RANDOM_STATE = 0
_LABEL_MAX = 63  # Kubernetes DNS-1123 label
_HASH_CHARS = 10


class TrainingError(ValueError):
    """The features cannot produce a model (no target, too few rows, one class); the message says which."""


@dataclass(frozen=True)
class TrainResult:
    """A fitted pipeline with its score on the most recent held-back slice and the data windows used.

    Windows are half-open [start, end) in UTC data time; `rows` counts training rows.
    """

    pipeline: Pipeline
    metric: str
    metrics: dict[str, float]
    train_window: dict[str, datetime]
    holdout_window: dict[str, datetime]
    rows: int
    holdout_rows: int


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def job_name(model: str, request_id: str) -> str:
    """Deterministic Kubernetes Job name for a training request: a valid DNS-1123 label of ≤ 63 characters.

    The readable part may be truncated; the hash suffix keeps distinct requests distinct, and the same
    request always gets the same name, which makes a second submission collide instead of running twice.
    """
    suffix = _digest(model, request_id)[:_HASH_CHARS]
    readable = re.sub(r"[^a-z0-9]+", "-", f"train-{model}-{request_id}".lower())
    readable = readable[: _LABEL_MAX - len(suffix) - 1].strip("-")
    return f"{readable}-{suffix}"


def _utc(stamp: pd.Timestamp) -> datetime:
    """An aware UTC datetime; naive stamps are UTC data time already (the ingestor stores them so)."""
    return utc(stamp).to_pydatetime()


def model_version(window_end: datetime, request_id: str) -> str:
    """Version name that sorts by the training data's end, e.g. "20110301T0000-3f2a1c"."""
    return f"{_utc(pd.Timestamp(window_end)):%Y%m%dT%H%M}-{_digest(request_id)[:6]}"


def _categorical(spec: DatasetSpec, columns: list[str]) -> list[str]:
    """Text columns: the declared strings."""
    return [c for c in columns if spec.columns.get(c) == "string"]


def build_pipeline(spec: DatasetSpec) -> Pipeline:
    """The unfitted model: numeric columns as they are, text columns ordinal-encoded, then gradient boosting."""
    columns = model_columns(spec)
    categorical = _categorical(spec, columns)
    numeric = [c for c in columns if c not in categorical]
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    prepare = ColumnTransformer(
        [("numeric", "passthrough", numeric), ("categorical", encoder, categorical)],
        verbose_feature_names_out=False,
    )
    # Pandas output keeps nullable columns (Int64 with NA, as the warehouse returns them) readable by the model.
    prepare.set_output(transform="pandas")
    estimator = (
        HistGradientBoostingRegressor(random_state=RANDOM_STATE)
        if spec.task == "regression"
        else HistGradientBoostingClassifier(random_state=RANDOM_STATE)
    )
    return Pipeline([("prepare", prepare), ("model", estimator)])


def train(spec: DatasetSpec, features: pd.DataFrame) -> TrainResult:
    """Fit the dataset's model on its features, holding back the most recent `spec.holdout` share for scoring.

    The split is by time: every holdout row is at or after the cutoff, every training row before it.

    Args:
        spec: the dataset (task, target, timestamp, columns, holdout share).
        features: feature rows as feature_sql produces them; rows without a target are ignored.

    Raises:
        TrainingError: the target or a model column is missing, too few labeled rows (< 20 to train or
            < 5 held back), or a classification target with a single class.
    """
    columns = model_columns(spec)
    absent = [c for c in (spec.timestamp, spec.target, *columns) if c not in features.columns]
    if absent:
        raise TrainingError(f"dataset {spec.name!r}: features lack columns {absent}")
    labeled = features[features[spec.target].notna()].sort_values(spec.timestamp, kind="stable")
    times = pd.to_datetime(labeled[spec.timestamp])
    if labeled.empty:
        raise TrainingError(f"dataset {spec.name!r}: no rows with target {spec.target!r}")
    cutoff = times.iloc[len(labeled) - math.ceil(len(labeled) * spec.holdout)]
    fit_rows, holdout_rows = labeled[times < cutoff], labeled[times >= cutoff]
    if len(fit_rows) < MIN_TRAIN_ROWS or len(holdout_rows) < MIN_HOLDOUT_ROWS:
        raise TrainingError(
            f"dataset {spec.name!r}: too few labeled rows: {len(fit_rows)} to train (need {MIN_TRAIN_ROWS}) and "
            f"{len(holdout_rows)} held back (need {MIN_HOLDOUT_ROWS})"
        )
    target = fit_rows[spec.target]
    if spec.task == "classification" and target.nunique() < 2:
        raise TrainingError(f"dataset {spec.name!r}: target {spec.target!r} has a single class in the training rows")

    pipeline = build_pipeline(spec).fit(fit_rows[columns], target)
    metric = primary_metric(spec.task)
    value = _holdout_score(spec, pipeline, holdout_rows[columns], holdout_rows[spec.target])
    return TrainResult(
        pipeline=pipeline,
        metric=metric,
        metrics={metric: value},
        train_window={"start": _utc(times.iloc[0]), "end": _utc(cutoff)},
        # The last row's instant plus the smallest step keeps the interval half-open and still covering it.
        holdout_window={"start": _utc(cutoff), "end": _utc(times.iloc[-1]) + timedelta(microseconds=1)},
        rows=len(fit_rows),
        holdout_rows=len(holdout_rows),
    )


def _holdout_score(spec: DatasetSpec, pipeline: Pipeline, x: pd.DataFrame, y: pd.Series) -> float:
    if spec.task == "regression":
        return score(spec.task, y, pipeline.predict(x))
    try:
        return score(spec.task, y, pipeline.predict_proba(x), labels=list(pipeline.classes_))
    except ValueError as exc:  # e.g. a class that appears only in the held-back slice
        raise TrainingError(f"dataset {spec.name!r}: cannot score the held-back rows: {exc}") from exc
