"""The evaluation gate's scoring: both models on the same rows; a class a model never saw is its worst error."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from aikube.datasets import DatasetCatalog, DatasetSpec
from aikube.features import compute_features, model_columns
from aikube.registry import ModelRegistry, ModelVersion
from aikube.serving import Predictor, make_artifact
from aikube.storage import MemoryObjectStore
from deployer.handlers import Deps, _scores

SPEC = DatasetSpec(
    name="weather",
    timestamp="ts",
    target="y",
    task="classification",
    columns={"ts": "timestamp", "x": "float", "y": "string"},
)


def rows(x: list[float], y: list[str]) -> pd.DataFrame:
    return compute_features(SPEC, pd.DataFrame({"ts": "2021-01-01T00:00:00", "x": x, "y": y}))


def register(registry: ModelRegistry, version: str, x: list[float], y: list[str]) -> ModelVersion:
    features = rows(x, y)
    pipeline = LogisticRegression().fit(features[model_columns(SPEC)], features["y"])
    return registry.register("weather", version, make_artifact(pipeline, SPEC), metric="log_loss", metrics={})


def probabilities(deps: Deps, version: ModelVersion, frame: pd.DataFrame) -> object:
    return Predictor.from_artifact(deps.registry.artifact(version.model, version.version)).predict(frame)


@pytest.fixture
def deps() -> Deps:
    store = MemoryObjectStore()
    return Deps(ModelRegistry(store), None, DatasetCatalog(store), None)  # type: ignore[arg-type]


def test_a_slice_missing_a_class_is_scored_against_every_class(deps: Deps) -> None:
    candidate = register(deps.registry, "v2", [0, 1, 2, 3, 4, 5], ["a", "a", "b", "b", "c", "c"])
    holdout = rows([0.5, 4.5], ["a", "c"])  # no "b"
    (error,) = _scores(SPEC, [candidate], holdout, deps) or []
    expected = log_loss(holdout["y"], probabilities(deps, candidate, holdout), labels=["a", "b", "c"])
    assert error == pytest.approx(expected)


def test_a_class_the_champion_never_saw_is_its_worst_error_so_the_candidate_wins(deps: Deps) -> None:
    candidate = register(deps.registry, "v2", [0, 1, 2, 3, 4, 5], ["a", "a", "b", "b", "c", "c"])
    champion = register(deps.registry, "v1", [0, 1, 2, 3], ["a", "a", "b", "b"])  # never saw "c"
    holdout = rows([0.5, 2.5, 4.5], ["a", "b", "c"])
    candidate_score, champion_score = _scores(SPEC, [candidate, champion], holdout, deps) or []
    assert candidate_score == pytest.approx(
        log_loss(holdout["y"], probabilities(deps, candidate, holdout), labels=["a", "b", "c"])
    )
    assert champion_score > 5 * candidate_score


def test_an_empty_slice_is_none(deps: Deps) -> None:
    candidate = register(deps.registry, "v2", [0, 1, 2, 3], ["a", "a", "b", "b"])
    assert _scores(SPEC, [candidate], rows([], []), deps) is None
