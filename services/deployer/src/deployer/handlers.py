"""Deployer handlers: a trained candidate faces the champion on the same recent slice; the winner serves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from aikube.datasets import DatasetCatalog, DatasetSpec
from aikube.envelope import Emit, EventContext
from aikube.features import window_rows
from aikube.metrics import score
from aikube.registry import ModelRegistry, ModelVersion
from aikube.rollout import RolloutFailed, ServingBackend
from aikube.runtime import Router
from aikube.serving import Predictor
from aikube.tables import features_table, model_subject
from aikube.warehouse import Warehouse
from deployer import domain

router = Router()


@dataclass(frozen=True)
class Deps:
    registry: ModelRegistry
    warehouse: Warehouse
    datasets: DatasetCatalog
    serving: ServingBackend

    def close(self) -> None:
        self.serving.close()


@router.handler("training.v1.completed")
def on_training_completed(data: dict[str, Any], ctx: EventContext, deps: Deps) -> Emit:
    """Gate, then roll out; a candidate that loses or fails to come up is rejected and the champion keeps serving."""
    model, version = data["model"], data["version"]
    spec = deps.datasets.get(model)  # one model per dataset, named after it
    candidate = deps.registry.get(model, version)
    champion = deps.registry.champion(model)
    outcome: dict[str, Any] = {"model": model, "version": version, "request_id": data["request_id"]}
    if champion is not None and champion.version == version:  # redelivered after the promotion
        return _deployed(outcome, candidate, deps.registry.endpoint(model) or "", None, {})

    holdout = _slice(deps.warehouse, spec, candidate)
    compared = _scores(spec, [candidate] if champion is None else [candidate, champion], holdout, deps)
    if compared is None:  # a rejection the scheduler hears of, so the request does not stay in flight
        reason = "the holdout slice has no rows to compare on"
        return Emit("model.v1.rejected", {**outcome, "reason": reason}, subject=model_subject(model))
    scores = {"metric": candidate.metric, "candidate_score": compared[0]}
    if champion is not None:
        scores["champion_score"] = compared[1]
    decision = domain.gate(spec.task, scores["candidate_score"], scores.get("champion_score"), spec.gate.tolerance)
    rejected = {**outcome, **scores, **({"champion_version": champion.version} if champion else {})}
    if not decision.promote:
        return Emit("model.v1.rejected", {**rejected, "reason": decision.reason}, subject=model_subject(model))
    try:
        endpoint = deps.serving.deploy(model, version, candidate.artifact_uri)
    except RolloutFailed as exc:
        return Emit("model.v1.rejected", {**rejected, "reason": f"rollout failed: {exc}"}, subject=model_subject(model))
    deps.registry.promote(model, version, endpoint=endpoint)
    deps.serving.retire(model, keep=version)
    return _deployed(outcome, candidate, endpoint, champion, scores)


def _deployed(
    outcome: dict[str, Any], candidate: ModelVersion, endpoint: str, previous: ModelVersion | None, scores: dict
) -> Emit:
    deployed = {**outcome, **scores, "endpoint": endpoint, "train_window": candidate.train_window}
    if previous is not None:
        deployed["previous_version"] = previous.version
    return Emit("model.v1.deployed", deployed, subject=model_subject(candidate.model))


def _slice(warehouse: Warehouse, spec: DatasetSpec, candidate: ModelVersion) -> pd.DataFrame:
    """The candidate's held-back recent rows: neither model trained on them."""
    return window_rows(warehouse, spec, features_table(spec.name), candidate.holdout_window or {})


def _scores(spec: DatasetSpec, versions: list[ModelVersion], rows: pd.DataFrame, deps: Deps) -> list[float] | None:
    """Each version's error on the same rows (a class a version never saw is its worst error); None without rows."""
    if rows.empty:
        return None
    predictors = [Predictor.from_artifact(deps.registry.artifact(v.model, v.version)) for v in versions]
    return [float(score(spec.task, rows[spec.target], p.predict(rows), labels=p.classes)) for p in predictors]
