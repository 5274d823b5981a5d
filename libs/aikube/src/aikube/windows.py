"""Data-time windows as events carry them: half-open [start, end), ISO 8601 in UTC (naive data time is UTC)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd


def iso_utc(moment: datetime | str | pd.Timestamp) -> str:
    """ISO 8601 with an explicit +00:00 offset, as the schemas' date-time format requires."""
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.isoformat()


def window(start: Any, end: Any) -> dict[str, str]:
    return {"start": iso_utc(start), "end": iso_utc(end)}
