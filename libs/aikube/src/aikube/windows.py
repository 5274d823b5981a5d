"""Data-time windows as events carry them: half-open [start, end), ISO 8601 in UTC (naive data time is UTC)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd


def utc(moment: datetime | str | pd.Timestamp) -> pd.Timestamp:
    """The moment as an aware UTC timestamp; naive input is UTC data time already."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def iso_utc(moment: datetime | str | pd.Timestamp) -> str:
    """ISO 8601 with an explicit +00:00 offset, as the schemas' date-time format requires."""
    return utc(moment).isoformat()


def window(start: Any, end: Any) -> dict[str, str]:
    return {"start": iso_utc(start), "end": iso_utc(end)}
