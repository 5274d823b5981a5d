"""The loop on the three Google Cloud stand-ins: Pub/Sub emulator, fake-gcs-server and bqemulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from aikube.demo import run_demo
from aikube.emulator import EmulatorNotInstalled, PubSubEmulator

pytestmark = [pytest.mark.e2e, pytest.mark.gcp_emulators]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gcp_run(pubsub_emulator: PubSubEmulator, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Eight weeks of the real data with objects in Cloud Storage and the warehouse in BigQuery (stand-ins)."""
    try:
        return run_demo(
            REPO / "examples" / "bikeshare.yaml",
            tmp_path_factory.mktemp("gcp"),
            max_batches=8,
            emulator_host=pubsub_emulator.host,
            backend="gcp-emulators",
            say=lambda _: None,
        )
    except EmulatorNotInstalled as exc:
        pytest.fail(f"the GCP stand-ins must run here: {exc}")


def test_bootstrap_model_is_trained_from_bigquery_and_served_from_cloud_storage(gcp_run: dict) -> None:
    """The first model is trained on BigQuery features, registered in Cloud Storage and serves the next batches."""
    assert gcp_run["models"][0]["status"] == "deployed"
    assert gcp_run["online_metric"]["rows_scored"] > 0


def test_drift_reaches_the_evaluation_gate(gcp_run: dict) -> None:
    """A drift-triggered training request runs to a gate decision on the stand-ins."""
    assert [r["outcome"] for r in gcp_run["retrains"]] and gcp_run["retrains"][0]["outcome"] in {"deployed", "rejected"}


def test_no_message_was_dead_lettered(gcp_run: dict) -> None:
    """Every event of the run was handled."""
    assert gcp_run["dead_letters"] == 0
