"""The deployer through the real Dispatcher: training.v1.completed in, model.v1.deployed or rejected out.

Candidates are versions the trainer job's own function registered in the session template: "good" (four weeks of
January) and "tiny" (two February days, 38 rows). The first deployment runs a real model server (LocalServing);
the other tests use FakeServing, a test double of the serving platform, to see what was rolled out.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest
from cloudevents.core.v1.event import CloudEvent

from aikube.catalog import Catalog
from aikube.datasets import DatasetCatalog
from aikube.registry import ModelRegistry, ModelVersion
from aikube.rollout import LocalServing, RolloutFailed
from aikube.runtime import Dispatcher, Outcome
from aikube.storage import LocalObjectStore
from aikube.testing import MemoryBus
from aikube.warehouse import DuckDBWarehouse
from deployer.handlers import Deps, router
from trainer_dispatcher.domain import job_name


class FakeServing:
    """A ServingBackend test double: records rollouts; with `fail`, every rollout fails its health check."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.deployed: list[str] = []
        self.retired: list[str] = []

    def deploy(self, model: str, version: str, artifact_uri: str) -> str:
        self.deployed.append(version)
        if self.fail:
            raise RolloutFailed(f"{model} {version}: health check http://127.0.0.1:9/healthz failed")
        return f"http://serving.test/{model}/{version}"

    def retire(self, model: str, keep: str) -> None:
        self.retired.append(keep)

    def close(self) -> None:
        pass


def completed_data(candidate: ModelVersion) -> dict[str, Any]:
    """training.v1.completed data for a registered version, as the trainer-dispatcher emits it."""
    request_id = candidate.lineage["request_id"]
    return {
        "request_id": request_id,
        "model": candidate.model,
        "version": candidate.version,
        "artifact_uri": candidate.artifact_uri,
        "job_name": job_name(candidate.model, request_id),
        "metric": candidate.metric,
        "metrics": candidate.metrics,
        "train_window": candidate.train_window,
        "holdout_window": candidate.holdout_window,
        "rows": candidate.lineage["rows"],
    }


def deployer(bus: MemoryBus, store: LocalObjectStore, warehouse: DuckDBWarehouse, serving: Any) -> Dispatcher:
    """The deployer's router over a store and warehouse, rolling out through `serving`."""
    return bus.dispatcher("deployer", router, Deps(ModelRegistry(store), warehouse, DatasetCatalog(store), serving))


# --- the first deployment, on a real model server (once for the module) -----------------------------------------------


@dataclass(frozen=True)
class FirstDeployment:
    registry: ModelRegistry
    candidate: ModelVersion
    outcome: Outcome


@pytest.fixture(scope="module")
def local_serving() -> Iterator[LocalServing]:
    """Real model-server processes, stopped when the module ends."""
    serving = LocalServing(startup_timeout_s=60)
    yield serving
    serving.close()


@pytest.fixture(scope="module")
def first_deployment(
    tmp_path_factory: pytest.TempPathFactory,
    clone: Callable[..., dict[str, ModelVersion]],
    catalog: Catalog,
    event: Callable[..., CloudEvent],
    local_serving: LocalServing,
) -> FirstDeployment:
    """The "good" version delivered as the first candidate of the model, rolled out on LocalServing."""
    root = tmp_path_factory.mktemp("deployer")
    store, warehouse = LocalObjectStore(root / "objects"), DuckDBWarehouse(root / "warehouse")
    candidate = clone(store, warehouse)["good"]
    bus = MemoryBus(catalog)
    outcome = bus.deliver(
        deployer(bus, store, warehouse, local_serving), event("training.v1.completed", completed_data(candidate))
    )
    return FirstDeployment(ModelRegistry(store), candidate, outcome)


def _get(url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def test_first_candidate_is_deployed(first_deployment: FirstDeployment) -> None:
    """With no champion the candidate is deployed as the first model and becomes the champion at its endpoint."""
    (deployed,) = first_deployment.outcome.emitted
    data, version = deployed.get_data(), first_deployment.candidate.version
    assert first_deployment.outcome.status == "handled" and deployed.get_subject() == "model/bikeshare"
    assert (data["version"], data["train_window"]) == (version, first_deployment.candidate.train_window)
    assert data["candidate_score"] == pytest.approx(first_deployment.candidate.metrics["mae"])
    assert "champion_score" not in data and "previous_version" not in data
    champion = first_deployment.registry.champion("bikeshare")
    assert champion is not None and champion.version == version
    assert first_deployment.registry.endpoint("bikeshare") == data["endpoint"]


def test_deployed_endpoint_answers_healthz(first_deployment: FirstDeployment) -> None:
    """The endpoint in model.v1.deployed is a live server of that version."""
    endpoint = first_deployment.outcome.emitted[0].get_data()["endpoint"]
    assert _get(endpoint + "/healthz") == {"status": "ok", "version": first_deployment.candidate.version}


def test_deployed_endpoint_answers_predict(
    first_deployment: FirstDeployment, rows: Callable[..., pd.DataFrame]
) -> None:
    """/predict answers raw records (features computed by the server) with one prediction each."""
    endpoint = first_deployment.outcome.emitted[0].get_data()["endpoint"]
    records = json.loads(rows("2011-02-07", days=1).head(3).drop(columns=["bikers"]).to_json(orient="records"))
    answer = _get(endpoint + "/predict", {"records": records})
    assert answer["version"] == first_deployment.candidate.version
    assert len(answer["predictions"]) == 3 and all(isinstance(p, float) for p in answer["predictions"])


# --- against a champion, with a serving test double -------------------------------------------------------------------


@pytest.fixture
def serving() -> FakeServing:
    return FakeServing()


@pytest.fixture
def dispatcher(
    bus: MemoryBus,
    store: LocalObjectStore,
    warehouse: DuckDBWarehouse,
    serving: FakeServing,
    trained: dict[str, ModelVersion],
) -> Dispatcher:
    """The deployer over this test's copy of the template, rolling out on `serving`."""
    return deployer(bus, store, warehouse, serving)


@pytest.fixture
def completed(event: Callable[..., CloudEvent], trained: dict[str, ModelVersion]) -> Callable[[str], CloudEvent]:
    """completed(name): training.v1.completed of the template's version `name`."""
    return lambda name: event("training.v1.completed", completed_data(trained[name]))


def test_worse_candidate_is_rejected_with_both_scores(
    bus: MemoryBus,
    dispatcher: Dispatcher,
    registry: ModelRegistry,
    serving: FakeServing,
    trained: dict[str, ModelVersion],
    completed: Callable[[str], CloudEvent],
) -> None:
    """A candidate that scores worse than the champion on its own holdout rows is rejected; nothing rolls out."""
    registry.promote("bikeshare", trained["good"].version, endpoint="http://serving.test/good")
    outcome = bus.deliver(dispatcher, completed("tiny"))
    (rejected,) = outcome.emitted
    data = rejected.get_data()
    assert rejected.get_type().endswith("model.v1.rejected") and serving.deployed == []
    assert data["candidate_score"] > data["champion_score"] > 0
    assert data["champion_version"] == trained["good"].version and data["reason"].startswith("candidate mae")
    assert registry.champion("bikeshare") == trained["good"]


def test_better_candidate_replaces_the_champion(
    bus: MemoryBus,
    dispatcher: Dispatcher,
    registry: ModelRegistry,
    serving: FakeServing,
    trained: dict[str, ModelVersion],
    completed: Callable[[str], CloudEvent],
) -> None:
    """A candidate that beats the champion is rolled out, promoted, and the old version retired."""
    registry.promote("bikeshare", trained["tiny"].version, endpoint="http://serving.test/tiny")
    (deployed,) = bus.deliver(dispatcher, completed("good")).emitted
    data = deployed.get_data()
    assert (data["previous_version"], data["endpoint"]) == (
        trained["tiny"].version,
        "http://serving.test/bikeshare/" + trained["good"].version,
    )
    assert data["candidate_score"] < data["champion_score"]
    assert registry.champion("bikeshare") == trained["good"] and serving.retired == [trained["good"].version]


def test_rollout_failure_rejects_and_keeps_the_champion(
    bus: MemoryBus,
    store: LocalObjectStore,
    warehouse: DuckDBWarehouse,
    registry: ModelRegistry,
    trained: dict[str, ModelVersion],
    completed: Callable[[str], CloudEvent],
) -> None:
    """A winning candidate that fails its health check is rejected as `rollout failed`; the champion serves on."""
    registry.promote("bikeshare", trained["tiny"].version, endpoint="http://serving.test/tiny")
    history = registry.history("bikeshare")
    outcome = bus.deliver(deployer(bus, store, warehouse, FakeServing(fail=True)), completed("good"))
    (rejected,) = outcome.emitted
    assert rejected.get_type().endswith("model.v1.rejected")
    assert rejected.get_data()["reason"].startswith("rollout failed: ")
    assert {"candidate_score", "champion_score"} <= set(rejected.get_data())
    assert registry.champion("bikeshare") == trained["tiny"] and registry.history("bikeshare") == history


def test_redelivery_after_promotion_re_emits_deployed(
    bus: MemoryBus,
    dispatcher: Dispatcher,
    store: LocalObjectStore,
    warehouse: DuckDBWarehouse,
    serving: FakeServing,
    completed: Callable[[str], CloudEvent],
) -> None:
    """The same completion redelivered after the promotion (a restart) re-announces it without a second rollout."""
    sent = completed("good")
    first = bus.deliver(dispatcher, sent)
    again = bus.deliver(deployer(bus, store, warehouse, serving), sent, attempt=2)
    assert again.status == "handled" and len(serving.deployed) == 1
    assert again.emitted[0].get_data()["endpoint"] == first.emitted[0].get_data()["endpoint"]
