"""The feature-builder through the real Dispatcher: dataset.v1.ingested in, featureSet.v1.built out."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest
from cloudevents.core.v1.event import CloudEvent

from aikube.datasets import DatasetCatalog
from aikube.runtime import Dispatcher
from aikube.storage import LocalObjectStore
from aikube.testing import MemoryBus
from aikube.warehouse import DuckDBWarehouse
from feature_builder.handlers import Deps, router
from ingestor.handlers import Deps as IngestorDeps
from ingestor.handlers import router as ingestor_router

START = "2011-01-08"  # a Saturday
BATCH = "bikeshare-20110108T0000"


@pytest.fixture
def dispatcher(bus: MemoryBus, warehouse: DuckDBWarehouse, datasets: DatasetCatalog) -> Dispatcher:
    """The feature-builder's router over this test's warehouse."""
    return bus.dispatcher("feature-builder", router, Deps(warehouse, datasets))


@pytest.fixture
def ingest(
    bus: MemoryBus,
    store: LocalObjectStore,
    warehouse: DuckDBWarehouse,
    datasets: DatasetCatalog,
    arrived: Callable[..., CloudEvent],
) -> Callable[[pd.DataFrame], CloudEvent]:
    """ingest(frame): the batch through the real ingestor; returns its dataset.v1.ingested event."""
    ingestor = bus.dispatcher("ingestor", ingestor_router, IngestorDeps(store, warehouse, datasets, "salt"))

    def run(frame: pd.DataFrame) -> CloudEvent:
        (ingested,) = bus.deliver(ingestor, arrived(frame, START)).emitted
        return ingested

    return run


def test_features_partition_is_materialised(
    bus: MemoryBus,
    dispatcher: Dispatcher,
    warehouse: DuckDBWarehouse,
    ingest: Callable[[pd.DataFrame], CloudEvent],
    rows: Callable[..., pd.DataFrame],
) -> None:
    """An ingested week becomes the batch's partition of features_bikeshare, announced with its row count."""
    week = rows(START)
    outcome = bus.deliver(dispatcher, ingest(week))
    (built,) = bus.emitted("featureSet.v1.built")
    data = built.get_data()
    assert outcome.status == "handled" and built.get_subject() == "dataset/bikeshare"
    assert (data["table"], data["snapshot"], data["rows"]) == ("features_bikeshare", BATCH, len(week))
    assert warehouse.partitions("features_bikeshare") == [BATCH]
    assert data["window"] == {"start": "2011-01-08T00:00:00+00:00", "end": "2011-01-15T00:00:00+00:00"}


def test_features_carry_calendar_columns(
    bus: MemoryBus,
    dispatcher: Dispatcher,
    warehouse: DuckDBWarehouse,
    ingest: Callable[[pd.DataFrame], CloudEvent],
    rows: Callable[..., pd.DataFrame],
) -> None:
    """hour, day_of_week (0 = Sunday) and month are derived from the timestamp; dropped columns are absent."""
    bus.deliver(dispatcher, ingest(rows(START)))
    (built,) = bus.emitted("featureSet.v1.built")
    features = warehouse.query("SELECT * FROM features_bikeshare ORDER BY timestamp")
    first = features.iloc[9]  # 2011-01-08 09:00, a Saturday
    assert built.get_data()["feature_columns"][:3] == ["hour", "day_of_week", "month"]
    assert (first["timestamp"], first["hour"], first["day_of_week"], first["month"]) == (
        pd.Timestamp("2011-01-08 09:00:00"),
        9,
        6,
        1,
    )
    assert (features["hour"] == features["hr"]).all()
    assert not {"casual", "registered", "day"} & set(features.columns)


def test_zero_accepted_rows_build_nothing(
    bus: MemoryBus,
    dispatcher: Dispatcher,
    warehouse: DuckDBWarehouse,
    ingest: Callable[[pd.DataFrame], CloudEvent],
    rows: Callable[..., pd.DataFrame],
) -> None:
    """A batch with no accepted rows is announced with rows 0, and the warehouse is not touched."""
    outcome = bus.deliver(dispatcher, ingest(rows(START).drop(columns=["temp"])))
    (built,) = bus.emitted("featureSet.v1.built")
    assert outcome.status == "handled" and built.get_data()["rows"] == 0 and "window" not in built.get_data()
    assert warehouse.partitions("features_bikeshare") == [] and not (warehouse.root / "features_bikeshare").exists()
