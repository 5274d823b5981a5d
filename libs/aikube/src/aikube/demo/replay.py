"""Replay a dataset in time order through the running loop, scoring each batch with the model serving at that moment."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from cloudevents.core.v1.event import CloudEvent
from pandas.tseries.frequencies import to_offset

from aikube.datasets import DatasetSpec
from aikube.demo.observer import Observer
from aikube.features import compute_features
from aikube.metrics import score
from aikube.registry import ModelRegistry
from aikube.sdk import DataSource, records_of
from aikube.serving import Predictor
from aikube.windows import iso_utc

OUTCOMES = ("model.v1.deployed", "model.v1.rejected", "training.v1.failed")
SECOND_NS = 10**9
MINUTE_NS = 60 * SECOND_NS


@dataclass(frozen=True)
class Batch:
    batch_id: str
    start: pd.Timestamp
    end: pd.Timestamp  # exclusive
    rows: pd.DataFrame  # rows whose timestamp falls in [start, end): the ones that can be scored
    unplaced: pd.DataFrame = field(default_factory=pd.DataFrame)  # rows without a usable timestamp, sent along

    @property
    def sent(self) -> pd.DataFrame:
        """Every row this batch carries to the ingestor, the unplaced ones included (it rejects those with a reason)."""
        return pd.concat([self.rows, self.unplaced]) if len(self.unplaced) else self.rows


@dataclass
class BatchScore:
    """How the served model and the static (first) model did on one batch, before it became training data."""

    batch_id: str
    start: str
    rows: int  # rows sent
    served_version: str | None
    served_error: float | None
    static_error: float | None
    decision: str = ""
    reason: str = ""
    scored_rows: int = 0  # rows both errors are computed on
    unreadable_rows: int = 0  # labelled rows not scored: a value does not cast to its declared type
    new_class_rows: int = 0  # labelled rows of a class the served model never saw (scored as its worst error)
    outcome: str = ""  # of the training this batch's decision requested: deployed, rejected or failed: <error>


def batch_id_format(grain: pd.DateOffset) -> str:
    """strftime format of batch ids: minutes, or seconds for sub-minute grains, so every batch start has its own id.

    Raises:
        ValueError: for grains under a second (ids would repeat).
    """
    if not isinstance(grain, pd.offsets.Tick) or grain.nanos >= MINUTE_NS:
        return "%Y%m%dT%H%M"  # calendar offsets (weeks, months) are longer than a minute
    if grain.nanos >= SECOND_NS:
        return "%Y%m%dT%H%M%S"
    raise ValueError(f"batch {grain.freqstr!r}: the replay grain must be at least one second")


def batches(spec: DatasetSpec, frame: pd.DataFrame) -> Iterator[Batch]:
    """Consecutive batches of the replay grain (`spec.batch`), from the first timestamp on; empty ones skipped.

    Timestamps are read as the ingestor reads them (ISO 8601, offsets converted to UTC). Rows whose timestamp is
    missing, unreadable or in the future (no source has data from 2099 yet) cannot be placed in time; they travel
    with the first batch, as a source sends what it has, so the ingestor rejects each with its reason and nothing
    is dropped here.

    Raises:
        ValueError: no timestamp is readable at all, or the grain is under a second.
    """
    grain = to_offset(spec.batch)
    id_format = batch_id_format(grain)
    stamps = pd.to_datetime(frame[spec.timestamp], utc=True, errors="coerce", format="ISO8601")
    placed = stamps.notna() & (stamps <= pd.Timestamp.now(tz="UTC"))
    if not placed.any():
        example = frame[spec.timestamp].iloc[0] if len(frame) else None
        raise ValueError(
            f"dataset {spec.name!r}: no row has a readable ISO 8601 timestamp in the past in {spec.timestamp!r}"
            f" (first value: {example!r})"
        )
    unplaced = frame[~placed]
    ordered = frame[placed].assign(_t=stamps[placed]).sort_values("_t", kind="stable")
    for start, rows in ordered.groupby(pd.Grouper(key="_t", freq=grain, origin="start"), sort=True):
        if len(rows):
            yield Batch(f"{spec.name}-{start:{id_format}}", start, start + grain, rows.drop(columns="_t"), unplaced)
            unplaced = frame.iloc[:0]


class Scorer:
    """Scores a batch with the model the registry says is serving (over HTTP) and with the first model (in process).

    Only labelled rows the models can read are scored: a value the feature SQL cannot cast to its declared type
    (which the ingestor rejects too) is left out and counted in `BatchScore.unreadable_rows`.
    Classification: a row of a class a model never saw counts as that model's worst error (aikube.metrics.score),
    so a model that learned a new class is credited for it; such rows are counted in `BatchScore.new_class_rows`.
    """

    def __init__(self, spec: DatasetSpec, registry: ModelRegistry) -> None:
        self.spec = spec
        self.registry = registry
        self.static: Predictor | None = None

    def score(self, batch: Batch) -> BatchScore:
        """Both models' error on the batch's labelled rows (errors None before a model serves or without labels)."""
        champion = self.registry.champion(self.spec.name)
        endpoint = self.registry.endpoint(self.spec.name)
        result = BatchScore(batch.batch_id, batch.start.isoformat(), len(batch.sent), None, None, None)
        labelled = batch.rows[batch.rows[self.spec.target].notna()]
        if champion is None or endpoint is None or labelled.empty:
            return result
        readable = _readable(self.spec, labelled)
        result.unreadable_rows = int((~readable).sum())
        labelled = labelled[readable]
        if labelled.empty:
            return result
        if self.static is None:  # the first model ever deployed is the "train once, never again" baseline
            self.static = Predictor.from_artifact(self.registry.artifact(champion.model, champion.version))
        features = labelled.drop(columns=[self.spec.target])
        served, served_classes = _predict_http(endpoint, records_of(features))
        static, static_classes = self.static.predict(features), self.static.classes
        truth = labelled[self.spec.target]
        result.served_version = champion.version
        result.scored_rows = len(labelled)
        if served_classes is not None:
            result.new_class_rows = int((~truth.isin(served_classes)).sum())
        result.served_error = self._error(truth, np.asarray(served), served_classes)
        result.static_error = self._error(truth, np.asarray(static), static_classes)
        return result

    def _error(self, truth: pd.Series, prediction: np.ndarray, classes: list[Any] | None) -> float:
        # labels: a batch holding only some of the classes still matches the model's probability columns
        return float(score(self.spec.task, truth, prediction, labels=classes))


def _readable(spec: DatasetSpec, rows: pd.DataFrame) -> np.ndarray:
    """Which rows the feature SQL can read (every value casts to its declared type, target included).

    Checked on the whole batch first; only when that fails, row by row, so a clean batch costs one query.
    """
    try:
        compute_features(spec, rows)
        return np.ones(len(rows), dtype=bool)
    except ValueError:
        return np.array([_reads(spec, rows.iloc[[position]]) for position in range(len(rows))], dtype=bool)


def _reads(spec: DatasetSpec, row: pd.DataFrame) -> bool:
    try:
        compute_features(spec, row)
    except ValueError:
        return False
    return True


def _predict_http(endpoint: str, records: list[dict[str, Any]]) -> tuple[list[Any], list[Any] | None]:
    """Predictions of a model server, with the classes of its probability columns (None for regression)."""
    request = urllib.request.Request(
        endpoint + "/predict",
        data=json.dumps({"records": records}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
        return body["predictions"], body.get("classes")


def replay(
    spec: DatasetSpec,
    plan: list[Batch],
    source: DataSource,
    observer: Observer,
    scorer: Scorer,
    *,
    alive: Callable[[], None],
    progress: Callable[[int, int, BatchScore], None],
    timeout_s: float = 300.0,
) -> list[BatchScore]:
    """Send every batch of `plan` (from `batches`) and wait for the loop to settle on it: its retrain decision and,
    if one was requested, the training's outcome. Settling keeps the replay in data time, as a live source would be.

    Raises:
        TimeoutError: the loop did not settle on a batch within `timeout_s`.
        DeadLettered: a message was dead-lettered while waiting (see Observer.wait_for).
    """
    scores = []
    for index, batch in enumerate(plan, start=1):
        scored = scorer.score(batch)
        source.publish_batch(
            spec.name, batch.batch_id, records=batch.sent, window=(iso_utc(batch.start), iso_utc(batch.end))
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
            outcome = observer.wait_for(
                lambda key, data, request_id=request_id: key in OUTCOMES and data.get("request_id") == request_id,
                timeout_s,
                f"outcome of training request {request_id}",
                alive,
            )
            scored.outcome = outcome_of(outcome)
        scores.append(scored)
        progress(index, len(plan), scored)
    return scores


def outcome_of(event: CloudEvent) -> str:
    """A training request's outcome in a word (deployed, rejected), or `failed: <the training's error>`."""
    word = event.get_type().rsplit(".", 1)[-1]  # dev.aikube.model.v1.deployed -> deployed
    data = event.get_data()
    if word == "failed" and isinstance(data, dict):
        return f"failed: {data.get('error', '')}"
    return word
