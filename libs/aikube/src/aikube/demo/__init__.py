"""`aikube demo`: the whole lifecycle on a real dataset, as separate processes over the Pub/Sub emulator.

Example:
    >>> summary = run_demo(Path("examples/bikeshare.yaml"), Path("out/demo"))   # doctest: +SKIP
    >>> summary["online_metric"]
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aikube.adapters import open_store
from aikube.catalog import Catalog
from aikube.datasets import DatasetCatalog, DatasetSpec, infer_columns, read_table
from aikube.demo import report
from aikube.demo.observer import Observer
from aikube.demo.replay import Batch, BatchScore, Scorer, batches, replay
from aikube.demo.stack import Stack, Terminated, Workspace, sigterm_as_interrupt
from aikube.registry import ModelRegistry
from aikube.sdk import DataSource
from aikube.storage import ObjectStore
from aikube.telemetry import setup_tracing, shutdown_tracing

__all__ = ["Terminated", "run_demo"]


def run_demo(
    dataset_yaml: Path,
    out: Path,
    *,
    max_batches: int | None = None,
    emulator_host: str | None = None,
    backend: str = "local",
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the loop on a dataset end to end and write summary.json, timeline.png and the traces under `out`.

    Every process it starts (emulator, six services, model servers) is stopped before it returns or raises, on
    Ctrl-C and on SIGTERM too (which then raises Terminated, a KeyboardInterrupt).

    Raises:
        ValueError: for a bad spec or data file, or `max_batches` below 1.
    """
    if max_batches is not None and max_batches < 1:
        raise ValueError(f"max_batches must be at least 1, got {max_batches}")
    with sigterm_as_interrupt():
        return _run(dataset_yaml, out, max_batches, emulator_host, backend, say)


def _run(
    dataset_yaml: Path,
    out: Path,
    max_batches: int | None,
    emulator_host: str | None,
    backend: str,
    say: Callable[[str], None],
) -> dict[str, Any]:
    started = time.monotonic()
    spec = DatasetSpec.from_yaml(dataset_yaml)
    if spec.path is None:
        raise ValueError(f"{dataset_yaml}: `path` to the data file is required for a replay")
    frame = read_table(spec.path)
    if not spec.columns:
        spec = spec.with_columns(infer_columns(frame, spec.timestamp))
    plan = list(batches(spec, frame))[:max_batches]  # before starting anything: a bad grain or timestamp fails fast
    for stale in ("state", "traces", "logs"):  # each run starts from nothing
        shutil.rmtree(out / stale, ignore_errors=True)
    workspace = Workspace(out).create()

    say(f"AIkube demo: {spec.name}, {len(frame):,} rows, batches of {spec.batch}; state and logs in {out}")
    if plan and len(plan[0].unplaced):
        say(f"{len(plan[0].unplaced):,} rows without a readable {spec.timestamp!r} go with the first batch (rejected)")
    setup_tracing("aikube-demo", exporter="file", trace_dir=workspace.traces)
    try:
        with Stack(workspace, Catalog.load(), emulator_host=emulator_host, backend=backend) as stack:
            stack.start()
            say(
                f"Pub/Sub emulator on {stack.emulator_host}; objects in {stack.store_uri}; warehouse"
                f" {stack.warehouse_uri}; six services ready ({time.monotonic() - started:.0f}s)"
            )
            store = open_store(stack.store_uri)
            DatasetCatalog(store).register(spec)
            summary = _replay_on(stack, spec, len(frame), plan, store, say)
    finally:
        shutdown_tracing()
    report.write(summary, out)
    say(_closing(summary, out, time.monotonic() - started))
    return summary


def _replay_on(
    stack: Stack,
    spec: DatasetSpec,
    rows: int,
    plan: list[Batch],
    store: ObjectStore,
    say: Callable[[str], None],
) -> dict[str, Any]:
    assert stack.bus is not None
    observer = Observer(stack.bus)
    try:
        scores = replay(
            spec,
            plan,
            DataSource(stack.project_id, catalog=stack.catalog, bus=stack.bus),
            observer,
            Scorer(spec, ModelRegistry(store)),
            alive=stack.check_alive,
            progress=lambda i, n, s: say(_progress_line(i, n, s)),
        )
        observer.settle()  # what the last batch's chain still emits (a late dead letter) counts too
        return report.summarize(spec, rows, scores, observer)
    finally:
        observer.close()


def _progress_line(index: int, total: int, scored: BatchScore) -> str:
    error = (
        "" if scored.served_error is None else f"  served {scored.served_error:7.2f}  static {scored.static_error:7.2f}"
    )
    outcome = f" → {scored.outcome}" if scored.outcome else ""  # a failed bootstrap says why, batch after batch
    return (
        f"[{index:>3}/{total}] {scored.start[:10]}  {scored.rows:>4} rows{error}  → {scored.decision}: {scored.reason}"
        + outcome
    )


def _closing(summary: dict[str, Any], out: Path, seconds: float) -> str:
    metric = summary["online_metric"]
    deployed = sum(1 for m in summary["models"] if m["status"] == "deployed")
    lines = [
        "",
        f"Done in {seconds:.0f}s: {summary['batches']} batches, {len(summary['drift_checks'])} drift checks,"
        f" {len(summary['retrains'])} automatic retrains, {deployed} models deployed,"
        f" {summary['dead_letters']} dead letters.",
    ]
    lines += _problems(summary)
    if metric["deployed"] is not None:
        lines.append(
            f"Online {metric['name']} over {metric['rows_scored']:,} rows: served models {metric['deployed']:.2f}"
            f" vs a model trained once {metric['static']:.2f}."
        )
    if summary["retrains"]:
        # the chain worth reading ends in a new model serving
        deployed = [r for r in summary["retrains"] if r["outcome"] == "deployed"]
        chain, what = (deployed[0], "retrain → redeploy") if deployed else (summary["retrains"][0], "retrain")
        lines.append(f"Follow the first {what} chain: aikube trace {chain['trace_id']} --dir {out / 'traces'}")
    lines.append(f"Summary: {out / 'summary.json'}   Timeline: {out / 'timeline.png'}")
    return "\n".join(lines)


def _problems(summary: dict[str, Any]) -> list[str]:
    """Closing lines for what went wrong: rejected rows, failed trainings (none when all went well)."""
    lines = []
    ingestion = summary.get("ingestion", {})
    if ingestion.get("rows_rejected"):
        reasons = ", ".join(f"{reason} ({count:,})" for reason, count in ingestion["reject_reasons"].items())
        lines.append(
            f"{ingestion['rows_rejected']:,} of {ingestion['rows_received']:,} rows rejected by the ingestor: {reasons}"
            " (each row with its reason under rejects/ in the object store)"
        )
    if failed := summary.get("failed_trainings"):
        first, plural = failed[0], "s" if len(failed) > 1 else ""
        lines.append(f"{len(failed)} training{plural} failed; the first ({first['reason']}): {first['error']}")
    return lines
