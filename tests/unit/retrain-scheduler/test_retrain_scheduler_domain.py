"""Unit tests of the retrain policy: every rule, and that the transitions are pure."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from aikube.datasets import RetrainPolicy
from retrain_scheduler.domain import ModelState, decide, on_training_finished, request_id_for

DAY = timedelta(days=1)
T0 = datetime(2011, 1, 1, tzinfo=timezone.utc)
POLICY = RetrainPolicy(cooldown="14D", consecutive=2, min_new_rows=100, initial_window="28D", train_window="28D")


def window(day: int) -> dict[str, datetime]:
    """The one-day window starting `day` days after T0."""
    return {"start": T0 + day * DAY, "end": T0 + (day + 1) * DAY}


def deployed_state(**changes: object) -> ModelState:
    """A model trained on data up to day 28, with plenty of new rows and nothing in flight."""
    base = ModelState(
        has_model=True,
        rows_total=1000,
        rows_since_training=500,
        first_seen=T0,
        last_window_end=T0 + 40 * DAY,
        last_training_end=T0 + 28 * DAY,
    )
    return base.model_copy(update=changes)


def test_no_model_waits_for_initial_window() -> None:
    """Before `initial_window` of data has been seen nothing is requested."""
    decision, state = decide(ModelState(), window(0), 24, False, "no_reference", POLICY)
    assert decision.decision == "none" and decision.reason.startswith("waiting for initial_window")
    assert state.first_seen == T0 and state.rows_total == 24


def test_no_model_requests_bootstrap_after_initial_window() -> None:
    """Once the data spans `initial_window`, a bootstrap training on that span is requested."""
    state = ModelState(first_seen=T0, last_window_end=T0 + 27 * DAY, rows_total=648)
    decision, new = decide(state, window(27), 24, False, "no_reference", POLICY)
    assert (decision.decision, decision.trigger, decision.reason) == ("requested", "bootstrap", "bootstrap")
    assert decision.train_window == {"start": T0, "end": T0 + 28 * DAY}
    assert new.in_flight_request == decision.request_id


def test_bootstrap_in_flight_is_not_requested_twice() -> None:
    """While the bootstrap request runs, later windows are suppressed, naming the request."""
    state = ModelState(first_seen=T0, last_window_end=T0 + 28 * DAY, in_flight_request="bootstrap-x")
    decision, _ = decide(state, window(28), 24, False, "no_reference", POLICY)
    assert (decision.decision, decision.reason) == ("suppressed", "in_flight: bootstrap-x")


def test_first_drifted_window_is_held_by_hysteresis() -> None:
    """One drifted window is not enough when `consecutive` is 2."""
    decision, state = decide(deployed_state(), window(45), 24, True, "checked", POLICY)
    assert (decision.decision, decision.reason, decision.trigger) == ("suppressed", "hysteresis 1/2", "drift")
    assert state.consecutive_drifted == 1


def test_second_drifted_window_requests_drift_retrain() -> None:
    """Two drifted windows in a row request a retrain on the most recent `train_window`."""
    decision, state = decide(deployed_state(consecutive_drifted=1), window(45), 24, True, "checked", POLICY)
    assert (decision.decision, decision.trigger) == ("requested", "drift")
    assert decision.train_window == {"start": T0 + 18 * DAY, "end": T0 + 46 * DAY}
    assert state.in_flight_request == decision.request_id
    assert state.last_request_at == T0 + 46 * DAY


def test_request_restarts_the_drift_streak() -> None:
    """After a request the next retrain needs fresh consecutive evidence."""
    _, state = decide(deployed_state(consecutive_drifted=1), window(45), 24, True, "checked", POLICY)
    assert state.consecutive_drifted == 0


def test_quiet_window_resets_the_streak() -> None:
    """A window without drift resets the consecutive count and decides nothing."""
    decision, state = decide(deployed_state(consecutive_drifted=1), window(45), 24, False, "checked", POLICY)
    assert (decision.decision, decision.reason) == ("none", "no_drift")
    assert state.consecutive_drifted == 0


def test_drift_retrain_waits_while_one_is_in_flight() -> None:
    """Only one training per model at a time."""
    state = deployed_state(consecutive_drifted=1, in_flight_request="drift-1")
    decision, _ = decide(state, window(45), 24, True, "checked", POLICY)
    assert (decision.decision, decision.reason) == ("suppressed", "in_flight: drift-1")


def test_drift_retrain_waits_for_cooldown() -> None:
    """Within `cooldown` of the last training's data end, drift is suppressed with the end of the cooldown."""
    state = deployed_state(consecutive_drifted=1, last_window_end=T0 + 33 * DAY)
    decision, _ = decide(state, window(33), 24, True, "checked", POLICY)
    assert (decision.decision, decision.reason) == ("suppressed", "cooldown until 2011-02-12T00:00:00Z")


def test_drift_retrain_waits_for_min_new_rows() -> None:
    """Too few rows since the last training suppress the retrain, with the count."""
    state = deployed_state(consecutive_drifted=1, rows_since_training=16)
    decision, _ = decide(state, window(45), 24, True, "checked", POLICY)
    assert (decision.decision, decision.reason) == ("suppressed", "min_new_rows 40/100")


def test_drift_flag_of_an_unchecked_window_is_ignored() -> None:
    """Only a checked window counts as drift evidence."""
    decision, state = decide(deployed_state(consecutive_drifted=1), window(45), 0, True, "empty_window", POLICY)
    assert (decision.decision, decision.reason) == ("none", "not checked: empty_window")
    assert state.consecutive_drifted == 0


def test_schedule_fire_requests_a_retrain_without_drift() -> None:
    """A cron fire time between the last training and the window end requests a scheduled retrain."""
    policy = POLICY.model_copy(update={"schedule": "0 0 1 * *"})  # monthly, on data time: fires Feb 1
    decision, _ = decide(deployed_state(), window(45), 24, False, "checked", policy)
    assert (decision.decision, decision.trigger) == ("requested", "schedule")


def test_schedule_without_fire_decides_nothing() -> None:
    """No fire time in (last training, window end]: no request."""
    policy = POLICY.model_copy(update={"schedule": "0 0 1 6 *"})  # yearly, in June
    decision, _ = decide(deployed_state(), window(45), 24, False, "checked", policy)
    assert decision.decision == "none"


def test_schedule_respects_the_guards_but_not_hysteresis() -> None:
    """A due schedule is still held by cooldown (and names its trigger), though no drift streak is needed."""
    policy = POLICY.model_copy(update={"schedule": "0 0 * * *"})  # daily
    state = deployed_state(last_window_end=T0 + 33 * DAY)
    decision, _ = decide(state, window(33), 24, False, "checked", policy)
    assert (decision.decision, decision.trigger) == ("suppressed", "schedule")
    assert decision.reason.startswith("cooldown until")


def test_schedule_fire_is_consumed_by_a_request() -> None:
    """After a request at or past the fire time, the same fire does not request again."""
    policy = POLICY.model_copy(update={"schedule": "0 0 1 * *"})
    state = deployed_state(last_request_at=T0 + 39 * DAY)
    decision, _ = decide(state, window(45), 24, False, "checked", policy)
    assert decision.decision == "none"


def test_repeated_window_changes_nothing() -> None:
    """A window ending at or before one already counted is ignored (at-least-once delivery)."""
    state = deployed_state()
    decision, new = decide(state, window(39), 24, True, "checked", POLICY)
    assert decision.decision == "none" and decision.reason.startswith("window already seen")
    assert new == state


def test_decide_does_not_modify_its_input_state() -> None:
    """decide is pure: the caller's state is unchanged and the same inputs give the same outputs."""
    state = deployed_state(consecutive_drifted=1)
    snapshot = state.model_dump()
    first = decide(state, window(45), 24, True, "checked", POLICY)
    second = decide(state, window(45), 24, True, "checked", POLICY)
    assert state.model_dump() == snapshot and first == second


def test_request_id_is_deterministic_per_trigger_and_window() -> None:
    """A re-delivered window asks for the same request id, so the job name fences it."""
    assert request_id_for("drift", T0) == request_id_for("drift", T0.replace(tzinfo=None))
    assert request_id_for("drift", T0) != request_id_for("schedule", T0)


def test_naive_and_string_times_are_utc() -> None:
    """Windows given as naive datetimes or ISO strings mean UTC data time."""
    state = deployed_state(consecutive_drifted=1)
    as_strings = {"start": "2011-02-15T00:00:00", "end": "2011-02-16T00:00:00Z"}
    assert decide(state, as_strings, 24, True, "checked", POLICY) == decide(
        state, window(45), 24, True, "checked", POLICY
    )


def test_state_round_trips_through_json() -> None:
    """The state is stored as JSON and reads back equal."""
    state = deployed_state(in_flight_request="drift-1", last_request_at=T0 + 39 * DAY)
    assert ModelState.model_validate_json(state.model_dump_json()) == state


def test_deployment_records_the_new_model() -> None:
    """A deployed candidate releases the slot, restarts the row count and the cooldown."""
    state = deployed_state(in_flight_request="drift-1", consecutive_drifted=1)
    new = on_training_finished(state, "drift-1", True, T0 + 46 * DAY)
    assert new.in_flight_request is None and new.rows_since_training == 0
    assert new.last_training_end == T0 + 46 * DAY and new.has_model and new.consecutive_drifted == 0


def test_first_deployment_sets_has_model() -> None:
    """The bootstrap deployment turns a model-less state into one with a model."""
    state = ModelState(first_seen=T0, in_flight_request="bootstrap-1")
    assert on_training_finished(state, "bootstrap-1", True, T0 + 28 * DAY).has_model


def test_rejection_only_releases_the_slot() -> None:
    """A rejected or failed candidate frees the in-flight slot and keeps the old training facts."""
    state = deployed_state(in_flight_request="drift-1")
    new = on_training_finished(state, "drift-1", False, T0 + 46 * DAY)
    assert new == state.model_copy(update={"in_flight_request": None})


def test_other_request_does_not_release_the_slot() -> None:
    """A late outcome of another request leaves the current in-flight request alone."""
    state = deployed_state(in_flight_request="drift-2")
    assert on_training_finished(state, "drift-1", False, T0 + 46 * DAY) == state


def test_repeated_deployment_changes_nothing() -> None:
    """Re-delivered deployment of the same window does not reset the new-row count again."""
    state = deployed_state()
    assert on_training_finished(state, "drift-1", True, T0 + 28 * DAY) == state


def test_on_training_finished_does_not_modify_its_input() -> None:
    """on_training_finished is pure."""
    state = deployed_state(in_flight_request="drift-1")
    snapshot = state.model_dump()
    on_training_finished(state, "drift-1", True, T0 + 46 * DAY)
    assert state.model_dump() == snapshot
