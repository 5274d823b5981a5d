"""What a demo run leaves behind: summary.json (from the events the loop emitted) and timeline.png."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from aikube.datasets import DatasetSpec
from aikube.demo.observer import Observer
from aikube.demo.replay import BatchScore
from aikube.metrics import primary_metric


def trace_id_of(event: CloudEvent) -> str:
    """The trace an event belongs to, from its W3C traceparent extension ("" without one)."""
    traceparent = event.get_attributes().get("traceparent", "")
    parts = str(traceparent).split("-")
    return parts[1] if len(parts) == 4 else ""


def _data(event: CloudEvent) -> dict[str, Any]:
    data = event.get_data()
    assert isinstance(data, dict)
    return data


TOP_REASONS = 5  # reject reasons listed in the summary, most frequent first


def summarize(spec: DatasetSpec, rows: int, scores: list[BatchScore], observer: Observer) -> dict[str, Any]:
    """The run as data: ingestion, models, failed trainings, drift checks, retrains with their traces, the online
    metric, dead letters."""
    outcomes: dict[str, tuple[str, dict[str, Any]]] = {}
    for key in ("model.v1.deployed", "model.v1.rejected"):
        for event in observer.of(key):
            outcomes[_data(event)["version"]] = (key.split(".")[-1], _data(event))
    models = []
    for event in observer.of("training.v1.completed"):
        data = _data(event)
        status, outcome = outcomes.get(data["version"], ("pending", {}))
        models.append(
            {
                "version": data["version"],
                "request_id": data["request_id"],
                "train_window": data.get("train_window"),
                "metrics": data["metrics"],
                "status": status,
                "reason": outcome.get("reason", ""),
                "gate": {k: outcome[k] for k in ("candidate_score", "champion_score") if k in outcome},
            }
        )
    results = {m["request_id"]: m for m in models}
    failures = {_data(e)["request_id"]: _data(e)["error"] for e in observer.of("training.v1.failed")}
    requests = observer.of("training.v1.requested")
    retrains = []
    for event in requests:
        data = _data(event)
        if data["reason"] == "bootstrap":  # the first model, not a retrain (its failures are in failed_trainings)
            continue
        model = results.get(data["request_id"], {})
        retrains.append(
            {
                "reason": data["reason"],
                "request_id": data["request_id"],
                "trigger_event_id": data.get("trigger_id", ""),
                "trace_id": trace_id_of(event),
                "model_version": model.get("version"),
                "outcome": model.get("status")
                or ("failed: " + failures[data["request_id"]] if data["request_id"] in failures else "pending"),
            }
        )
    checks = [
        {
            "batch_id": d["batch_id"],
            "window": d.get("window"),
            "status": d["status"],
            "drifted": d["drifted"],
            "share": d.get("share"),
            "performance": d.get("performance"),
        }
        for d in map(_data, observer.of("drift.v1.checked"))
    ]
    scored = [s for s in scores if s.served_error is not None and s.static_error is not None]
    weights = [s.scored_rows for s in scored]
    total = sum(weights) or 1
    decisions = Counter(f"{_data(e)['decision']}: {_data(e)['reason']}" for e in observer.of("retrain.v1.decided"))
    return {
        "dataset": spec.name,
        "rows": rows,
        "batches": len(scores),
        "ingestion": ingestion(observer.of("dataset.v1.ingested")),
        "models": models,
        "failed_trainings": failed_trainings(requests, observer.of("training.v1.failed")),
        "drift_checks": checks,
        "retrains": retrains,
        "decisions": dict(decisions.most_common()),
        "online_metric": {
            "name": primary_metric(spec.task),
            "deployed": sum(s.served_error * w for s, w in zip(scored, weights, strict=True)) / total
            if scored
            else None,
            "static": sum(s.static_error * w for s, w in zip(scored, weights, strict=True)) / total if scored else None,
            "batches_scored": len(scored),
            "rows_scored": sum(weights),
            "rows_of_a_class_the_served_model_never_saw": sum(s.new_class_rows for s in scores),
            "rows_unreadable": sum(s.unreadable_rows for s in scores),
        },
        "dead_letters": len(observer.dead_letters),
        "dead_lettered": [vars(d) for d in observer.dead_letters],
        "timeline": [vars(s) for s in scores],
    }


def ingestion(ingested: list[CloudEvent]) -> dict[str, Any]:
    """Rows received, accepted and rejected over every batch, with the most frequent reject reasons."""
    reasons: Counter[str] = Counter()
    for data in map(_data, ingested):
        reasons.update(data.get("reject_reasons", {}))
    totals = {key: sum(_data(e)[key] for e in ingested) for key in ("rows_received", "rows_accepted", "rows_rejected")}
    return {**totals, "reject_reasons": dict(reasons.most_common(TOP_REASONS))}


def failed_trainings(requested: list[CloudEvent], failed: list[CloudEvent]) -> list[dict[str, Any]]:
    """Every training that failed, bootstrap ones included, with why it was requested and the error."""
    reasons = {_data(e)["request_id"]: _data(e)["reason"] for e in requested}
    return [
        {
            "request_id": data["request_id"],
            "reason": reasons.get(data["request_id"], "unknown"),
            "error": data["error"],
            "trace_id": trace_id_of(event),
        }
        for event, data in ((e, _data(e)) for e in failed)
    ]


def plot_timeline(summary: dict[str, Any], path: Path) -> None:
    """The served model's error per batch next to the static model's, with each retrain's deployment marked."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    import pandas as pd

    timeline = [t for t in summary["timeline"] if t["served_error"] is not None]
    figure, axes = plt.subplots(figsize=(11, 4.5))
    if timeline:
        when = pd.to_datetime([t["start"] for t in timeline])
        axes.plot(when, [t["static_error"] for t in timeline], color="tab:gray", label="static (trained once)")
        axes.plot(when, [t["served_error"] for t in timeline], color="tab:blue", label="served (AIkube loop)")
        switches = [
            pd.Timestamp(t["start"])
            for prev, t in zip(timeline, timeline[1:], strict=False)
            if t["served_version"] != prev["served_version"]
        ]
        for i, moment in enumerate(switches):
            axes.axvline(
                moment, color="tab:red", linestyle="--", alpha=0.6, label="new model serving" if i == 0 else None
            )
    metric = summary["online_metric"]
    axes.set_title(
        f"{summary['dataset']}: online {metric['name']} per batch — served {_fmt(metric['deployed'])}"
        f" vs static {_fmt(metric['static'])}"
    )
    axes.set_ylabel(metric["name"])
    if timeline:  # no model ever served: no lines, and an empty legend would only warn
        axes.legend(loc="upper left")
    else:
        axes.text(0.5, 0.5, "no model served", ha="center", va="center", transform=axes.transAxes)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def write(summary: dict[str, Any], out: Path) -> None:
    """Write summary.json and timeline.png into `out`."""
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    plot_timeline(summary, out / "timeline.png")
