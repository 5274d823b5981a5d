"""The trainer-dispatcher through the real Dispatcher: training.v1.requested in, completed or failed out.

The job runs for real: LocalExecutor starts `python -m trainer_dispatcher.job` as a subprocess over this module's
store and warehouse (a copy of the session template: six weeks of features). Each job process writes its spans to
a file, which tells how many times a job actually ran.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent

from aikube.catalog import Catalog
from aikube.executors import LocalExecutor
from aikube.registry import ModelRegistry
from aikube.runtime import Dispatcher, Outcome
from aikube.storage import LocalObjectStore
from aikube.testing import MemoryBus
from aikube.warehouse import DuckDBWarehouse
from trainer_dispatcher.domain import job_name, model_version
from trainer_dispatcher.handlers import Deps, router

REQUEST = "drift-20110212T000000Z"  # four weeks of features, 2011-01-15 to 2011-02-12
EMPTY_REQUEST = "drift-20120107T000000Z"  # a week with no data


@dataclass(frozen=True)
class Jobs:
    """This module's store and warehouse, and the folder the job processes write their spans to."""

    store: LocalObjectStore
    warehouse: DuckDBWarehouse
    traces: Path

    def dispatcher(self, bus: MemoryBus) -> Dispatcher:
        """A new dispatcher (fresh idempotency markers, as after a restart) over the same store."""
        executor = LocalExecutor(
            self.store,
            timeout_s=300,
            env={
                "AIKUBE_STORE": self.store.root.as_uri(),
                "AIKUBE_WAREHOUSE": f"duckdb://{self.warehouse.root}",
                "AIKUBE_TRACE_EXPORTER": "file",
                "AIKUBE_TRACE_DIR": str(self.traces),
            },
        )
        return bus.dispatcher("trainer-dispatcher", router, Deps(ModelRegistry(self.store), executor))

    def runs(self, request_id: str) -> int:
        """How many job processes trained for `request_id` (each writes one span carrying it)."""
        spans = [json.loads(line) for path in self.traces.glob("*.jsonl") for line in path.read_text().splitlines()]
        return sum(1 for span in spans if span["attributes"].get("aikube.request_id") == request_id)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory, clone: Callable[..., Any]) -> Jobs:
    """The session template (six weeks of features) copied into this module's folder."""
    root = tmp_path_factory.mktemp("trainer")
    state = Jobs(LocalObjectStore(root / "objects"), DuckDBWarehouse(root / "warehouse"), root / "traces")
    clone(state.store, state.warehouse)
    return state


@pytest.fixture(scope="module")
def requested(event: Callable[..., CloudEvent], request_data: Callable[..., dict[str, Any]]) -> CloudEvent:
    """training.v1.requested for REQUEST."""
    return event("training.v1.requested", request_data(REQUEST, "2011-01-15", "2011-02-12"))


@pytest.fixture(scope="module")
def first(jobs: Jobs, requested: CloudEvent, catalog: Catalog) -> Outcome:
    """The first delivery of REQUEST: its job runs here, once for the module."""
    bus = MemoryBus(catalog)
    return bus.deliver(jobs.dispatcher(bus), requested)


def test_request_completes_with_metrics_and_a_registered_version(jobs: Jobs, first: Outcome) -> None:
    """The job trains and registers the candidate; training.v1.completed names it with its metrics."""
    (completed,) = first.emitted
    data = completed.get_data()
    version = model_version("2011-02-12T00:00:00+00:00", REQUEST)
    registered = ModelRegistry(jobs.store).get("bikeshare", version)
    assert first.status == "handled" and completed.get_subject() == "model/bikeshare"
    assert (data["version"], data["job_name"]) == (version, job_name("bikeshare", REQUEST))
    assert data["metric"] == "mae" and data["metrics"] == registered.metrics and data["metrics"]["mae"] > 0
    assert data["artifact_uri"] == registered.artifact_uri and data["rows"] == registered.lineage["rows"] > 100


def test_completed_windows_split_the_request(first: Outcome) -> None:
    """The training and holdout windows split the requested four weeks by time."""
    data = first.emitted[0].get_data()
    assert data["train_window"]["start"] >= "2011-01-15" and data["holdout_window"]["end"] <= "2011-02-12"
    assert data["train_window"]["end"] == data["holdout_window"]["start"]


def test_request_after_a_restart_reuses_the_job(
    jobs: Jobs, first: Outcome, requested: CloudEvent, catalog: Catalog
) -> None:
    """The same request delivered to a new dispatcher starts no second job and emits the same outcome."""
    bus = MemoryBus(catalog)
    again = bus.deliver(jobs.dispatcher(bus), requested, attempt=2)
    assert again.status == "handled"
    assert again.emitted[0].get_data() == first.emitted[0].get_data()
    assert jobs.runs(REQUEST) == 1
    result = jobs.store.get_json(f"jobs/{job_name('bikeshare', REQUEST)}/result.json")
    assert result == {"succeeded": True, "error": ""}


def test_window_without_data_fails_with_a_readable_error(
    jobs: Jobs, catalog: Catalog, event: Callable[..., CloudEvent], request_data: Callable[..., dict[str, Any]]
) -> None:
    """A request over a window with no rows emits training.v1.failed with the job's reason."""
    bus = MemoryBus(catalog)
    requested = event("training.v1.requested", request_data(EMPTY_REQUEST, "2012-01-01", "2012-01-07"))
    outcome = bus.deliver(jobs.dispatcher(bus), requested)
    (failed,) = outcome.emitted
    assert outcome.status == "handled" and failed.get_type().endswith("training.v1.failed")
    assert failed.get_data()["job_name"] == job_name("bikeshare", EMPTY_REQUEST)
    assert failed.get_data()["error"] == (
        "training failed: TrainingError: dataset 'bikeshare': no rows with target 'bikers'"
    )
