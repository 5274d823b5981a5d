"""Feature-builder handlers: each ingested batch's features are computed as SQL inside the warehouse."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aikube.datasets import DatasetCatalog
from aikube.envelope import Emit, EventContext
from aikube.features import feature_sql, model_columns
from aikube.runtime import Router
from aikube.tables import dataset_subject, features_table, raw_table
from aikube.warehouse import PARTITION_COLUMN, Warehouse

router = Router()


@dataclass(frozen=True)
class Deps:
    warehouse: Warehouse
    datasets: DatasetCatalog


@router.handler("dataset.v1.ingested")
def on_dataset_ingested(data: dict[str, Any], ctx: EventContext, deps: Deps) -> Emit:
    """Materialise the batch's feature snapshot (partition = batch id, so a rebuild replaces it)."""
    name, batch_id = data["dataset"], data["batch_id"]
    spec = deps.datasets.get(name)
    rows = 0
    if data["rows_accepted"]:
        sql = feature_sql(spec, raw_table(name), where=f"{PARTITION_COLUMN} = $batch", dialect=deps.warehouse.dialect)
        rows = deps.warehouse.materialize(features_table(name), sql, partition=batch_id, params={"batch": batch_id})
    built: dict[str, Any] = {
        "dataset": name,
        "batch_id": batch_id,
        "table": features_table(name),
        "snapshot": batch_id,
        "rows": rows,
        "feature_columns": model_columns(spec),
        "target": spec.target,
    }
    if "window" in data:
        built["window"] = data["window"]
    return Emit("featureSet.v1.built", built, subject=dataset_subject(name))
