"""Ingestor handlers: an arrived batch is validated, masked and landed raw in the object store and the warehouse."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pandas as pd

from aikube.datasets import DatasetCatalog
from aikube.envelope import Emit, EventContext
from aikube.errors import Rejected
from aikube.runtime import Router
from aikube.storage import NotFound, ObjectStore
from aikube.tables import dataset_subject, raw_table
from aikube.warehouse import Warehouse
from aikube.windows import window
from ingestor import domain

router = Router()


@dataclass(frozen=True)
class Deps:
    store: ObjectStore
    warehouse: Warehouse
    datasets: DatasetCatalog
    mask_salt: str


@router.handler("dataset.v1.arrived")
def on_dataset_arrived(data: dict[str, Any], ctx: EventContext, deps: Deps) -> Emit:
    """Validate the batch row by row, mask PII, land the accepted rows; rejected rows are kept with reasons."""
    name, batch_id = data["dataset"], data["batch_id"]
    spec = deps.datasets.get(name)
    try:
        bounds = domain.TimeBounds.of(data.get("window"), ctx.time)
    except ValueError as exc:
        raise Rejected(f"batch {batch_id}: {exc}") from None
    frame = _read_batch(data, deps.store)
    checked = domain.validate_rows(frame, spec, bounds)
    landed, masked, dropped = domain.mask_sensitive(checked.accepted, spec, deps.mask_salt)

    result: dict[str, Any] = {
        "dataset": name,
        "batch_id": batch_id,
        "rows_received": len(frame),
        "rows_accepted": len(landed),
        "rows_rejected": len(checked.rejected),
        "raw_uri": deps.store.put_bytes(f"raw/{name}/{batch_id}.parquet", _parquet(landed)),
        "table": raw_table(name),
        "masked_columns": masked,
        "dropped_columns": dropped + checked.extra_columns,
    }
    if len(checked.rejected):
        # the rejects file lands too: its sensitive values are masked or dropped like those of the accepted rows
        rejected, _, _ = domain.mask_sensitive(checked.rejected, spec, deps.mask_salt)
        result["rejects_uri"] = deps.store.put_bytes(
            f"rejects/{name}/{batch_id}.jsonl", rejected.to_json(orient="records", lines=True).encode()
        )
        result["reject_reasons"] = checked.reasons
    if len(landed):
        # re-appending the same partition replaces it: a redelivered batch lands once
        deps.warehouse.append(raw_table(name), landed, partition=batch_id)
        # the producer's window when it sent one (it knows the batch's extent), else the rows' span, end exclusive
        stamps = landed[spec.timestamp]
        result["window"] = data.get("window") or window(stamps.min(), stamps.max() + pd.Timedelta(microseconds=1))
    return Emit("dataset.v1.ingested", result, subject=dataset_subject(name))


def _read_batch(data: dict[str, Any], store: ObjectStore) -> pd.DataFrame:
    if "records" in data:
        return pd.DataFrame.from_records(data["records"])
    uri = data["uri"]
    try:
        raw = store.read_uri(uri)
    except (NotFound, FileNotFoundError, ValueError) as exc:  # ValueError: a scheme this store cannot read
        raise Rejected(f"batch file {uri} cannot be read: {exc}") from None
    file_format = data.get("format") or ("parquet" if uri.endswith((".parquet", ".pq")) else "csv")
    try:
        if file_format == "parquet":
            return pd.read_parquet(io.BytesIO(raw))
        return pd.read_csv(io.BytesIO(raw), compression="gzip" if uri.endswith(".gz") else None)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise Rejected(f"batch file {uri} is not valid {file_format}: {exc}") from None


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()
