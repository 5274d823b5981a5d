"""The retrain policy as pure functions: one checked window in, a decision and the model's next state out.

All times are data time (the window's end), never the wall clock, so a replayed year decides exactly as
the live stream would. Naive datetimes are read as UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

import pandas as pd
from croniter import croniter
from pandas.tseries.frequencies import to_offset
from pydantic import AfterValidator, BaseModel, ConfigDict

from aikube.datasets import RetrainPolicy
from aikube.windows import utc

Trigger = Literal["bootstrap", "drift", "schedule"]


def as_utc(value: datetime | str) -> datetime:
    """A timezone-aware UTC datetime from a datetime or ISO string; naive input is taken to be UTC."""
    return utc(value).to_pydatetime()


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _duration(alias: str) -> timedelta:
    # A python timedelta on purpose: datetime - pd.Timedelta(<offset>) silently ignores a seconds-unit
    # Timedelta (pandas 2.3), returning the datetime unchanged.
    return pd.Timedelta(to_offset(alias)).to_pytimedelta()


class ModelState(BaseModel):
    """What the scheduler remembers about one model between events (stored as JSON)."""

    model_config = ConfigDict(frozen=True)

    has_model: bool = False
    rows_total: int = 0
    rows_since_training: int = 0
    consecutive_drifted: int = 0
    in_flight_request: str | None = None
    first_seen: UtcDatetime | None = None  # start of the first window seen
    last_window_end: UtcDatetime | None = None  # windows ending at or before it were already counted
    last_training_end: UtcDatetime | None = None  # data end of the deployed model's training window
    last_request_at: UtcDatetime | None = None  # window end at which the last request was made


class Decision(BaseModel):
    """The policy's verdict for one window; `trigger` is also set when that trigger was suppressed."""

    model_config = ConfigDict(frozen=True)

    decision: Literal["requested", "suppressed", "none"]
    reason: str
    trigger: Trigger | None = None
    train_window: dict[str, UtcDatetime] | None = None
    request_id: str | None = None


def request_id_for(trigger: Trigger, end: datetime) -> str:
    """Deterministic id of the request a window triggers, so a re-delivered window asks for the same job."""
    return f"{trigger}-{as_utc(end):%Y%m%dT%H%M%SZ}"


def _request(trigger: Trigger, end: datetime, span: str) -> Decision:
    window = {"start": end - _duration(span), "end": end}
    return Decision(
        decision="requested",
        reason=trigger,
        trigger=trigger,
        train_window=window,
        request_id=request_id_for(trigger, end),
    )


def _blocked(state: ModelState, end: datetime, policy: RetrainPolicy) -> str | None:
    """Why a retrain of a deployed model may not start now, or None when it may."""
    if state.in_flight_request is not None:
        return f"in_flight: {state.in_flight_request}"
    if state.last_training_end is not None:
        until = state.last_training_end + _duration(policy.cooldown)
        if end < until:
            return f"cooldown until {_iso(until)}"
    if state.rows_since_training < policy.min_new_rows:
        return f"min_new_rows {state.rows_since_training}/{policy.min_new_rows}"
    return None


def _bootstrap(state: ModelState, end: datetime, policy: RetrainPolicy) -> Decision:
    if state.in_flight_request is not None:
        return Decision(decision="suppressed", reason=f"in_flight: {state.in_flight_request}", trigger="bootstrap")
    seen = end - (state.first_seen or end)
    if seen >= _duration(policy.initial_window):
        return _request("bootstrap", end, policy.initial_window)
    days = seen / timedelta(days=1)
    return Decision(decision="none", reason=f"waiting for initial_window: {days:g}D of {policy.initial_window}")


def _on_drift(state: ModelState, end: datetime, policy: RetrainPolicy) -> Decision:
    if state.consecutive_drifted < policy.consecutive:
        reason = f"hysteresis {state.consecutive_drifted}/{policy.consecutive}"
        return Decision(decision="suppressed", reason=reason, trigger="drift")
    blocked = _blocked(state, end, policy)
    if blocked:
        return Decision(decision="suppressed", reason=blocked, trigger="drift")
    return _request("drift", end, policy.train_window)


def _schedule_fired(state: ModelState, end: datetime, schedule: str) -> datetime | None:
    """The first cron fire time after the last training or request (whichever is later), if ≤ end."""
    anchors = [m for m in (state.last_training_end, state.last_request_at) if m is not None]
    # A request consumes the fire time even when its candidate is rejected: otherwise every later window
    # would re-request until a model is finally deployed.
    since = max(anchors) if anchors else state.first_seen or end
    fire = croniter(schedule, since).get_next(datetime)
    return fire if fire <= end else None


def _without_drift(state: ModelState, end: datetime, status: str, policy: RetrainPolicy) -> Decision:
    quiet = "no_drift" if status == "checked" else f"not checked: {status}"
    fired = _schedule_fired(state, end, policy.schedule) if policy.schedule else None
    if fired is None:
        return Decision(decision="none", reason=quiet)
    blocked = _blocked(state, end, policy)
    if blocked:
        return Decision(decision="suppressed", reason=blocked, trigger="schedule")
    return _request("schedule", end, policy.train_window)


def decide(
    state: ModelState,
    window: dict[str, datetime | str],
    rows: int,
    drifted: bool,
    status: str,
    policy: RetrainPolicy,
) -> tuple[Decision, ModelState]:
    """Apply the retrain policy to one checked window.

    Rules (data time = window end):
    - no model yet: request a `bootstrap` once the data seen spans `initial_window` (one at a time);
    - a drifted window: request `drift` after `consecutive` drifted windows in a row, unless a request is in
      flight, the cooldown since the last training has not passed, or fewer than `min_new_rows` rows arrived;
    - otherwise: request `schedule` when the cron schedule fired since the last training (same guards).
    A window ending at or before one already counted changes nothing (at-least-once delivery).

    Args:
        state: the model's state before the window (not modified).
        window: {"start", "end"} of the window, datetimes or ISO strings.
        rows: rows in the window.
        drifted: the drift-watcher's verdict for the window.
        status: the drift check status ("checked", "no_reference", "empty_window").
        policy: the dataset's retrain policy.

    Returns:
        (decision, new state). A request sets `in_flight_request` to `decision.request_id`.
    """
    start, end = as_utc(window["start"]), as_utc(window["end"])
    if state.last_window_end is not None and end <= state.last_window_end:
        reason = f"window already seen: ends {_iso(end)}, last seen {_iso(state.last_window_end)}"
        return Decision(decision="none", reason=reason), state
    drift_seen = drifted and status == "checked"
    seen = state.model_copy(
        update={
            "rows_total": state.rows_total + rows,
            "rows_since_training": state.rows_since_training + rows,
            "first_seen": state.first_seen or start,
            "last_window_end": end,
            "consecutive_drifted": state.consecutive_drifted + 1 if drift_seen else 0,
        }
    )
    if not seen.has_model:
        decision = _bootstrap(seen, end, policy)
    elif drift_seen:
        decision = _on_drift(seen, end, policy)
    else:
        decision = _without_drift(seen, end, status, policy)
    if decision.decision != "requested":
        return decision, seen
    # A request starts a fresh hysteresis count: the next one needs new drift evidence.
    requested = {"in_flight_request": decision.request_id, "last_request_at": end, "consecutive_drifted": 0}
    return decision, seen.model_copy(update=requested)


def on_training_finished(state: ModelState, request_id: str, deployed: bool, window_end: datetime | str) -> ModelState:
    """Record the outcome of a training request (deployed, rejected by the gate, or failed).

    The in-flight slot is released only by its own request. A deployment is a fact whoever asked for it:
    it marks the model as present, restarts the new-row count and the cooldown from `window_end`, and
    clears the drift streak (drift is now measured against the new model). A repeated deployment of
    the same or an older window changes nothing.

    Args:
        state: the model's state (not modified).
        request_id: the finished request.
        deployed: True when the candidate now serves.
        window_end: data end of the candidate's training window.
    """
    update: dict[str, object] = {}
    if state.in_flight_request == request_id:
        update["in_flight_request"] = None
    end = as_utc(window_end)
    if deployed and (state.last_training_end is None or end > state.last_training_end):
        update.update(has_model=True, rows_since_training=0, last_training_end=end, consecutive_drifted=0)
    return state.model_copy(update=update)
