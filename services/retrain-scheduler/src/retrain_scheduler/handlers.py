"""Retrain-scheduler handlers: every checked window gets one recorded decision; some become training requests.

State per model lives in the object store (`scheduler/<model>.json`) with the last decision, so a window that is
redelivered after a crash re-emits the decision it already made instead of deciding again.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aikube.datasets import DatasetCatalog
from aikube.envelope import Emit, EventContext
from aikube.runtime import Router
from aikube.storage import NotFound, ObjectStore
from aikube.tables import features_table, model_subject
from retrain_scheduler.domain import Decision, ModelState, decide, on_training_finished

router = Router()


@dataclass
class Deps:
    store: ObjectStore
    datasets: DatasetCatalog
    _locks: defaultdict[str, threading.Lock] = field(default_factory=lambda: defaultdict(threading.Lock))

    def lock(self, model: str) -> threading.Lock:
        """Handlers of one model run one at a time in this replica (the state is read-modify-write)."""
        return self._locks[model]

    def load(self, model: str) -> tuple[ModelState, dict[str, Any]]:
        try:
            saved = self.store.get_json(f"scheduler/{model}.json")
        except NotFound:
            return ModelState(), {}
        return ModelState.model_validate(saved["state"]), saved.get("last", {})

    def save(self, model: str, state: ModelState, last: dict[str, Any]) -> None:
        self.store.put_json(f"scheduler/{model}.json", {"state": state.model_dump(mode="json"), "last": last})


@router.handler("drift.v1.checked")
def on_drift_checked(data: dict[str, Any], ctx: EventContext, deps: Deps) -> list[Emit]:
    """Windows without drift: bootstrap, schedule, or nothing. A drifted window is decided on its detected event."""
    if data["drifted"]:
        return []
    return _decide(data, ctx, deps, drifted=False, status=data["status"])


@router.handler("drift.v1.detected")
def on_drift_detected(data: dict[str, Any], ctx: EventContext, deps: Deps) -> list[Emit]:
    """Drift: a training request once the policy allows it, else a recorded suppression."""
    return _decide(data, ctx, deps, drifted=True, status="checked")


@router.handler("model.v1.deployed")
def on_model_deployed(data: dict[str, Any], ctx: EventContext, deps: Deps) -> None:
    _finished(data, deps, deployed=True)


@router.handler("model.v1.rejected")
def on_model_rejected(data: dict[str, Any], ctx: EventContext, deps: Deps) -> None:
    _finished(data, deps, deployed=False)


@router.handler("training.v1.failed")
def on_training_failed(data: dict[str, Any], ctx: EventContext, deps: Deps) -> None:
    _finished(data, deps, deployed=False)


def _decide(data: dict[str, Any], ctx: EventContext, deps: Deps, *, drifted: bool, status: str) -> list[Emit]:
    model, batch_id = data["model"], data["batch_id"]
    spec = deps.datasets.get(data["dataset"])
    with deps.lock(model):
        state, last = deps.load(model)
        if last.get("batch_id") == batch_id:
            decision = Decision.model_validate(last["decision"])  # redelivered after a crash: same decision
        elif "window" not in data:
            decision = Decision(decision="none", reason="empty window")
        else:
            decision, state = decide(state, data["window"], data["rows"], drifted, status, spec.retrain)
            deps.save(model, state, {"batch_id": batch_id, "decision": decision.model_dump(mode="json")})

    decided: dict[str, Any] = {
        "model": model,
        "batch_id": batch_id,
        "decision": decision.decision,
        "reason": decision.reason,
        "trigger_id": ctx.id,
    }
    if "window" in data:
        decided["window"] = data["window"]
    if decision.decision != "requested":
        return [Emit("retrain.v1.decided", decided, subject=model_subject(model))]
    assert decision.request_id and decision.train_window and decision.trigger
    decided["request_id"] = decision.request_id
    requested = {
        "request_id": decision.request_id,
        "model": model,
        "dataset": data["dataset"],
        "reason": decision.trigger,
        "train_window": {k: v.isoformat() for k, v in decision.train_window.items()},
        "trigger_id": ctx.id,
        "features_table": features_table(data["dataset"]),
    }
    return [
        Emit("retrain.v1.decided", decided, subject=model_subject(model)),
        Emit("training.v1.requested", requested, subject=model_subject(model)),
    ]


def _finished(data: dict[str, Any], deps: Deps, *, deployed: bool) -> None:
    model = data["model"]
    with deps.lock(model):
        state, last = deps.load(model)
        end = data["train_window"]["end"] if deployed else None
        deps.save(model, on_training_finished(state, data.get("request_id", ""), deployed, end), last)
