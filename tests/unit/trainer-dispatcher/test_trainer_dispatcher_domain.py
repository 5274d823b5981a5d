"""Unit tests of the trainer's pure functions: job names, versions, the time split, fitting and the artifact."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from aikube.datasets import DatasetSpec
from aikube.features import compute_features
from aikube.serving import Predictor, make_artifact
from trainer_dispatcher.domain import TrainingError, TrainResult, job_name, model_version, train

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
FEATURES = {"ts": "timestamp", "temp": "float", "weather": "string"}


def spec_for(task: str = "regression", target: str = "riders") -> DatasetSpec:
    """A tiny dataset contract: a timestamp, one numeric and one text feature, a target."""
    columns = {**FEATURES, target: "float" if task == "regression" else "string"}
    return DatasetSpec(name="rides", timestamp="ts", target=target, task=task, columns=columns)


def raw_rows(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Hourly rows whose target depends on temp, weather and hour (learnable, with some noise)."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2011-01-01", periods=n, freq="h")
    temp = rng.uniform(0, 1, n)
    weather = rng.choice(["clear", "mist", "rain"], n)
    riders = 100 * temp + np.where(weather == "rain", -30.0, 0.0) + 2 * ts.hour + rng.normal(0, 3, n)
    return pd.DataFrame({"ts": ts, "temp": temp, "weather": weather, "riders": riders})


def features_of(spec: DatasetSpec, raw: pd.DataFrame) -> pd.DataFrame:
    """Features exactly as the warehouse SQL computes them."""
    return compute_features(spec, raw)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Fit with one OpenMP thread: on a busy 2-core machine thread spinning makes tiny fits take seconds."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    """200 hourly rows of the regression dataset."""
    return raw_rows(200)


@pytest.fixture(scope="module")
def features(raw: pd.DataFrame) -> pd.DataFrame:
    """Their features."""
    return features_of(spec_for(), raw)


@pytest.fixture(scope="module")
def trained(features: pd.DataFrame) -> TrainResult:
    """One regression fit shared by the tests that only read it."""
    return train(spec_for(), features)


def test_job_name_is_a_dns_label() -> None:
    """Odd request ids (upper case, colons, underscores) still give a valid Kubernetes name."""
    name = job_name("bike_share", "Drift:2011-03-01T00:00:00Z")
    assert DNS_LABEL.match(name) and len(name) <= 63


def test_job_name_of_long_inputs_fits_63_characters() -> None:
    """Long model names and request ids are truncated, the hash suffix kept."""
    name = job_name("m" * 63, "r" * 128)
    assert len(name) <= 63 and DNS_LABEL.match(name)


def test_job_name_is_deterministic() -> None:
    """The same request always maps to the same job (the idempotency fence)."""
    assert job_name("bikeshare", "drift-1") == job_name("bikeshare", "drift-1")


def test_job_names_of_different_requests_differ_even_when_truncated() -> None:
    """Requests sharing a long prefix still get distinct names."""
    prefix = "x" * 100
    assert job_name("bikeshare", prefix + "a") != job_name("bikeshare", prefix + "b")


def test_job_name_separates_model_and_request() -> None:
    """('a-b', 'c') and ('a', 'b-c') read alike but are different requests."""
    assert job_name("a-b", "c") != job_name("a", "b-c")


def test_model_version_sorts_by_window_end() -> None:
    """Versions sort by the data end of their training window."""
    early = model_version(datetime(2011, 3, 1), "zzz")
    late = model_version(datetime(2011, 3, 8), "aaa")
    assert re.match(r"^20110301T0000-[0-9a-f]{6}$", early) and early < late


def test_model_version_reads_offsets_as_utc() -> None:
    """An aware window end names the same version as its naive UTC equivalent."""
    aware = datetime(2011, 3, 1, tzinfo=timezone.utc)
    assert model_version(aware, "r1") == model_version(datetime(2011, 3, 1), "r1")


def test_model_version_differs_per_request() -> None:
    """Two requests ending at the same time get different versions."""
    end = datetime(2011, 3, 1)
    assert model_version(end, "drift-1") != model_version(end, "schedule-1")


def test_holdout_is_the_most_recent_share(trained: TrainResult) -> None:
    """Every held-back row is later than every training row, and `holdout` of the rows are held back."""
    assert trained.train_window["end"] == trained.holdout_window["start"]
    assert (trained.rows, trained.holdout_rows) == (160, 40)


def test_windows_cover_the_data_half_open(trained: TrainResult, raw: pd.DataFrame) -> None:
    """train_window starts at the first row; holdout_window ends just after the last row."""
    assert trained.train_window["start"] == datetime(2011, 1, 1, tzinfo=timezone.utc)
    last = raw["ts"].iloc[-1].tz_localize("UTC").to_pydatetime()
    assert trained.holdout_window["start"] <= last < trained.holdout_window["end"]


def test_model_beats_the_mean_on_the_holdout() -> None:
    """The fitted model's holdout MAE is well below predicting the training mean."""
    spec = spec_for()
    features = features_of(spec, raw_rows(400))
    result = train(spec, features)
    holdout = features.iloc[-result.holdout_rows :]["riders"]
    naive = float((holdout - features.iloc[: result.rows]["riders"].mean()).abs().mean())
    assert result.metric == "mae" and result.metrics["mae"] < naive / 2


def test_training_is_deterministic(trained: TrainResult, features: pd.DataFrame) -> None:
    """Same features, same score: the random state is fixed."""
    assert train(spec_for(), features).metrics == trained.metrics


def test_rows_without_target_are_ignored() -> None:
    """Unlabeled rows do not count as training or held-back rows."""
    spec = spec_for()
    raw = raw_rows(200)
    raw.loc[:49, "riders"] = np.nan
    result = train(spec, features_of(spec, raw))
    assert result.rows + result.holdout_rows == 150


def test_missing_target_column_is_a_training_error(features: pd.DataFrame) -> None:
    """Features without the target column cannot train: a clear TrainingError naming it."""
    with pytest.raises(TrainingError, match="riders"):
        train(spec_for(), features.drop(columns="riders"))


def test_too_few_rows_is_a_training_error() -> None:
    """Fewer than 20 training rows is refused with the counts."""
    spec = spec_for()
    with pytest.raises(TrainingError, match="too few labeled rows: 19 to train"):
        train(spec, features_of(spec, raw_rows(24)))


def test_single_class_is_a_training_error() -> None:
    """A classifier needs two classes in its training rows."""
    spec = spec_for("classification", target="busy")
    raw = raw_rows(100).assign(busy="yes").drop(columns="riders")
    with pytest.raises(TrainingError, match="single class"):
        train(spec, features_of(spec, raw))


def test_classifier_scores_log_loss_and_predicts_probabilities() -> None:
    """Classification trains a classifier scored by log loss, whose artifact predicts probabilities."""
    spec = spec_for("classification", target="busy")
    raw = raw_rows(300)
    raw["busy"] = np.where(raw["riders"] > raw["riders"].median(), "yes", "no")
    raw = raw.drop(columns="riders")
    result = train(spec, features_of(spec, raw))
    probabilities = Predictor.from_artifact(make_artifact(result.pipeline, spec)).predict(raw.head(3))
    assert result.metric == "log_loss" and np.allclose(probabilities.sum(axis=1), 1.0)


def test_artifact_serves_the_same_predictions(trained: TrainResult, raw: pd.DataFrame, features: pd.DataFrame) -> None:
    """The artifact loads in the Predictor and predicts from raw records exactly as the fitted pipeline."""
    predictor = Predictor.from_artifact(make_artifact(trained.pipeline, spec_for()))
    records = raw.drop(columns="riders").head(5).assign(ts=lambda f: f["ts"].astype(str)).to_dict("records")
    expected = trained.pipeline.predict(features.head(5)[predictor.columns])
    assert np.allclose(predictor.predict(records), expected)


def test_unknown_category_and_missing_values_predict(trained: TrainResult) -> None:
    """A category never seen in training and a missing feature value still get a prediction."""
    predictor = Predictor.from_artifact(make_artifact(trained.pipeline, spec_for()))
    records = [{"ts": "2011-02-01 08:00:00", "temp": None, "weather": "snow"}]
    assert np.isfinite(predictor.predict(records)).all()
