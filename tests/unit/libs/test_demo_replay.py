"""The demo's replay: batches in data time (nothing dropped, unique ids) and scoring by the served and static models."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import log_loss, mean_absolute_error

from aikube.datasets import DatasetSpec
from aikube.demo.replay import Batch, Scorer, batches
from aikube.serving import Predictor, make_server

COLUMNS = {"ts": "timestamp", "x": "float", "y": "string"}


def spec(batch: str = "1h", task: str = "classification", target_type: str = "string") -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "name": "demo",
            "timestamp": "ts",
            "target": "y",
            "task": task,
            "batch": batch,
            "columns": {**COLUMNS, "y": target_type},
        }
    )


def frame(stamps: list[object]) -> pd.DataFrame:
    return pd.DataFrame({"ts": stamps, "x": np.arange(len(stamps), dtype=float), "y": "a"})


# -- batches --------------------------------------------------------------------------------------------------------


def test_rows_with_unreadable_timestamps_are_sent_with_the_first_batch_as_they_came() -> None:
    stamps = ["2021-01-01T00:10:00", "not-a-date", "2021-01-01T01:20:00", None, "", "2021-01-01T00:20:00"]
    plan = list(batches(spec(), frame(stamps)))

    assert sum(len(b.sent) for b in plan) == len(stamps)  # nothing dropped
    assert list(plan[0].unplaced["ts"]) == ["not-a-date", None, ""]  # raw values: the ingestor names them
    assert list(plan[0].sent["ts"]).count("not-a-date") == 1
    assert all(b.unplaced.empty for b in plan[1:])
    # the placed rows are in time order and within their batch
    assert list(plan[0].rows["ts"]) == ["2021-01-01T00:10:00", "2021-01-01T00:20:00"]
    for batch in plan:
        stamps_in = pd.to_datetime(batch.rows["ts"], utc=True)
        assert ((stamps_in >= batch.start) & (stamps_in < batch.end)).all()


def test_mixed_utc_offsets_are_placed_in_utc() -> None:
    plan = list(batches(spec(), frame(["2021-01-01T00:30:00Z", "2021-01-01T02:45:00+01:00", "2021-01-01T03:00:00Z"])))

    # 02:45+01:00 is 01:45 UTC: in the second hour after the first row, not the third
    assert [list(b.rows["x"]) for b in plan] == [[0.0], [1.0], [2.0]]
    assert plan[1].start == pd.Timestamp("2021-01-01T01:30:00Z")


def test_a_file_without_any_readable_timestamp_is_refused_with_the_column() -> None:
    with pytest.raises(ValueError, match="no row has a readable ISO 8601 timestamp in the past in 'ts'.*'soon'"):
        list(batches(spec(), frame(["soon", "later"])))


def test_a_row_from_the_future_goes_with_the_first_batch_not_a_batch_of_its_own() -> None:
    """One row stamped 2099 must not become a batch in 2099 (scored, and stretching the timeline for decades)."""
    plan = list(batches(spec(), frame(["2021-01-01T00:10:00", "2099-06-01T00:00:00", "2021-01-01T01:20:00"])))
    assert [b.start.year for b in plan] == [2021, 2021]
    assert list(plan[0].unplaced["ts"]) == ["2099-06-01T00:00:00"]


def test_sub_minute_batches_get_second_precision_ids_and_every_row_its_batch() -> None:
    stamps = list(pd.date_range("2021-01-01", periods=8, freq="15s").strftime("%Y-%m-%dT%H:%M:%S"))
    plan = list(batches(spec(batch="30s"), frame(stamps)))

    ids = [b.batch_id for b in plan]
    assert len(set(ids)) == len(ids) == 4
    assert ids[1] == "demo-20210101T000030"
    assert sum(len(b.rows) for b in plan) == len(stamps)


def test_minute_and_coarser_grains_keep_the_minute_id_format() -> None:
    stamps = ["2021-01-04T00:00:00", "2021-01-12T05:00:00"]
    weekly = [b.batch_id for b in batches(spec(batch="7D"), frame(stamps))]
    assert weekly == ["demo-20210104T0000", "demo-20210111T0000"]
    assert [b.batch_id for b in batches(spec(batch="MS"), frame(stamps))] == ["demo-20210101T0000"]


def test_sub_second_grains_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one second"):
        list(batches(spec(batch="500ms"), frame(["2021-01-01T00:00:00"])))


# -- scoring --------------------------------------------------------------------------------------------------------


@dataclass
class Champion:
    model: str = "demo"
    version: str = "v1"


class Registry:
    """The two registry reads the scorer makes."""

    def __init__(self, endpoint: str) -> None:
        self._endpoint = endpoint

    def champion(self, model: str) -> Champion:
        return Champion()

    def endpoint(self, model: str) -> str:
        return self._endpoint


def fitted(dataset: DatasetSpec, x: list[float], y: list[object]) -> Predictor:
    model = LogisticRegression() if dataset.task == "classification" else LinearRegression()
    return Predictor(model.fit(pd.DataFrame({"x": x}), y), dataset, ["x"])


@pytest.fixture
def served() -> Iterator[tuple[Predictor, str]]:
    """A model server (the real one, in a thread) for a classifier trained on three classes."""
    predictor = fitted(spec(), [0, 1, 2, 3, 4, 5], ["a", "a", "b", "b", "c", "c"])
    server = make_server(predictor, "v1")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    yield predictor, f"http://{host}:{port}"
    server.shutdown()
    server.server_close()


def scored_batch(rows: pd.DataFrame) -> Batch:
    return Batch("demo-1", pd.Timestamp("2021-01-01", tz="UTC"), pd.Timestamp("2021-01-02", tz="UTC"), rows)


def rows(x: list[object], y: list[object]) -> pd.DataFrame:
    return pd.DataFrame({"ts": "2021-01-01T00:00:00", "x": x, "y": y})


def test_a_batch_with_only_some_of_the_classes_is_scored_against_all_of_them(served: tuple[Predictor, str]) -> None:
    predictor, endpoint = served
    scorer = Scorer(spec(), Registry(endpoint))  # type: ignore[arg-type]
    scorer.static = predictor
    batch = rows([0.5, 1.5, 4.5], ["a", "b", "b"])  # no "c"

    result = scorer.score(scored_batch(batch))

    expected = log_loss(batch["y"], predictor.predict(batch), labels=["a", "b", "c"])
    assert result.served_error == pytest.approx(expected)
    assert result.static_error == pytest.approx(expected)
    assert (result.scored_rows, result.new_class_rows) == (3, 0)


def test_a_class_the_static_model_never_saw_is_its_worst_error_and_credits_the_served_one(
    served: tuple[Predictor, str],
) -> None:
    """A new class is the old model's worst error, so the retrained model that learned it beats it."""
    predictor, endpoint = served
    scorer = Scorer(spec(), Registry(endpoint))  # type: ignore[arg-type]
    scorer.static = fitted(spec(), [0, 1, 2, 3], ["a", "a", "b", "b"])  # the first model knew two classes only
    batch = rows([0.5, 2.5, 4.5, 5.0], ["a", "b", "c", "c"])

    result = scorer.score(scored_batch(batch))

    assert (result.scored_rows, result.new_class_rows) == (4, 0)
    assert result.served_error == pytest.approx(log_loss(batch["y"], predictor.predict(batch), labels=["a", "b", "c"]))
    assert result.static_error is not None and result.static_error > 5 * result.served_error


def test_rows_of_a_class_the_served_model_never_saw_are_counted(served: tuple[Predictor, str]) -> None:
    predictor, endpoint = served
    scorer = Scorer(spec(), Registry(endpoint))  # type: ignore[arg-type]
    scorer.static = predictor

    result = scorer.score(scored_batch(rows([1.0, 2.0], ["z", "a"])))

    assert (result.scored_rows, result.new_class_rows) == (2, 1)
    assert result.served_error is not None and result.served_error > 10  # log loss clipped at probability ~1e-16


def test_rows_the_models_cannot_read_are_left_out_of_scoring_and_counted() -> None:
    dataset = spec(task="regression", target_type="float")
    predictor = fitted(dataset, [0, 1, 2, 3], [0.0, 2.0, 4.0, 6.0])
    server = make_server(predictor, "v1")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    try:
        scorer = Scorer(dataset, Registry(f"http://{host}:{port}"))  # type: ignore[arg-type]
        scorer.static = predictor
        batch = rows([1.0, "warm", 3.0], [1.0, 2.0, 7.0])  # the ingestor rejects "warm"; the model cannot read it

        result = scorer.score(scored_batch(batch))
    finally:
        server.shutdown()
        server.server_close()

    readable = batch.iloc[[0, 2]].astype({"x": float})
    assert (result.scored_rows, result.unreadable_rows, result.rows) == (2, 1, 3)
    assert result.served_error == pytest.approx(mean_absolute_error(readable["y"], predictor.predict(readable)))
