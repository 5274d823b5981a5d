"""The ingestor through the real Dispatcher: dataset.v1.arrived in, dataset.v1.ingested out, data landed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cloudevents.core.v1.event import CloudEvent

from aikube.catalog import Catalog, dead_letter_topic, subscription_name
from aikube.datasets import DatasetCatalog, DatasetSpec
from aikube.runtime import DL_REASON, Dispatcher
from aikube.storage import LocalObjectStore
from aikube.testing import MemoryBus
from aikube.warehouse import DuckDBWarehouse
from ingestor.handlers import Deps, router

SALT = "ingestor-test-salt"
START = "2011-01-10"  # a Monday with all 24 hours
BATCH = "bikeshare-20110110T0000"


@pytest.fixture
def dispatcher(
    bus: MemoryBus, store: LocalObjectStore, warehouse: DuckDBWarehouse, datasets: DatasetCatalog
) -> Dispatcher:
    """The ingestor's router over this test's store and warehouse, with its own idempotency markers."""
    return bus.dispatcher("ingestor", router, Deps(store, warehouse, datasets, SALT))


@pytest.fixture
def day(rows: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    """One day of bikeshare rows (24)."""
    return rows(START, days=1)


@pytest.fixture
def rides(datasets: DatasetCatalog) -> DatasetSpec:
    """A small synthetic dataset with a masked e-mail column, registered beside bikeshare."""
    spec = DatasetSpec(
        name="rides",
        timestamp="ts",
        target="riders",
        task="regression",
        sensitive={"email": "mask"},
        columns={"ts": "timestamp", "temp": "float", "email": "string", "riders": "int"},
    )
    datasets.register(spec)
    return spec


def ride_rows() -> list[dict[str, Any]]:
    """Three rides; the second has a non-numeric temperature."""
    return [
        {"ts": "2011-01-03 00:00:00", "temp": 0.2, "email": "alice@example.com", "riders": 3},
        {"ts": "2011-01-03 01:00:00", "temp": "warm", "email": "bob@example.com", "riders": 4},
        {"ts": "2011-01-03 02:00:00", "temp": 0.3, "email": "carol@example.com", "riders": 5},
    ]


def ingested(bus: MemoryBus) -> list[dict[str, Any]]:
    """Data of every dataset.v1.ingested event the bus carried."""
    return [event.get_data() for event in bus.emitted("dataset.v1.ingested")]


def test_inline_batch_emits_ingested_with_counts(
    bus: MemoryBus, dispatcher: Dispatcher, arrived: Callable[..., CloudEvent], day: pd.DataFrame
) -> None:
    """A clean inline batch is accepted whole and announced with its counts, table and window."""
    outcome = bus.deliver(dispatcher, arrived(day, batch_id=BATCH))
    (data,) = ingested(bus)
    assert outcome.status == "handled"
    assert (data["rows_received"], data["rows_accepted"], data["rows_rejected"]) == (24, 24, 0)
    assert data["table"] == "raw_bikeshare" and "rejects_uri" not in data
    assert data["window"] == {"start": "2011-01-10T00:00:00+00:00", "end": "2011-01-10T23:00:00.000001+00:00"}


def test_inline_batch_lands_raw_parquet(
    bus: MemoryBus,
    dispatcher: Dispatcher,
    store: LocalObjectStore,
    arrived: Callable[..., CloudEvent],
    day: pd.DataFrame,
    spec: DatasetSpec,
    path_of: Callable[[str], Path],
) -> None:
    """The accepted rows land as Parquet at raw_uri, with the declared columns, timestamps parsed."""
    bus.deliver(dispatcher, arrived(day, batch_id=BATCH))
    (data,) = ingested(bus)
    landed = pd.read_parquet(path_of(data["raw_uri"]))
    assert data["raw_uri"] == store.uri_for(f"raw/bikeshare/{BATCH}.parquet")
    assert sorted(landed.columns) == sorted(spec.columns) and len(landed) == 24
    assert landed["timestamp"].iloc[0] == pd.Timestamp("2011-01-10 00:00:00")


def test_inline_batch_appends_a_warehouse_partition(
    bus: MemoryBus,
    dispatcher: Dispatcher,
    warehouse: DuckDBWarehouse,
    arrived: Callable[..., CloudEvent],
    day: pd.DataFrame,
) -> None:
    """The accepted rows are the batch's partition of raw_bikeshare."""
    bus.deliver(dispatcher, arrived(day, batch_id=BATCH))
    counted = warehouse.query("SELECT _partition, count(*) AS n, sum(bikers) AS bikers FROM raw_bikeshare GROUP BY 1")
    assert warehouse.partitions("raw_bikeshare") == [BATCH]
    assert counted.to_dict("records") == [{"_partition": BATCH, "n": 24, "bikers": int(day["bikers"].sum())}]


def test_producer_window_is_passed_on(
    bus: MemoryBus, dispatcher: Dispatcher, arrived: Callable[..., CloudEvent], day: pd.DataFrame
) -> None:
    """A window sent by the producer is the window of the ingested event, as sent."""
    window = {"start": "2011-01-10T00:00:00Z", "end": "2011-01-11T00:00:00Z"}
    bus.deliver(dispatcher, arrived(day, batch_id=BATCH, window=window))
    assert ingested(bus)[0]["window"] == window


def test_bad_rows_are_rejected_with_reasons_per_row(
    bus: MemoryBus,
    dispatcher: Dispatcher,
    arrived: Callable[..., CloudEvent],
    day: pd.DataFrame,
    path_of: Callable[[str], Path],
) -> None:
    """A non-numeric temp and a missing timestamp reject their rows; the rejects file names each reason."""
    bad = day.astype({"temp": object, "timestamp": object})
    bad.loc[2, "temp"] = "abc"
    bad.loc[5, "timestamp"] = None
    bus.deliver(dispatcher, arrived(bad, batch_id=BATCH))
    (data,) = ingested(bus)
    rejects = pd.read_json(path_of(data["rejects_uri"]), lines=True, dtype=False)
    assert rejects["_reason"].tolist() == ["temp: not a float: 'abc'", "timestamp: missing value"]
    assert rejects["temp"].tolist() == ["abc", str(day.loc[5, "temp"])]


def test_bad_rows_are_counted_by_reason(
    bus: MemoryBus, dispatcher: Dispatcher, arrived: Callable[..., CloudEvent], day: pd.DataFrame
) -> None:
    """reject_reasons counts rejected rows per reason kind, without the offending values."""
    bad = day.astype({"temp": object, "timestamp": object})
    bad.loc[[2, 3], "temp"] = "abc"
    bad.loc[5, "timestamp"] = None
    bus.deliver(dispatcher, arrived(bad, batch_id=BATCH))
    (data,) = ingested(bus)
    assert (data["rows_received"], data["rows_accepted"], data["rows_rejected"]) == (24, 21, 3)
    assert data["reject_reasons"] == {"temp: not a float": 2, "timestamp: missing value": 1}


def test_good_rows_still_land_beside_bad_ones(
    bus: MemoryBus,
    dispatcher: Dispatcher,
    warehouse: DuckDBWarehouse,
    arrived: Callable[..., CloudEvent],
    day: pd.DataFrame,
) -> None:
    """Rejected rows do not hold back the rest of the batch."""
    bad = day.astype({"temp": object})
    bad.loc[2, "temp"] = "abc"
    bus.deliver(dispatcher, arrived(bad, batch_id=BATCH))
    landed = warehouse.query("SELECT timestamp FROM raw_bikeshare ORDER BY timestamp")
    assert len(landed) == 23 and pd.Timestamp("2011-01-10 02:00:00") not in set(landed["timestamp"])


def test_batch_missing_a_column_rejects_every_row(
    bus: MemoryBus,
    dispatcher: Dispatcher,
    warehouse: DuckDBWarehouse,
    arrived: Callable[..., CloudEvent],
    day: pd.DataFrame,
) -> None:
    """Without a declared feature column every row is rejected; the event is still emitted and nothing lands."""
    outcome = bus.deliver(dispatcher, arrived(day.drop(columns=["temp"]), batch_id=BATCH))
    (data,) = ingested(bus)
    assert outcome.status == "handled"
    assert (data["rows_accepted"], data["rows_rejected"]) == (0, 24)
    assert data["reject_reasons"] == {"missing column temp": 24} and "window" not in data
    assert warehouse.partitions("raw_bikeshare") == []


def test_sensitive_column_is_masked_in_the_landed_parquet(
    bus: MemoryBus,
    dispatcher: Dispatcher,
    event: Callable[..., CloudEvent],
    rides: DatasetSpec,
    path_of: Callable[[str], Path],
) -> None:
    """A `mask` column lands as tokens: the raw e-mail is nowhere in the Parquet file."""
    bus.deliver(dispatcher, event("dataset.v1.arrived", {"dataset": "rides", "batch_id": "r1", "records": ride_rows()}))
    (data,) = ingested(bus)
    raw = path_of(data["raw_uri"]).read_bytes()
    assert data["masked_columns"] == ["email"]
    assert b"alice@example.com" not in raw and b"carol@example.com" not in raw
    assert pd.read_parquet(path_of(data["raw_uri"]))["email"].str.fullmatch("[0-9a-f]{16}").all()


def test_sensitive_column_is_masked_in_the_warehouse(
    bus: MemoryBus,
    dispatcher: Dispatcher,
    warehouse: DuckDBWarehouse,
    event: Callable[..., CloudEvent],
    rides: DatasetSpec,
) -> None:
    """The warehouse rows carry the tokens, not the e-mails."""
    bus.deliver(dispatcher, event("dataset.v1.arrived", {"dataset": "rides", "batch_id": "r1", "records": ride_rows()}))
    emails = warehouse.query("SELECT email FROM raw_rides")["email"].tolist()
    assert len(emails) == 2 and not any("@" in email for email in emails)


def test_sensitive_value_of_a_rejected_row_is_masked_in_the_rejects_file(
    bus: MemoryBus,
    dispatcher: Dispatcher,
    event: Callable[..., CloudEvent],
    rides: DatasetSpec,
    path_of: Callable[[str], Path],
) -> None:
    """A rejected row lands in the rejects file too, so its PII is masked there as well."""
    bus.deliver(dispatcher, event("dataset.v1.arrived", {"dataset": "rides", "batch_id": "r1", "records": ride_rows()}))
    (data,) = ingested(bus)
    rejects = path_of(data["rejects_uri"]).read_text()
    assert "bob@example.com" not in rejects and "temp: not a float: 'warm'" in rejects


def test_rows_outside_the_producer_window_are_rejected_with_the_reason(
    bus: MemoryBus, dispatcher: Dispatcher, arrived: Callable[..., CloudEvent], day: pd.DataFrame
) -> None:
    """A row stamped outside the window its producer declared is kept as a reject, not landed."""
    window = {"start": "2011-01-10T06:00:00Z", "end": "2011-01-11T00:00:00Z"}
    bus.deliver(dispatcher, arrived(day, batch_id=BATCH, window=window))
    (data,) = ingested(bus)
    assert (data["rows_accepted"], data["rows_rejected"]) == (18, 6)
    assert data["reject_reasons"] == {"timestamp: outside the batch window": 6}


def test_a_row_stamped_after_its_event_was_sent_is_rejected(
    bus: MemoryBus, dispatcher: Dispatcher, arrived: Callable[..., CloudEvent], day: pd.DataFrame
) -> None:
    """One row from 2099 cannot stretch the batch's window over decades: it is rejected, the rest land."""
    rows = day.astype({"timestamp": object})
    rows.loc[rows.index[-1], "timestamp"] = "2099-01-01 00:00:00"
    bus.deliver(dispatcher, arrived(rows, batch_id=BATCH))
    (data,) = ingested(bus)
    assert data["reject_reasons"] == {"timestamp: later than the event that sent it": 1}
    assert data["window"]["end"].startswith("2011-01-10T22:00:00")


def test_a_window_that_ends_before_it_starts_is_dead_lettered(
    bus: MemoryBus, dispatcher: Dispatcher, catalog: Catalog, arrived: Callable[..., CloudEvent], day: pd.DataFrame
) -> None:
    window = {"start": "2011-01-11T00:00:00Z", "end": "2011-01-10T00:00:00Z"}
    outcome = bus.deliver(dispatcher, arrived(day, batch_id=BATCH, window=window))
    (message,) = bus.on_topic(dead_letter_topic(subscription_name("ingestor", catalog["dataset.v1.arrived"].topic)))
    assert outcome.status == "dead_lettered" and ingested(bus) == []
    assert "window ends (2011-01-10T00:00:00Z) at or before it starts" in message.attributes[DL_REASON]


def test_unknown_dataset_is_dead_lettered(
    bus: MemoryBus, dispatcher: Dispatcher, catalog: Catalog, arrived: Callable[..., CloudEvent], day: pd.DataFrame
) -> None:
    """A batch of an unregistered dataset can never succeed: dead-lettered at once with the reason."""
    outcome = bus.deliver(dispatcher, arrived(day, batch_id=BATCH, dataset="unheard-of"))
    topic = dead_letter_topic(subscription_name("ingestor", catalog["dataset.v1.arrived"].topic))
    (message,) = bus.on_topic(topic)
    assert outcome.status == "dead_lettered" and ingested(bus) == []
    assert "dataset 'unheard-of' is not registered" in message.attributes[DL_REASON]


def test_uri_batch_is_read_from_the_file(
    bus: MemoryBus,
    dispatcher: Dispatcher,
    warehouse: DuckDBWarehouse,
    event: Callable[..., CloudEvent],
    day: pd.DataFrame,
    tmp_path: Path,
) -> None:
    """A batch sent by reference (a CSV file URI) is read and landed like an inline one."""
    path = tmp_path / "landing" / f"{BATCH}.csv"
    path.parent.mkdir()
    day.to_csv(path, index=False)
    bus.deliver(
        dispatcher, event("dataset.v1.arrived", {"dataset": "bikeshare", "batch_id": BATCH, "uri": path.as_uri()})
    )
    (data,) = ingested(bus)
    assert (data["rows_received"], data["rows_accepted"]) == (24, 24)
    assert warehouse.query("SELECT count(*) AS n FROM raw_bikeshare")["n"].item() == 24


@pytest.mark.parametrize("uri", ["missing", "gs://landing/b.csv", "http://example.com/b.csv"])
def test_unreadable_uri_is_dead_lettered_at_once(
    bus: MemoryBus, dispatcher: Dispatcher, event: Callable[..., CloudEvent], tmp_path: Path, uri: str
) -> None:
    """A batch file that is missing, or whose scheme this store cannot read, is dead-lettered on the first try."""
    uri = (tmp_path / "nowhere.csv").as_uri() if uri == "missing" else uri
    outcome = bus.deliver(
        dispatcher, event("dataset.v1.arrived", {"dataset": "bikeshare", "batch_id": BATCH, "uri": uri})
    )
    assert outcome.status == "dead_lettered" and "cannot be read" in outcome.reason


def test_redelivered_event_has_one_effect(
    bus: MemoryBus,
    dispatcher: Dispatcher,
    warehouse: DuckDBWarehouse,
    arrived: Callable[..., CloudEvent],
    day: pd.DataFrame,
) -> None:
    """The same event delivered twice is handled once: one partition, one ingested event."""
    sent = arrived(day, batch_id=BATCH)
    first, second = bus.deliver(dispatcher, sent), bus.deliver(dispatcher, sent, attempt=2)
    assert (first.status, second.status) == ("handled", "duplicate")
    assert warehouse.partitions("raw_bikeshare") == [BATCH] and len(ingested(bus)) == 1


def test_resent_batch_replaces_its_partition(
    bus: MemoryBus,
    dispatcher: Dispatcher,
    warehouse: DuckDBWarehouse,
    arrived: Callable[..., CloudEvent],
    day: pd.DataFrame,
) -> None:
    """The same batch_id re-sent as a new event lands once: the partition is replaced, the row count unchanged."""
    outcomes = [bus.deliver(dispatcher, arrived(day, batch_id=BATCH)) for _ in range(2)]
    assert [o.status for o in outcomes] == ["handled", "handled"]
    assert warehouse.partitions("raw_bikeshare") == [BATCH]
    assert warehouse.query("SELECT count(*) AS n FROM raw_bikeshare")["n"].item() == 24
