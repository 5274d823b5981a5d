"""Fixtures of the service tests: real embedded adapters in tmp_path, the bikeshare data, events from the catalog.

Each test gets its own object store (LocalObjectStore) and warehouse (DuckDBWarehouse) under tmp_path and its own
MemoryBus. State that takes seconds to build (six weeks landed through the ingestor and feature-builder, two model
versions trained by the trainer job's own function) is built once per session by the production code and copied
into the tests that need it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest
from cloudevents.core.v1.event import CloudEvent

from aikube.catalog import Catalog
from aikube.datasets import DatasetCatalog, DatasetSpec, infer_columns
from aikube.envelope import make_event, source_of
from aikube.registry import ModelRegistry, ModelVersion
from aikube.storage import LocalObjectStore
from aikube.tables import dataset_subject, features_table, model_subject
from aikube.testing import MemoryBus
from aikube.warehouse import DuckDBWarehouse
from aikube.windows import iso_utc
from feature_builder.handlers import Deps as BuilderDeps
from feature_builder.handlers import router as builder_router
from ingestor.handlers import Deps as IngestorDeps
from ingestor.handlers import router as ingestor_router
from trainer_dispatcher.domain import model_version
from trainer_dispatcher.job import JobSettings, train_and_register

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data" / "bikeshare" / "bikeshare_dc_2011_hourly.csv"
MASK_SALT = "service-test-salt"
WEEKS = ["2011-01-01", "2011-01-08", "2011-01-15", "2011-01-22", "2011-01-29", "2011-02-05"]
# Two versions the trainer job registers in the session template: four weeks of January, and two days of
# February (38 rows to fit: a model that predicts little more than the mean).
TRAININGS = {
    "good": ("bootstrap-20110129T000000Z", "2011-01-01", "2011-01-29"),
    "tiny": ("drift-20110207T000000Z", "2011-02-05", "2011-02-07"),
}


def batch_id(start: str) -> str:
    """The batch id of the week starting at `start`, e.g. bikeshare-20110101T0000."""
    return f"bikeshare-{pd.Timestamp(start):%Y%m%dT%H%M}"


def store_uri(store: LocalObjectStore) -> str:
    return store.root.as_uri()


def warehouse_uri(warehouse: DuckDBWarehouse) -> str:
    return f"duckdb://{warehouse.root}"


def records_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a JSON source sends them (missing values as null)."""
    parsed: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return parsed


def new_event(catalog: Catalog, key: str, data: dict[str, Any], *, subject: str | None = None) -> CloudEvent:
    """A validated event of a catalog type from its producer; the subject is the dataset or model it is about."""
    spec = catalog[key]
    if subject is None:
        subject = model_subject(data["model"]) if "model" in data else dataset_subject(data["dataset"])
    return make_event(spec, data, source=source_of(spec.producer), subject=subject)


def arrived_data(frame: pd.DataFrame, start: str | None = None, **fields: Any) -> dict[str, Any]:
    """dataset.v1.arrived data for inline rows; `start` names the batch and gives it a week's window."""
    data: dict[str, Any] = {"dataset": "bikeshare", "records": records_of(frame), **fields}
    if start is not None:
        data.setdefault("batch_id", batch_id(start))
        data.setdefault("window", {"start": iso_utc(start), "end": iso_utc(pd.Timestamp(start) + pd.Timedelta("7D"))})
    return data


def land_batch(
    catalog: Catalog, store: LocalObjectStore, warehouse: DuckDBWarehouse, data: dict[str, Any]
) -> CloudEvent:
    """Run a batch through the real ingestor and feature-builder; return the featureSet.v1.built event."""
    bus = MemoryBus(catalog)
    datasets = DatasetCatalog(store)
    ingestor = bus.dispatcher("ingestor", ingestor_router, IngestorDeps(store, warehouse, datasets, MASK_SALT))
    builder = bus.dispatcher("feature-builder", builder_router, BuilderDeps(warehouse, datasets))
    (ingested,) = bus.deliver(ingestor, new_event(catalog, "dataset.v1.arrived", data)).emitted
    (built,) = bus.deliver(builder, ingested).emitted
    return built


def training_request(request_id: str, start: str, end: str) -> dict[str, Any]:
    """training.v1.requested data for the bikeshare model over [start, end)."""
    return {
        "request_id": request_id,
        "model": "bikeshare",
        "dataset": "bikeshare",
        "reason": request_id.split("-")[0],
        "train_window": {"start": iso_utc(start), "end": iso_utc(end)},
        "trigger_id": f"trigger-{request_id}",
        "features_table": features_table("bikeshare"),
    }


def train(store: LocalObjectStore, warehouse: DuckDBWarehouse, request_id: str, start: str, end: str) -> str:
    """Register a version with the trainer job's own function, under the version the dispatcher would derive."""
    request = training_request(request_id, start, end)
    request["version"] = model_version(request["train_window"]["end"], request_id)
    settings = JobSettings(
        store=store_uri(store), warehouse=warehouse_uri(warehouse), training_request=json.dumps(request)
    )
    return train_and_register(settings)


# --- session state ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def bikeshare() -> pd.DataFrame:
    """The 2011 hourly rentals as the CSV holds them (text timestamps)."""
    return pd.read_csv(DATA)


@pytest.fixture(scope="session")
def spec(bikeshare: pd.DataFrame) -> DatasetSpec:
    """examples/bikeshare.yaml with its columns inferred from the data, as `aikube register` does."""
    base = DatasetSpec.from_yaml(REPO / "examples" / "bikeshare.yaml")
    return base.with_columns(infer_columns(bikeshare, base.timestamp))


@pytest.fixture(scope="session")
def rows(bikeshare: pd.DataFrame) -> Callable[..., pd.DataFrame]:
    """rows(start, days=7): the hourly rows in [start, start + days)."""
    stamps = pd.to_datetime(bikeshare["timestamp"])

    def select(start: str, days: float = 7) -> pd.DataFrame:
        begin = pd.Timestamp(start)
        return bikeshare[(stamps >= begin) & (stamps < begin + pd.Timedelta(days=days))].reset_index(drop=True)

    return select


@pytest.fixture(scope="session")
def template(
    tmp_path_factory: pytest.TempPathFactory,
    catalog: Catalog,
    spec: DatasetSpec,
    rows: Callable[..., pd.DataFrame],
) -> Path:
    """Six weeks landed through the ingestor and feature-builder, and the TRAININGS versions registered."""
    root = tmp_path_factory.mktemp("template")
    store, warehouse = LocalObjectStore(root / "objects"), DuckDBWarehouse(root / "warehouse")
    DatasetCatalog(store).register(spec)
    for start in WEEKS:
        land_batch(catalog, store, warehouse, arrived_data(rows(start), start))
    for request_id, start, end in TRAININGS.values():
        train(store, warehouse, request_id, start, end)
    return root


@pytest.fixture(scope="session")
def clone(template: Path) -> Callable[[LocalObjectStore, DuckDBWarehouse], dict[str, ModelVersion]]:
    """clone(store, warehouse): copy the template into them; returns the registered versions by TRAININGS name."""

    def copy(store: LocalObjectStore, warehouse: DuckDBWarehouse) -> dict[str, ModelVersion]:
        shutil.copytree(template / "objects", store.root, dirs_exist_ok=True)
        shutil.copytree(template / "warehouse", warehouse.root, dirs_exist_ok=True)
        registry = ModelRegistry(store)
        return {
            name: registry.get("bikeshare", model_version(iso_utc(end), request_id))
            for name, (request_id, _, end) in TRAININGS.items()
        }

    return copy


# --- event and data helpers -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def event(catalog: Catalog) -> Callable[..., CloudEvent]:
    """event(key, data, subject=None): a new event (fresh id) of a catalog type from its producer."""
    return lambda key, data, subject=None: new_event(catalog, key, data, subject=subject)


@pytest.fixture(scope="session")
def example(catalog: Catalog) -> Callable[..., dict[str, Any]]:
    """example(key, case="full", **overrides): the data of events/examples/ for a catalog key."""

    def load(key: str, case: str = "full", **overrides: Any) -> dict[str, Any]:
        schema = catalog[key].schema_file
        relative = schema.relative_to(catalog.events_dir / "schemas").with_name(f"{schema.stem}-{case}.json")
        data: dict[str, Any] = json.loads((catalog.events_dir / "examples" / relative).read_text())
        return {**data, **overrides}

    return load


@pytest.fixture(scope="session")
def arrived(catalog: Catalog) -> Callable[..., CloudEvent]:
    """arrived(frame, start=None, **fields): a dataset.v1.arrived event with the frame's rows inline."""
    return lambda frame, start=None, **fields: new_event(
        catalog, "dataset.v1.arrived", arrived_data(frame, start, **fields)
    )


@pytest.fixture(scope="session")
def request_data() -> Callable[..., dict[str, Any]]:
    """request_data(request_id, start, end): training.v1.requested data for bikeshare."""
    return training_request


@pytest.fixture(scope="session")
def path_of() -> Callable[[str], Path]:
    """path_of(uri): the local file a file:// URI names."""
    return lambda uri: Path(unquote(urlparse(uri).path))


# --- per test ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def bus(catalog: Catalog) -> MemoryBus:
    """An in-memory bus of this test only: the real codec and schema validation, no network."""
    return MemoryBus(catalog)


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    return DuckDBWarehouse(tmp_path / "warehouse")


@pytest.fixture
def datasets(store: LocalObjectStore, spec: DatasetSpec) -> DatasetCatalog:
    """The dataset catalog with bikeshare registered."""
    registered = DatasetCatalog(store)
    registered.register(spec)
    return registered


@pytest.fixture
def registry(store: LocalObjectStore) -> ModelRegistry:
    return ModelRegistry(store)


@pytest.fixture
def trained(
    clone: Callable[[LocalObjectStore, DuckDBWarehouse], dict[str, ModelVersion]],
    store: LocalObjectStore,
    warehouse: DuckDBWarehouse,
) -> dict[str, ModelVersion]:
    """This test's store and warehouse hold a copy of the template; returns its versions by TRAININGS name."""
    return clone(store, warehouse)


@pytest.fixture
def land(
    catalog: Catalog, store: LocalObjectStore, warehouse: DuckDBWarehouse, datasets: DatasetCatalog
) -> Callable[..., CloudEvent]:
    """land(frame, start, **fields): the batch through ingestor and feature-builder; returns featureSet.v1.built."""
    return lambda frame, start, **fields: land_batch(catalog, store, warehouse, arrived_data(frame, start, **fields))
