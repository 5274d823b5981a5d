"""The drift-watcher through the real Dispatcher: featureSet.v1.built in, drift.v1.checked (and detected) out."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cloudevents.core.v1.event import CloudEvent

from aikube.datasets import DatasetCatalog
from aikube.registry import ModelRegistry, ModelVersion
from aikube.runtime import Dispatcher
from aikube.storage import LocalObjectStore
from aikube.testing import MemoryBus
from aikube.warehouse import DuckDBWarehouse
from drift_watcher.handlers import Deps, router

JUNE = "2011-06-04"


@pytest.fixture
def dispatcher(
    bus: MemoryBus,
    store: LocalObjectStore,
    warehouse: DuckDBWarehouse,
    datasets: DatasetCatalog,
    registry: ModelRegistry,
) -> Dispatcher:
    """The drift-watcher's router over this test's store, warehouse and registry."""
    return bus.dispatcher("drift-watcher", router, Deps(store, warehouse, datasets, registry))


@pytest.fixture
def champion(trained: dict[str, ModelVersion], registry: ModelRegistry) -> ModelVersion:
    """The January model (trained by the trainer job's function) promoted to champion."""
    registry.promote("bikeshare", trained["good"].version, endpoint="http://127.0.0.1:9")
    return trained["good"]


def checked(bus: MemoryBus) -> list[dict[str, Any]]:
    return [event.get_data() for event in bus.emitted("drift.v1.checked")]


def test_without_champion_the_window_has_no_reference(
    bus: MemoryBus, dispatcher: Dispatcher, event: Callable[..., CloudEvent], example: Callable[..., dict[str, Any]]
) -> None:
    """Before any model is deployed a window is recorded as checked against nothing: no_reference, not drifted."""
    outcome = bus.deliver(dispatcher, event("featureSet.v1.built", example("featureSet.v1.built")))
    (data,) = checked(bus)
    assert outcome.status == "handled" and bus.emitted("drift.v1.detected") == []
    assert (data["status"], data["drifted"], data["rows"]) == ("no_reference", False, 161)
    assert data["window"] == example("featureSet.v1.built")["window"]


@pytest.fixture
def june(champion: ModelVersion, land: Callable[..., CloudEvent], rows: Callable[..., pd.DataFrame]) -> CloudEvent:
    """A June week landed through the ingestor and feature-builder: far from the champion's January."""
    return land(rows(JUNE), JUNE)


def test_window_far_from_training_is_checked_as_drifted(
    bus: MemoryBus, dispatcher: Dispatcher, champion: ModelVersion, june: CloudEvent
) -> None:
    """June against a January reference drifts in data and in the model's error."""
    outcome = bus.deliver(dispatcher, june)
    (data,) = checked(bus)
    assert outcome.status == "handled"
    assert (data["status"], data["drifted"], data["model_version"]) == ("checked", True, champion.version)
    assert data["share"] >= data["threshold"] == 0.5
    assert data["performance"]["degraded"] and data["performance"]["value"] > data["performance"]["baseline"]


def test_drifted_window_emits_drift_detected(bus: MemoryBus, dispatcher: Dispatcher, june: CloudEvent) -> None:
    """The drifted window is also announced as drift.v1.detected, naming the drifted columns."""
    bus.deliver(dispatcher, june)
    (detected,) = bus.emitted("drift.v1.detected")
    data = detected.get_data()
    assert detected.get_subject() == "model/bikeshare" and data["kinds"] == ["data", "performance"]
    assert {"temp", "atemp"} <= set(data["drifted_columns"])


def test_drifted_columns_include_unseen_categories(bus: MemoryBus, dispatcher: Dispatcher, june: CloudEvent) -> None:
    """A column drifted by values never seen in training (June in a January reference) counts as drifted."""
    bus.deliver(dispatcher, june)
    (data,) = checked(bus)
    (detected,) = bus.emitted("drift.v1.detected")
    tested = [column for column in data["columns"] if "method" in column]
    assert {"month", "mnth", "season"} <= set(detected.get_data()["drifted_columns"])
    assert len(detected.get_data()["drifted_columns"]) == round(data["share"] * len(tested))


def test_drift_report_and_result_are_stored(
    bus: MemoryBus, dispatcher: Dispatcher, june: CloudEvent, path_of: Callable[[str], Path]
) -> None:
    """The Evidently HTML report and the checked result are files at report_uri and result_uri."""
    bus.deliver(dispatcher, june)
    (data,) = checked(bus)
    (detected,) = bus.emitted("drift.v1.detected")
    assert path_of(data["report_uri"]).read_text().lstrip().lower().startswith("<")
    assert json.loads(path_of(data["result_uri"]).read_text()) == data
    assert detected.get_data()["report_uri"] == data["report_uri"]


def test_empty_window_is_checked_as_empty(
    bus: MemoryBus,
    dispatcher: Dispatcher,
    champion: ModelVersion,
    land: Callable[..., CloudEvent],
    rows: Callable[..., pd.DataFrame],
) -> None:
    """A feature set of zero rows (every row rejected upstream) is recorded as empty_window, not an error."""
    built = land(rows(JUNE).drop(columns=["temp"]), JUNE)
    outcome = bus.deliver(dispatcher, built)
    (data,) = checked(bus)
    assert outcome.status == "handled" and built.get_data()["rows"] == 0
    assert (data["status"], data["drifted"]) == ("empty_window", False) and bus.emitted("drift.v1.detected") == []
