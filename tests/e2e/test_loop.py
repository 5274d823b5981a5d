"""The whole loop as separate processes over the real Pub/Sub emulator: a shortened replay of the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from aikube.demo import run_demo
from aikube.emulator import PubSubEmulator
from aikube.tracefile import load_spans

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bikeshare_run(pubsub_emulator: PubSubEmulator, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """January to mid-April of the real data, weekly batches: bootstrap, then spring drift."""
    out = tmp_path_factory.mktemp("bikeshare")
    summary = run_demo(
        REPO / "examples" / "bikeshare.yaml",
        out,
        max_batches=16,
        emulator_host=pubsub_emulator.host,
        say=lambda _: None,
    )
    return summary, out


def deployed_retrains(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in summary["retrains"] if r["reason"] == "drift" and r["outcome"] == "deployed"]


def test_drift_leads_to_a_retrain_and_a_new_deployment(bikeshare_run: tuple[dict, Path]) -> None:
    """At least one drift-triggered training produced a model that now serves."""
    summary, _ = bikeshare_run
    assert deployed_retrains(summary), summary["retrains"]


def test_a_retrain_chain_is_one_trace(bikeshare_run: tuple[dict, Path]) -> None:
    """Drift detected → training requested → training job → deployed share the retrain's trace id."""
    summary, out = bikeshare_run
    chain = deployed_retrains(summary)[0]
    spans = [s for s in load_spans(out / "traces") if s.trace_id == chain["trace_id"]]
    steps = {(s.service, s.name) for s in spans}
    assert {
        ("drift-watcher", "featureSet.v1.built process"),
        ("retrain-scheduler", "drift.v1.detected process"),
        ("trainer-dispatcher", "training.v1.requested process"),
        ("trainer-job", "train bikeshare"),
        ("deployer", "training.v1.completed process"),
        ("retrain-scheduler", "model.v1.deployed process"),
    } <= steps
    roots = [s for s in spans if s.parent_span_id is None]
    assert [r.service for r in roots] == ["aikube-demo"]


def test_served_models_beat_the_static_model(bikeshare_run: tuple[dict, Path]) -> None:
    """The online error of the models actually served is below the train-once model's on the same batches."""
    metric = bikeshare_run[0]["online_metric"]
    assert metric["rows_scored"] > 0
    assert metric["deployed"] < metric["static"]


def test_nothing_was_dead_lettered_and_every_artifact_was_written(bikeshare_run: tuple[dict, Path]) -> None:
    """A clean run leaves no dead letters and writes the summary, the timeline and the span files."""
    summary, out = bikeshare_run
    assert summary["dead_letters"] == 0
    assert (out / "summary.json").stat().st_size > 0
    assert (out / "timeline.png").read_bytes()[:4] == b"\x89PNG"


def stationary_dataset(folder: Path, weeks: int = 8) -> Path:
    """Hourly data whose features and target never change distribution."""
    rng = np.random.default_rng(7)
    hours = pd.date_range("2021-01-04", periods=weeks * 7 * 24, freq="h")
    frame = pd.DataFrame(
        {
            "ts": hours,
            "load": rng.normal(10, 2, len(hours)),
            "price": rng.uniform(0, 1, len(hours)),
            "zone": rng.choice(["north", "south", "east"], len(hours)),
        }
    )
    frame["demand"] = 3 * frame["load"] + 5 * frame["price"] + rng.normal(0, 1, len(hours))
    frame.to_csv(folder / "stationary.csv", index=False)
    spec = folder / "stationary.yaml"
    spec.write_text(
        "name: stationary\npath: stationary.csv\ntimestamp: ts\ntarget: demand\ntask: regression\nbatch: 7D\n"
    )
    return spec


def test_data_without_drift_is_not_retrained(pubsub_emulator: PubSubEmulator, tmp_path: Path) -> None:
    """Stationary data gets its bootstrap model and no drift-triggered retrain."""
    summary = run_demo(
        stationary_dataset(tmp_path), tmp_path / "out", emulator_host=pubsub_emulator.host, say=lambda _: None
    )
    assert summary["retrains"] == []
    assert [m["status"] for m in summary["models"]] == ["deployed"]
