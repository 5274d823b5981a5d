"""Drift-watcher handlers: every feature batch is compared with the deployed model's reference.

The reference is the training window of the registry's champion, read at each check: after a deployment the very
next window is compared with the new model's data, with no cache to fall out of step with what serves.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from aikube.datasets import DatasetCatalog, DatasetSpec
from aikube.envelope import Emit, EventContext
from aikube.features import snapshot_rows, window_rows
from aikube.registry import ModelRegistry, ModelVersion
from aikube.runtime import Router
from aikube.serving import Predictor
from aikube.storage import ObjectStore
from aikube.tables import model_subject
from aikube.warehouse import Warehouse
from drift_watcher import domain

router = Router()


@dataclass
class Deps:
    store: ObjectStore
    warehouse: Warehouse
    datasets: DatasetCatalog
    registry: ModelRegistry
    _predictors: dict[tuple[str, str], Predictor] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def predictor(self, champion: ModelVersion) -> Predictor:
        """The champion's predictor, loaded once per version."""
        key = (champion.model, champion.version)
        with self._lock:
            if key not in self._predictors:
                self._predictors[key] = Predictor.from_artifact(self.registry.artifact(*key))
            return self._predictors[key]


@router.handler("featureSet.v1.built")
def on_feature_set_built(data: dict[str, Any], ctx: EventContext, deps: Deps) -> list[Emit]:
    """Emit drift-checked for every window, and drift-detected when data or the model's error drifted."""
    name, batch_id = data["dataset"], data["batch_id"]
    spec = deps.datasets.get(name)
    model = spec.name  # one model per dataset
    checked: dict[str, Any] = {"model": model, "dataset": name, "batch_id": batch_id, "rows": data["rows"]}
    if "window" in data:
        checked["window"] = data["window"]

    champion = deps.registry.champion(model)
    if champion is None:
        return [_checked(checked, status="no_reference", drifted=False)]
    if data["rows"] == 0:
        return [_checked({**checked, "model_version": champion.version}, status="empty_window", drifted=False)]
    current = snapshot_rows(deps.warehouse, data["table"], data["snapshot"])
    # the reference is what the champion was trained on: its training window of the feature table
    reference = window_rows(deps.warehouse, spec, data["table"], champion.train_window or {})
    result = domain.check_drift(
        reference, current, list(spec.drift.columns or data["feature_columns"]), spec.drift.share
    )
    checked.update(
        model_version=champion.version,
        share=result.share,
        threshold=spec.drift.share,
        columns=result.columns,
        status=result.status,
    )
    kinds = ["data"] if result.drifted else []
    if result.status == "checked" and (performance := _performance(spec, champion, current, deps)):
        checked["performance"] = performance
        kinds += ["performance"] if performance["degraded"] else []

    prefix = f"reports/drift/{model}/{batch_id}"
    if result.report_html:
        checked["report_uri"] = deps.store.put_bytes(f"{prefix}.html", result.report_html.encode())
    checked["result_uri"] = deps.store.uri_for(f"{prefix}.json")
    emits = [_checked(checked, status=checked["status"], drifted=bool(kinds))]
    deps.store.put_json(f"{prefix}.json", emits[0].data)
    if kinds:
        detected = {
            **{k: checked[k] for k in ("model", "dataset", "batch_id", "rows", "model_version", "share")},
            **{k: checked[k] for k in ("window", "report_uri") if k in checked},
            "kinds": kinds,
            "drifted_columns": result.drifted_columns,  # with drifted unseen_categories columns, as the share counts
        }
        emits.append(Emit("drift.v1.detected", detected, subject=model_subject(model)))
    return emits


def _performance(spec: DatasetSpec, champion: ModelVersion, current: pd.DataFrame, deps: Deps) -> dict[str, Any] | None:
    """The champion's error on the window's labelled rows against its holdout error (None without labels)."""
    if spec.target not in current or current[spec.target].isna().all():
        return None
    predictor = deps.predictor(champion)
    labelled = current[current[spec.target].notna()]
    # a class the champion never saw scores as its worst error (aikube.metrics.score), so a new class degrades it
    prediction = predictor.predict(labelled)
    baseline = champion.metrics[champion.metric]
    return domain.performance(
        spec.task, labelled[spec.target], prediction, baseline, spec.drift.performance_ratio, labels=predictor.classes
    )


def _checked(data: dict[str, Any], *, status: str, drifted: bool) -> Emit:
    checked = {**data, "status": status, "drifted": drifted}
    return Emit("drift.v1.checked", checked, subject=model_subject(data["model"]))
