"""The retrain-scheduler through the real Dispatcher: checked/detected windows and outcomes in, decisions out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from cloudevents.core.v1.event import CloudEvent
from interleaving import after_next_read

from aikube.datasets import DatasetCatalog, DatasetSpec
from aikube.runtime import Dispatcher
from aikube.storage import LocalObjectStore
from aikube.testing import MemoryBus
from aikube.windows import window
from retrain_scheduler.handlers import Deps, router

WEEK = 168  # rows per window
# Weekly windows of January and February 2011, by start.
JAN = ["2011-01-01", "2011-01-08", "2011-01-15", "2011-01-22"]
FEB = ["2011-01-29", "2011-02-05", "2011-02-12", "2011-02-19"]
BOOTSTRAP = "bootstrap-20110129T000000Z"


@pytest.fixture
def policy(datasets: DatasetCatalog, spec: DatasetSpec) -> DatasetSpec:
    """bikeshare registered with the policy under test: bootstrap after 28D, 2 drifted in a row, 21D cooldown."""
    retrain = {
        "initial_window": "28D",
        "train_window": "28D",
        "consecutive": 2,
        "cooldown": "21D",
        "min_new_rows": 100,
        "schedule": None,
    }
    registered = DatasetSpec.model_validate({**spec.model_dump(), "retrain": retrain})
    datasets.register(registered)
    return registered


@pytest.fixture
def dispatcher(bus: MemoryBus, store: LocalObjectStore, datasets: DatasetCatalog, policy: DatasetSpec) -> Dispatcher:
    """The retrain-scheduler's router over this test's store (its state lives there)."""
    return bus.dispatcher("retrain-scheduler", router, Deps(store, datasets))


@pytest.fixture
def checked(event: Callable[..., CloudEvent]) -> Callable[..., CloudEvent]:
    """checked(start, status="no_reference"): drift.v1.checked of the week at `start`, not drifted."""

    def make(start: str, status: str = "no_reference") -> CloudEvent:
        return event("drift.v1.checked", {**_window_fields(start), "status": status, "drifted": False})

    return make


@pytest.fixture
def detected(event: Callable[..., CloudEvent]) -> Callable[[str], CloudEvent]:
    """detected(start): drift.v1.detected of the week at `start`."""
    return lambda start: event(
        "drift.v1.detected", {**_window_fields(start), "kinds": ["data"], "model_version": "v1", "share": 0.6}
    )


@pytest.fixture
def finished(event: Callable[..., CloudEvent]) -> Callable[..., CloudEvent]:
    """finished(key, request_id, end): model.v1.deployed (trained to `end`), model.v1.rejected or training.v1.failed."""

    def make(key: str, request_id: str, end: str) -> CloudEvent:
        data: dict[str, Any] = {"model": "bikeshare", "request_id": request_id}
        if key == "model.v1.deployed":
            data.update(version="v1", endpoint="http://127.0.0.1:9", train_window=window("2011-01-01", end))
        elif key == "model.v1.rejected":
            data.update(version="v1", reason="candidate mae 40 > champion 30 × 1")
        else:
            data.update(job_name="train-bikeshare-x", error="training failed: TrainingError: too few labeled rows")
        return event(key, data)

    return make


def _window_fields(start: str) -> dict[str, Any]:
    begin = pd.Timestamp(start)
    return {
        "model": "bikeshare",
        "dataset": "bikeshare",
        "batch_id": f"bikeshare-{begin:%Y%m%dT%H%M}",
        "window": window(begin, begin + pd.Timedelta("7D")),
        "rows": WEEK,
    }


def decisions(bus: MemoryBus) -> list[tuple[str, str]]:
    """(decision, reason) of every retrain.v1.decided, in order."""
    return [(e.get_data()["decision"], e.get_data()["reason"]) for e in bus.emitted("retrain.v1.decided")]


def requests(bus: MemoryBus) -> list[dict[str, Any]]:
    return [event.get_data() for event in bus.emitted("training.v1.requested")]


def deliver_all(bus: MemoryBus, dispatcher: Dispatcher, events: list[CloudEvent]) -> None:
    for sent in events:
        assert bus.deliver(dispatcher, sent).status == "handled"


def test_windows_before_the_initial_window_wait(
    bus: MemoryBus, dispatcher: Dispatcher, checked: Callable[..., CloudEvent]
) -> None:
    """Without a model, windows are recorded as `none` until the data spans the initial window."""
    deliver_all(bus, dispatcher, [checked(start) for start in JAN[:3]])
    assert [reason for _, reason in decisions(bus)] == [
        "waiting for initial_window: 7D of 28D",
        "waiting for initial_window: 14D of 28D",
        "waiting for initial_window: 21D of 28D",
    ]
    assert requests(bus) == []


def test_bootstrap_is_requested_once_the_initial_window_is_seen(
    bus: MemoryBus, dispatcher: Dispatcher, checked: Callable[..., CloudEvent]
) -> None:
    """The window completing four weeks requests a bootstrap training on them, caused by that window."""
    windows = [checked(start) for start in JAN]
    deliver_all(bus, dispatcher, windows)
    (request,) = requests(bus)
    assert decisions(bus)[-1] == ("requested", "bootstrap")
    assert (request["request_id"], request["reason"], request["features_table"]) == (
        BOOTSTRAP,
        "bootstrap",
        "features_bikeshare",
    )
    assert request["train_window"] == {"start": "2011-01-01T00:00:00+00:00", "end": "2011-01-29T00:00:00+00:00"}
    decided = bus.emitted("retrain.v1.decided")[-1].get_data()
    assert request["trigger_id"] == decided["trigger_id"] == windows[-1].get_id()


def test_request_in_flight_suppresses_another(
    bus: MemoryBus, dispatcher: Dispatcher, checked: Callable[..., CloudEvent]
) -> None:
    """While the bootstrap request is in flight, the next window is suppressed, not requested again."""
    deliver_all(bus, dispatcher, [checked(start) for start in [*JAN, FEB[0]]])
    assert decisions(bus)[-1] == ("suppressed", f"in_flight: {BOOTSTRAP}")
    assert len(requests(bus)) == 1


def test_deployment_releases_the_request_in_flight(
    bus: MemoryBus, dispatcher: Dispatcher, checked: Callable[..., CloudEvent], finished: Callable[..., CloudEvent]
) -> None:
    """model.v1.deployed of the request frees its slot: the next quiet window is `none: no_drift`."""
    deliver_all(bus, dispatcher, [checked(start) for start in JAN])
    deliver_all(bus, dispatcher, [finished("model.v1.deployed", BOOTSTRAP, "2011-01-29"), checked(FEB[0], "checked")])
    assert decisions(bus)[-1] == ("none", "no_drift")


@pytest.mark.parametrize("outcome", ["model.v1.rejected", "training.v1.failed"])
def test_unsuccessful_request_is_released_for_a_new_bootstrap(
    bus: MemoryBus,
    dispatcher: Dispatcher,
    checked: Callable[..., CloudEvent],
    finished: Callable[..., CloudEvent],
    outcome: str,
) -> None:
    """A rejected or failed request frees the slot without a model: the next window requests a bootstrap again."""
    deliver_all(bus, dispatcher, [checked(start) for start in JAN])
    deliver_all(bus, dispatcher, [finished(outcome, BOOTSTRAP, "2011-01-29"), checked(FEB[0])])
    assert decisions(bus)[-1] == ("requested", "bootstrap")
    assert [r["request_id"] for r in requests(bus)] == [BOOTSTRAP, "bootstrap-20110205T000000Z"]


def test_a_deployment_handled_during_a_decision_is_not_overwritten(
    bus: MemoryBus,
    store: LocalObjectStore,
    datasets: DatasetCatalog,
    checked: Callable[..., CloudEvent],
    finished: Callable[..., CloudEvent],
) -> None:
    """Another replica records the deployment while this one decides a window: neither update is lost.

    A lost update would leave the bootstrap in flight for good, suppressing every later window.
    """
    this, other = (bus.dispatcher("retrain-scheduler", router, Deps(store, datasets)) for _ in range(2))
    deliver_all(bus, this, [checked(start) for start in JAN])
    deployed = finished("model.v1.deployed", BOOTSTRAP, "2011-01-29")
    after_next_read(store, "scheduler/bikeshare.json", lambda: deliver_all(bus, other, [deployed]))
    deliver_all(bus, this, [checked(FEB[0], "checked"), checked(FEB[1], "checked")])
    assert decisions(bus)[-1] == ("none", "no_drift")


@pytest.fixture
def deployed_model(
    bus: MemoryBus, dispatcher: Dispatcher, checked: Callable[..., CloudEvent], finished: Callable[..., CloudEvent]
) -> None:
    """The bootstrap of January requested and deployed (trained up to 2011-01-29)."""
    deliver_all(bus, dispatcher, [checked(start) for start in JAN])
    deliver_all(bus, dispatcher, [finished("model.v1.deployed", BOOTSTRAP, "2011-01-29")])


def test_one_drifted_window_is_suppressed_by_hysteresis(
    bus: MemoryBus, dispatcher: Dispatcher, deployed_model: None, detected: Callable[[str], CloudEvent]
) -> None:
    """A single drifted window is not enough: suppressed as hysteresis 1/2."""
    deliver_all(bus, dispatcher, [detected(FEB[0])])
    assert decisions(bus)[-1] == ("suppressed", "hysteresis 1/2") and len(requests(bus)) == 1


def test_drift_within_the_cooldown_is_suppressed(
    bus: MemoryBus, dispatcher: Dispatcher, deployed_model: None, detected: Callable[[str], CloudEvent]
) -> None:
    """Two drifted windows in a row still wait for the cooldown after the last deployment."""
    deliver_all(bus, dispatcher, [detected(FEB[0]), detected(FEB[1])])
    assert decisions(bus)[-1] == ("suppressed", "cooldown until 2011-02-19T00:00:00Z") and len(requests(bus)) == 1


def test_persistent_drift_after_the_cooldown_requests_a_retrain(
    bus: MemoryBus, dispatcher: Dispatcher, deployed_model: None, detected: Callable[[str], CloudEvent]
) -> None:
    """Drift that lasts past the cooldown requests a drift training over the last four weeks."""
    deliver_all(bus, dispatcher, [detected(start) for start in FEB[:3]])
    assert decisions(bus)[-1] == ("requested", "drift")
    assert requests(bus)[-1]["request_id"] == "drift-20110219T000000Z"
    assert requests(bus)[-1]["train_window"] == {
        "start": "2011-01-22T00:00:00+00:00",
        "end": "2011-02-19T00:00:00+00:00",
    }


def test_drifted_checked_event_is_left_to_its_detected_event(
    bus: MemoryBus, dispatcher: Dispatcher, event: Callable[..., CloudEvent]
) -> None:
    """A drift.v1.checked with drifted=true records nothing: its drift.v1.detected carries the decision."""
    outcome = bus.deliver(
        dispatcher, event("drift.v1.checked", {**_window_fields(FEB[0]), "status": "checked", "drifted": True})
    )
    assert outcome.status == "handled" and outcome.emitted == () and decisions(bus) == []


def test_redelivered_window_re_emits_its_decision(
    bus: MemoryBus,
    store: LocalObjectStore,
    datasets: DatasetCatalog,
    dispatcher: Dispatcher,
    checked: Callable[..., CloudEvent],
) -> None:
    """A window redelivered after its state was saved (a restart before the ack) re-emits the same request."""
    windows = [checked(start) for start in JAN]
    deliver_all(bus, dispatcher, windows)
    restarted = bus.dispatcher("retrain-scheduler", router, Deps(store, datasets))  # fresh idempotency markers
    outcome = bus.deliver(restarted, windows[-1], attempt=2)
    first, again = bus.emitted("training.v1.requested")
    assert outcome.status == "handled" and decisions(bus)[-2:] == [("requested", "bootstrap")] * 2
    assert (again.get_id(), again.get_data()) == (first.get_id(), first.get_data())


def test_redelivered_window_does_not_advance_the_state(
    bus: MemoryBus,
    store: LocalObjectStore,
    datasets: DatasetCatalog,
    dispatcher: Dispatcher,
    checked: Callable[..., CloudEvent],
) -> None:
    """The saved state is as after the first delivery: the next window still sees the same request in flight."""
    windows = [checked(start) for start in JAN]
    deliver_all(bus, dispatcher, windows)
    saved = store.get_json("scheduler/bikeshare.json")
    restarted = bus.dispatcher("retrain-scheduler", router, Deps(store, datasets))
    bus.deliver(restarted, windows[-1], attempt=2)
    assert store.get_json("scheduler/bikeshare.json") == saved
    deliver_all(bus, restarted, [checked(FEB[0])])
    assert decisions(bus)[-1] == ("suppressed", f"in_flight: {BOOTSTRAP}")
