"""Trainer-dispatcher handlers: a training request becomes one job; its outcome becomes completed or failed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aikube.envelope import Emit, EventContext
from aikube.executors import Executor, JobSpec
from aikube.registry import ModelRegistry
from aikube.runtime import Router
from aikube.tables import model_subject
from aikube.telemetry import inject_traceparent
from trainer_dispatcher import domain
from trainer_dispatcher.job import REQUEST_ENV

router = Router()
JOB_MODULE = "trainer_dispatcher.job"


@dataclass(frozen=True)
class Deps:
    registry: ModelRegistry
    executor: Executor

    def close(self) -> None:
        if close := getattr(self.executor, "close", None):  # e.g. the Kubernetes executor's API client
            close()


@router.handler("training.v1.requested")
def on_training_requested(data: dict[str, Any], ctx: EventContext, deps: Deps) -> Emit:
    """Run (or find) the request's job; the job registers the candidate under a version derived from the request."""
    model, request_id = data["model"], data["request_id"]
    name = domain.job_name(model, request_id)
    version = domain.model_version(data["train_window"]["end"], request_id)
    request = {**data, "version": version, "trace_id": ctx.trace_id}
    env = {REQUEST_ENV: json.dumps(request)}
    if traceparent := inject_traceparent().get("traceparent"):
        env["TRACEPARENT"] = traceparent  # the job's spans join the chain's trace
    labels = {"aikube.dev/model": model, "aikube.dev/request": request_id[:63], "aikube.dev/trace": ctx.trace_id}
    result = deps.executor.run(JobSpec(name, JOB_MODULE, env=env, labels=labels))
    if not result.succeeded:
        failed = {"request_id": request_id, "model": model, "job_name": name, "error": result.error or "unknown"}
        return Emit("training.v1.failed", failed, subject=model_subject(model))
    candidate = deps.registry.get(model, version)
    completed = {
        "request_id": request_id,
        "model": model,
        "version": version,
        "artifact_uri": candidate.artifact_uri,
        "job_name": name,
        "metric": candidate.metric,
        "metrics": candidate.metrics,
        "train_window": candidate.train_window,
        "holdout_window": candidate.holdout_window,
        "rows": candidate.lineage.get("rows", 0),
    }
    return Emit("training.v1.completed", completed, subject=model_subject(model))
