"""The training job's entry point: `python -m trainer_dispatcher.job`, as a local subprocess or a Kubernetes Job.

It reads the request from $AIKUBE_TRAINING_REQUEST, trains on the request's window of features, and registers the
candidate (artifact, metrics, lineage) under the version the dispatcher derived from the request. Exit 0 on
success; on failure, exit 1 with the reason as the last line of stderr (the executor reports it).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from opentelemetry import trace
from pydantic import Json

from aikube.adapters import open_store, open_warehouse
from aikube.datasets import DatasetCatalog
from aikube.features import window_rows
from aikube.registry import ModelRegistry
from aikube.serving import make_artifact
from aikube.settings import ENV_PREFIX, ConfigError, StoreUri, TraceSettings, WarehouseUri, load_settings
from aikube.telemetry import context_from, setup_tracing, shutdown_tracing
from aikube.warehouse import PARTITION_COLUMN
from aikube.windows import window
from trainer_dispatcher import domain

REQUEST_ENV = f"{ENV_PREFIX}TRAINING_REQUEST"
tracer = trace.get_tracer("trainer_dispatcher.job")


class JobSettings(TraceSettings):
    """The job's settings: the services' checks for the store, warehouse and traces, plus the request."""

    store: StoreUri
    warehouse: WarehouseUri
    training_request: Json[dict[str, Any]]


def train_and_register(settings: JobSettings) -> str:
    """Train on the request's window and register the candidate; returns the version."""
    request = settings.training_request
    store = open_store(settings.store)
    spec = DatasetCatalog(store).get(request["dataset"])
    features = window_rows(
        open_warehouse(settings.warehouse),
        spec,
        request["features_table"],
        request["train_window"],
        keep_partition=True,
    )
    snapshots = sorted(features[PARTITION_COLUMN].unique().tolist())
    result = domain.train(spec, features.drop(columns=[PARTITION_COLUMN]))
    ModelRegistry(store).register(
        request["model"],
        request["version"],
        make_artifact(result.pipeline, spec),
        metric=result.metric,
        metrics=result.metrics,
        train_window=_iso(result.train_window),
        holdout_window=_iso(result.holdout_window),
        lineage={
            "request_id": request["request_id"],
            "trigger_id": request.get("trigger_id", ""),
            "trace_id": request.get("trace_id", ""),
            "features_table": request["features_table"],
            "snapshots": snapshots,
            "rows": result.rows,
        },
    )
    return str(request["version"])


def _iso(span: dict[str, Any]) -> dict[str, str]:
    return window(span["start"], span["end"])


def main() -> int:
    try:
        settings = load_settings(JobSettings)
    except ConfigError as exc:
        print(f"training job: {exc}", file=sys.stderr)
        return 2
    setup_tracing(
        "trainer-job",
        exporter=settings.trace_exporter,
        trace_dir=settings.trace_dir,
        otlp_endpoint=None,  # type: ignore[arg-type]
    )
    parent = context_from({"traceparent": os.environ.get("TRACEPARENT", "")})
    request = settings.training_request
    try:
        with tracer.start_as_current_span(f"train {request['model']}", context=parent) as span:
            span.set_attribute("aikube.request_id", request["request_id"])
            span.set_attribute("aikube.model_version", request["version"])
            try:
                version = train_and_register(settings)
            except (domain.TrainingError, KeyError, ValueError) as exc:
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
                print(f"training failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                return 1
        print(json.dumps({"registered": version}))
        return 0
    finally:
        shutdown_tracing()


if __name__ == "__main__":
    raise SystemExit(main())
