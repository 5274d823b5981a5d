"""Pure ingestion rules: validate an arrived batch against its dataset contract, then mask or drop PII."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from aikube.datasets import ColumnType, DatasetSpec
from aikube.windows import utc

REASON_COLUMN = "_reason"
TOKEN_HEX_CHARS = 16  # 64 bits: collisions stay negligible for millions of distinct values
_QUOTED_VALUE_MAX = 50
CLOCK_SKEW = pd.Timedelta("1h")  # how far a row's stamp may run ahead of the clock of the event that sent it

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}


@dataclass(frozen=True)
class Validation:
    """Outcome of validating one batch.

    accepted: rows coerced to the declared types, declared columns only, in declared order.
    rejected: the rejected rows' raw values as text (declared columns only) plus a `_reason` column.
    reasons: rejected-row count per reason kind (the reason without the offending value, so the
        event stays small and carries no data values).
    extra_columns: undeclared columns found in the batch; they are dropped, not rejected.
    """

    accepted: pd.DataFrame
    rejected: pd.DataFrame
    reasons: dict[str, int]
    extra_columns: list[str]


def _as_int(raw: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(raw, errors="coerce")
    whole = numbers.where(np.isfinite(numbers) & (numbers % 1 == 0))
    return whole.astype("Int64")


def _as_float(raw: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(raw, errors="coerce").astype("float64")
    # An infinite feature breaks training later; reject it here, where the row can still be named.
    return numbers.where(np.isfinite(numbers))


def _as_bool(raw: pd.Series) -> pd.Series:
    def parse(value: object) -> bool | None:
        text = str(value).strip().lower()
        return True if text in _TRUE else False if text in _FALSE else None

    return raw.map(parse, na_action="ignore").astype("boolean")


def _as_string(raw: pd.Series) -> pd.Series:
    return raw.map(str, na_action="ignore").astype(object)


def _as_timestamp(raw: pd.Series) -> pd.Series:
    # ISO 8601 only: bare numbers are ambiguous (epoch seconds? ms?). Offsets are converted to UTC and then
    # dropped, so every stored timestamp is naive UTC data time (tz-aware values would make SQL calendar
    # features depend on the warehouse session's time zone).
    parsed = pd.to_datetime(raw, errors="coerce", format="ISO8601", utc=True)
    return parsed.dt.tz_localize(None)


_COERCE: dict[ColumnType, Callable[[pd.Series], pd.Series]] = {
    "int": _as_int,
    "float": _as_float,
    "bool": _as_bool,
    "string": _as_string,
    "timestamp": _as_timestamp,
}

_TYPE_PHRASE: dict[ColumnType, str] = {
    "int": "not an int",
    "float": "not a float",
    "bool": "not a bool",
    "string": "not a string",
    "timestamp": "not a timestamp",
}


def _blank_to_missing(raw: pd.Series) -> pd.Series:
    """Treat empty or whitespace-only text as a missing value (how CSV and JSON sources write nulls)."""
    if raw.dtype != object and not pd.api.types.is_string_dtype(raw):
        return raw
    blank = raw.map(lambda v: isinstance(v, str) and not v.strip()).astype(bool)
    return raw.mask(blank)


def _quote(value: object) -> str:
    text = str(value)
    return f"'{text[:_QUOTED_VALUE_MAX]}…'" if len(text) > _QUOTED_VALUE_MAX else f"'{text}'"


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Raw values as text (missing stays missing): mixed-type columns of bad rows stay writable to Parquet."""
    return frame.apply(lambda column: column.map(str, na_action="ignore").astype(object))


def required_columns(spec: DatasetSpec) -> list[str]:
    """Columns every batch must carry: the timestamp and the model's feature columns.

    The target may be absent from a whole batch (an unlabeled batch); columns the model never uses
    (`drop`, `sensitive`) are optional too.
    """
    return [spec.timestamp, *spec.feature_columns]


def _naive(moment: datetime | str) -> pd.Timestamp:
    return utc(moment).tz_localize(None)  # stored timestamps are naive UTC


@dataclass(frozen=True)
class TimeBounds:
    """Where a batch's timestamps may lie (naive UTC): inside the producer's window, and not after it was sent.

    One row stamped in 2099 would otherwise stretch the batch's window over decades and convince the scheduler
    that every later window was already seen.
    """

    window: tuple[pd.Timestamp, pd.Timestamp] | None = None  # [start, end) the producer declared
    latest: pd.Timestamp | None = None  # the event's time plus the clock skew tolerated

    @classmethod
    def of(cls, window: dict[str, str] | None, sent: datetime | None, skew: pd.Timedelta = CLOCK_SKEW) -> TimeBounds:
        """Bounds from an event's `window` field and its `time` attribute (either may be absent).

        Raises:
            ValueError: when the window does not end after it starts.
        """
        span = None
        if window is not None:
            span = (_naive(window["start"]), _naive(window["end"]))
            if span[1] <= span[0]:
                raise ValueError(f"window ends ({window['end']}) at or before it starts ({window['start']})")
        return cls(span, None if sent is None else _naive(sent) + skew)

    def problems(self, stamps: pd.Series, column: str) -> list[tuple[pd.Series, str]]:
        """(rows hit, reason kind) for the timestamps outside the bounds; missing stamps are not judged here."""
        found = []
        if self.window is not None:
            start, end = self.window
            found.append(((stamps < start) | (stamps >= end), f"{column}: outside the batch window"))
        if self.latest is not None:
            found.append((stamps > self.latest, f"{column}: later than the event that sent it"))
        return found


def validate_rows(frame: pd.DataFrame, spec: DatasetSpec, bounds: TimeBounds = TimeBounds()) -> Validation:
    """Check a batch against the dataset contract and coerce it to the declared column types.

    Args:
        frame: the arrived rows, as read (any dtypes).
        spec: the dataset contract; `spec.columns` declares names and types.
        bounds: where the timestamps may lie; a row outside is rejected ("ts: outside the batch window").

    Returns:
        Validation with accepted (typed) and rejected (raw text + `_reason`) rows. A required column
        missing from the whole batch rejects every row with reason "missing column <name>"; per row,
        a value that does not parse as its declared type is rejected ("temp: not a float: 'abc'"), and
        so is a missing timestamp or target ("bikers: missing value"). Missing feature values are kept.
    """
    frame = frame.reset_index(drop=True)  # row masks below align by position
    declared = spec.columns
    present = [c for c in declared if c in frame.columns]
    extra = [c for c in frame.columns if c not in declared]
    missing = [c for c in required_columns(spec) if c not in frame.columns]
    if missing:
        kinds = [f"missing column {c}" for c in missing]
        rejected = _as_text(frame[present]).assign(**{REASON_COLUMN: "; ".join(kinds)})
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in present})
        reasons = {kind: len(frame) for kind in kinds} if len(frame) else {}
        return Validation(empty, rejected.reset_index(drop=True), reasons, extra)

    coerced: dict[str, pd.Series] = {}
    # Each problem: (rows hit, reason kind, column whose value to quote or None).
    problems: list[tuple[pd.Series, str, str | None]] = []
    for column in present:
        kind = declared[column]
        raw = _blank_to_missing(frame[column])
        values = _COERCE[kind](raw)
        coerced[column] = values
        # Values of sensitive columns never appear in reasons: the rejects file must not leak PII.
        quoted = None if column in spec.sensitive else column
        problems.append((raw.notna() & values.isna(), f"{column}: {_TYPE_PHRASE[kind]}", quoted))
        if column in (spec.timestamp, spec.target):
            problems.append((raw.isna(), f"{column}: missing value", None))
        if column == spec.timestamp:
            problems += [(hit, kind, column) for hit, kind in bounds.problems(values, column)]

    bad = pd.Series(False, index=frame.index)
    for hit, _, _ in problems:
        bad |= hit
    reasons = {kind: int(hit.sum()) for hit, kind, _ in problems if hit.any()}

    rejected = _as_text(frame.loc[bad, present])
    rejected[REASON_COLUMN] = _row_reasons(frame.loc[bad], [(hit[bad], kind, q) for hit, kind, q in problems])
    accepted = pd.DataFrame(coerced, index=frame.index).loc[~bad]
    return Validation(accepted.reset_index(drop=True), rejected.reset_index(drop=True), reasons, extra)


def _row_reasons(rows: pd.DataFrame, problems: list[tuple[pd.Series, str, str | None]]) -> list[str]:
    """One '; '-joined reason per rejected row, quoting the offending value where that is safe."""
    messages: list[list[str]] = [[] for _ in range(len(rows))]
    for hit, kind, quoted in problems:
        for position in np.flatnonzero(hit.to_numpy()):
            detail = f": {_quote(rows[quoted].iloc[position])}" if quoted else ""
            messages[position].append(kind + detail)
    return ["; ".join(parts) for parts in messages]


def mask_token(value: object, salt: str) -> str:
    """Stable pseudonym of a value: keyed SHA-256 (HMAC) hex prefix; same value and salt ⇒ same token."""
    digest = hmac.new(salt.encode(), str(value).encode(), hashlib.sha256).hexdigest()
    return digest[:TOKEN_HEX_CHARS]


def mask_sensitive(frame: pd.DataFrame, spec: DatasetSpec, salt: str) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Pseudonymise (`mask`) or remove (`drop`) the dataset's sensitive columns.

    Masked values keep their equality (joins and group-bys still work) but not their content; missing
    values stay missing. Columns configured but absent from the frame are skipped and not reported.

    Args:
        frame: rows to protect (not modified).
        spec: the dataset contract; `spec.sensitive` maps column -> "mask" | "drop".
        salt: secret key of the tokens; must not be empty (unsalted hashes of e-mails are reversible).

    Returns:
        (protected frame, masked column names, dropped column names).

    Raises:
        ValueError: the salt is empty.
    """
    if not salt:
        raise ValueError("mask_sensitive: salt must not be empty (an unsalted hash can be reversed by lookup)")
    protected = frame.copy()
    masked: list[str] = []
    dropped: list[str] = []
    for column, action in spec.sensitive.items():
        if column not in protected.columns:
            continue
        if action == "drop":
            protected = protected.drop(columns=column)
            dropped.append(column)
        else:
            values = protected[column]
            tokens = {value: mask_token(value, salt) for value in values.dropna().unique()}
            protected[column] = values.map(tokens, na_action="ignore").astype(object)
            masked.append(column)
    return protected, masked, dropped
