"""Replay a dataset in time order through the running loop, scoring each batch with the model serving at that moment."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from aikube.datasets import DatasetSpec
from aikube.demo.observer import Observer
from aikube.metrics import score
from aikube.registry import ModelRegistry
from aikube.sdk import DataSource, records_of
from aikube.serving import Predictor
from aikube.windows import iso_utc

OUTCOMES = ("model.v1.deployed", "model.v1.rejected", "training.v1.failed")


@dataclass(frozen=True)
class Batch:
    batch_id: str
    start: pd.Timestamp
    end: pd.Timestamp  # exclusive
    rows: pd.DataFrame


@dataclass
class BatchScore:
    """How the served model and the static (first) model did on one batch, before it became training data."""

    batch_id: str
    start: str
    rows: int
    served_version: str | None
    served_error: float | None
    static_error: float | None
    decision: str = ""
    reason: str = ""


def batches(spec: DatasetSpec, frame: pd.DataFrame) -> Iterator[Batch]:
    """Consecutive batches of the replay grain (`spec.batch`), from the first timestamp on; empty ones skipped."""
    stamps = pd.to_datetime(frame[spec.timestamp])
    ordered = frame.assign(_t=stamps).sort_values("_t", kind="stable")
    grain = to_offset(spec.batch)
    for start, rows in ordered.groupby(pd.Grouper(key="_t", freq=grain, origin="start"), sort=True):
        if len(rows):
            yield Batch(f"{spec.name}-{start:%Y%m%dT%H%M}", start, start + grain, rows.drop(columns="_t"))


class Scorer:
    """Scores a batch with the model the registry says is serving (over HTTP) and with the first model (in process)."""

    def __init__(self, spec: DatasetSpec, registry: ModelRegistry) -> None:
        self.spec = spec
        self.registry = registry
        self.static: Predictor | None = None

    def score(self, batch: Batch) -> BatchScore:
        champion = self.registry.champion(self.spec.name)
        endpoint = self.registry.endpoint(self.spec.name)
        result = BatchScore(batch.batch_id, batch.start.isoformat(), len(batch.rows), None, None, None)
        labelled = batch.rows[batch.rows[self.spec.target].notna()]
        if champion is None or endpoint is None or labelled.empty:
            return result
        if self.static is None:  # the first model ever deployed is the "train once, never again" baseline
            self.static = Predictor.from_artifact(self.registry.artifact(champion.model, champion.version))
        features = labelled.drop(columns=[self.spec.target])
        result.served_version = champion.version
        result.served_error = self._error(labelled, _predict_http(endpoint, records_of(features)))
        result.static_error = self._error(labelled, self.static.predict(features))
        return result

    def _error(self, labelled: pd.DataFrame, prediction: Any) -> float:
        return float(score(self.spec.task, labelled[self.spec.target], np.asarray(prediction)))


def _predict_http(endpoint: str, records: list[dict[str, Any]]) -> list[Any]:
    request = urllib.request.Request(
        endpoint + "/predict",
        data=json.dumps({"records": records}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        predictions: list[Any] = json.loads(response.read())["predictions"]
        return predictions


def replay(
    spec: DatasetSpec,
    frame: pd.DataFrame,
    source: DataSource,
    observer: Observer,
    scorer: Scorer,
    *,
    alive: Callable[[], None],
    progress: Callable[[int, int, BatchScore], None],
    max_batches: int | None = None,
    timeout_s: float = 300.0,
) -> list[BatchScore]:
    """Send every batch and wait for the loop to settle on it: its retrain decision and, if one was requested,
    the training's outcome. Settling keeps the replay in data time, as a live source would be."""
    plan = list(batches(spec, frame))[:max_batches]
    scores = []
    for index, batch in enumerate(plan, start=1):
        scored = scorer.score(batch)
        source.publish_batch(
            spec.name, batch.batch_id, records=batch.rows, window=(iso_utc(batch.start), iso_utc(batch.end))
        )
        decided = observer.wait_for(
            lambda key, data, batch_id=batch.batch_id: key == "retrain.v1.decided" and data.get("batch_id") == batch_id,
            timeout_s,
            f"retrain decision for batch {batch.batch_id}",
            alive,
        ).get_data()
        assert isinstance(decided, dict)
        scored.decision, scored.reason = decided["decision"], decided["reason"]
        if decided["decision"] == "requested":
            request_id = decided["request_id"]
            observer.wait_for(
                lambda key, data, request_id=request_id: key in OUTCOMES and data.get("request_id") == request_id,
                timeout_s,
                f"outcome of training request {request_id}",
                alive,
            )
        scores.append(scored)
        progress(index, len(plan), scored)
    return scores
