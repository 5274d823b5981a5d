"""Retrain-scheduler handlers: every checked window gets one recorded decision; some become training requests.

State per model lives in the object store (`scheduler/<model>.json`) with the last decision, so a window that is
redelivered after a crash re-emits the decision it already made instead of deciding again. It is read-modify-written
under a generation precondition (`update_json`), so replicas and concurrent handlers never lose each other's update.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aikube.datasets import DatasetCatalog
from aikube.envelope import Emit, EventContext
from aikube.runtime import Router
from aikube.storage import ObjectStore, update_json
from aikube.tables import features_table, model_subject
from retrain_scheduler.domain import Decision, ModelState, decide, on_training_finished

router = Router()

Saved = tuple[ModelState, dict[str, Any]]  # the model's policy state and its last decision


@dataclass
class Deps:
    store: ObjectStore
    datasets: DatasetCatalog

    def update(self, model: str, change: Callable[[ModelState, dict[str, Any]], Saved]) -> Saved:
        """Apply `change` to the model's (state, last decision) and store the result; returns what was stored."""

        def apply(saved: dict[str, Any] | None) -> dict[str, Any]:
            state, last = _parse(saved)
            state, last = change(state, last)
            return {"state": state.model_dump(mode="json"), "last": last}

        return _parse(update_json(self.store, f"scheduler/{model}.json", apply))


def _parse(saved: dict[str, Any] | None) -> Saved:
    if saved is None:
        return ModelState(), {}
    return ModelState.model_validate(saved["state"]), saved.get("last", {})


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
    if "window" not in data:
        decision = Decision(decision="none", reason="empty window")
    else:

        def record(state: ModelState, last: dict[str, Any]) -> Saved:
            if last.get("batch_id") == batch_id:
                return state, last  # redelivered after a crash: the decision already made stands
            decision, state = decide(state, data["window"], data["rows"], drifted, status, spec.retrain)
            return state, {"batch_id": batch_id, "decision": decision.model_dump(mode="json")}

        _, last = deps.update(model, record)
        decision = Decision.model_validate(last["decision"])

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
    end = data["train_window"]["end"] if deployed else None
    deps.update(
        data["model"],
        lambda state, last: (on_training_finished(state, data.get("request_id", ""), deployed, end), last),
    )
