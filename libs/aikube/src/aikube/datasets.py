"""Dataset specifications: what a dataset looks like and how AIkube should treat it.

Example:
    >>> spec = DatasetSpec.from_yaml("examples/bikeshare.yaml")
    >>> frame = read_table(spec.path)
    >>> spec = spec.with_columns(infer_columns(frame, spec.timestamp))
    >>> DatasetCatalog(LocalObjectStore("state")).register(spec)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import yaml
from croniter import croniter
from pandas.api import types as ptypes
from pandas.tseries.frequencies import to_offset
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from aikube.errors import Rejected
from aikube.storage import NotFound, ObjectStore, check_name

__all__ = [
    "CALENDAR_FEATURES",
    "NAME_PATTERN",
    "ColumnType",
    "DatasetCatalog",
    "DatasetSpec",
    "DriftConfig",
    "GateConfig",
    "RetrainPolicy",
    "UnknownDataset",
    "infer_columns",
    "read_table",
]

ColumnType = Literal["int", "float", "string", "bool", "timestamp"]
# Features derived from the timestamp (aikube.features computes them); no column may bear their names.
CALENDAR_FEATURES = ("hour", "day_of_week", "month")
# Dataset and model names: the pattern the event schemas use.
NAME_PATTERN = r"[a-z][a-z0-9_-]{0,62}"

_FROZEN = ConfigDict(frozen=True, extra="forbid")


def _offset_alias(value: str) -> str:
    """Accept any pandas offset alias ('1D', '7D', 'MS')."""
    try:
        to_offset(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{value!r} is not a pandas offset alias such as '1D' or '7D'") from exc
    return value


def _fixed_duration(value: str) -> str:
    """Accept a fixed-length pandas offset alias ('14D', '6h'); calendar ones ('MS') have no fixed length."""
    if not isinstance(to_offset(_offset_alias(value)), pd.offsets.Tick):
        raise ValueError(f"{value!r} has no fixed length; use days or smaller units such as '28D'")
    return value


Duration = Annotated[str, AfterValidator(_fixed_duration)]
OffsetAlias = Annotated[str, AfterValidator(_offset_alias)]


class RetrainPolicy(BaseModel):
    """When drift may turn into a training request."""

    model_config = _FROZEN

    cooldown: Duration = "14D"
    consecutive: int = Field(default=2, ge=1)
    min_new_rows: int = Field(default=100, ge=0)
    initial_window: Duration = "28D"  # data needed before the first (bootstrap) training
    train_window: Duration = "28D"  # how much recent data a retrain uses
    schedule: str | None = None  # cron expression evaluated on data time (a second trigger)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a valid cron expression")
        return value


class DriftConfig(BaseModel):
    """How drift is decided."""

    model_config = _FROZEN

    share: float = Field(default=0.5, gt=0, le=1)
    performance_ratio: float = Field(default=1.5, gt=0)  # error/baseline ≥ ratio ⇒ performance drift
    columns: list[str] | None = None  # default: all feature columns


class GateConfig(BaseModel):
    """Evaluation gate: the candidate must score ≤ champion × (1 + tolerance)."""

    model_config = _FROZEN

    tolerance: float = Field(default=0.0, ge=0)


class DatasetSpec(BaseModel):
    """One dataset: its columns, its roles (timestamp, target, dropped, sensitive) and its lifecycle policies."""

    model_config = _FROZEN

    name: str = Field(pattern=f"^{NAME_PATTERN}$")
    path: str | None = None
    timestamp: str
    target: str
    task: Literal["regression", "classification"]
    drop: list[str] = []
    sensitive: dict[str, Literal["mask", "drop"]] = {}
    batch: OffsetAlias = "1D"  # pandas offset alias for the replay grain
    columns: dict[str, ColumnType] = {}  # empty ⇒ filled by infer_columns at registration
    holdout: float = Field(default=0.2, gt=0, lt=1)  # most recent share of training rows kept for evaluation
    retrain: RetrainPolicy = RetrainPolicy()
    drift: DriftConfig = DriftConfig()
    gate: GateConfig = GateConfig()

    @field_validator("sensitive", mode="before")
    @classmethod
    def _sensitive_list_means_mask(cls, value: Any) -> Any:
        if isinstance(value, list):
            return dict.fromkeys(value, "mask")
        return value

    @model_validator(mode="after")
    def _roles_are_consistent(self) -> DatasetSpec:
        if self.timestamp == self.target:
            raise ValueError(f"timestamp and target are both {self.target!r}")
        for role in (self.timestamp, self.target):
            if role in self.drop or role in self.sensitive:
                raise ValueError(f"column {role!r} is the timestamp or target: it cannot be dropped or sensitive")
        clashes = [name for name in (self.timestamp, self.target, *self.feature_columns) if name in CALENDAR_FEATURES]
        if clashes:
            raise ValueError(
                f"columns {clashes} clash with the calendar features {list(CALENDAR_FEATURES)}; drop or rename them"
            )
        if not self.columns:
            return self  # nothing declared yet to check against
        named = {
            "timestamp": [self.timestamp],
            "target": [self.target],
            "drop": self.drop,
            "sensitive": list(self.sensitive),
        }
        for field, names in named.items():
            unknown = [name for name in names if name not in self.columns]
            if unknown:
                raise ValueError(f"{field}: {unknown} not among the declared columns {list(self.columns)}")
        if self.columns[self.timestamp] != "timestamp":
            raise ValueError(f"columns: timestamp column {self.timestamp!r} must have type 'timestamp'")
        if self.task == "regression" and self.columns[self.target] not in ("int", "float"):
            raise ValueError(
                f"task regression needs a numeric target; {self.target!r} is {self.columns[self.target]}"
                " (use task: classification, or declare the column's type under columns)"
            )
        # drift over no column would report no drift for ever, without a word
        unknown = [name for name in self.drift.columns or [] if name not in self.feature_columns]
        if unknown:
            raise ValueError(f"drift.columns: {unknown} are not feature columns {self.feature_columns}")
        return self

    @property
    def feature_columns(self) -> list[str]:
        """Declared columns minus timestamp, target, dropped and sensitive ones, in declared order.

        Sensitive columns are never features, masked ones included: a model trained on pseudonyms would meet raw
        values at serving (the salt stays with the ingestor), and PII would flow to every model server.
        """
        excluded = {self.timestamp, self.target, *self.drop, *self.sensitive}
        return [name for name in self.columns if name not in excluded]

    def with_columns(self, columns: dict[str, ColumnType]) -> DatasetSpec:
        """Return a copy with `columns` declared, validated again (model_copy would skip the checks).

        Raises:
            ValueError: naming the dataset and each bad field.
        """
        return DatasetSpec.parse({**self.model_dump(), "columns": columns}, f"dataset {self.name!r}")

    @classmethod
    def parse(cls, raw: Any, where: str) -> DatasetSpec:
        """Validate `raw` into a spec; errors are one line, prefixed by `where` (a file, a dataset name).

        Raises:
            ValueError: naming each bad field.
        """
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'spec'}: {error['msg'].removeprefix('Value error, ')}"
                for error in exc.errors()
            )
            raise ValueError(f"{where}: invalid dataset spec: {problems}") from exc

    @classmethod
    def from_yaml(cls, path: Path | str) -> DatasetSpec:
        """Load a spec from YAML; a relative `path` inside it is resolved against the YAML's folder.

        Raises:
            FileNotFoundError: when the YAML file does not exist.
            ValueError: naming the file and each bad field.
        """
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: a dataset spec must be a mapping, got {type(raw).__name__}")
        data_path = raw.get("path")
        if isinstance(data_path, str) and "://" not in data_path and not Path(data_path).is_absolute():
            raw["path"] = str((path.parent / data_path).resolve())
        return cls.parse(raw, str(path))


# A text column whose values are numbers but for this share at most is numeric: the others are bad cells, which the
# ingestor then rejects row by row with a reason, instead of turning the whole column (or the target) into text.
STRAY_SHARE = 0.01


def _column_type(series: pd.Series) -> ColumnType:
    if ptypes.is_bool_dtype(series):
        return "bool"
    if ptypes.is_integer_dtype(series):
        return "int"
    if ptypes.is_float_dtype(series):
        return "float"
    if ptypes.is_datetime64_any_dtype(series):
        return "timestamp"
    if ptypes.is_object_dtype(series) and _mostly_parsed(series, pd.to_numeric(series, errors="coerce")):
        return "float"  # numbers (whole ones read as floats too) with a few stray cells
    return "string"  # object, string, category and anything else travel as text


def _mostly_parsed(raw: pd.Series, parsed: pd.Series) -> bool:
    """True when all but STRAY_SHARE of the present values parsed (and there is at least one)."""
    present = raw.notna()
    return bool(present.any()) and parsed[present].notna().sum() >= (1 - STRAY_SHARE) * present.sum()


def _check_iso_timestamps(series: pd.Series, name: str) -> None:
    """Refuse a timestamp column the ingestor would reject row by row (it reads ISO 8601 only)."""
    if ptypes.is_datetime64_any_dtype(series) or not series.notna().any():
        return
    parsed = pd.to_datetime(series.astype(str).where(series.notna()), errors="coerce", format="ISO8601", utc=True)
    if not _mostly_parsed(series, parsed):
        example = series[series.notna() & parsed.isna()].iloc[0]
        raise ValueError(
            f"timestamp column {name!r} is not ISO 8601 (e.g. {example!r}): write it as 2011-01-01T00:00:00[Z], "
            "since dates like 01/02/2011 are ambiguous and bare numbers could be seconds or milliseconds"
        )


def infer_columns(frame: pd.DataFrame, timestamp: str) -> dict[str, ColumnType]:
    """Map each column of `frame` to a ColumnType; the `timestamp` column is a timestamp even if read as text.

    A text column of numbers with a few stray values (at most STRAY_SHARE) is numeric: its stray cells are bad
    rows, not a reason to treat the column as text.

    Raises:
        ValueError: when `timestamp` is not a column of `frame`, or is not ISO 8601.
    """
    if timestamp not in frame.columns:
        raise ValueError(f"timestamp column {timestamp!r} not in the data (columns: {list(frame.columns)})")
    _check_iso_timestamps(frame[timestamp], timestamp)
    return {str(name): "timestamp" if name == timestamp else _column_type(frame[name]) for name in frame.columns}


def read_table(path: Path | str) -> pd.DataFrame:
    """Read a CSV (also .csv.gz) or Parquet file, chosen by extension.

    Raises:
        ValueError: for any other extension.
    """
    name = str(path).lower()
    if name.endswith((".csv", ".csv.gz")):
        return pd.read_csv(path)
    if name.endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    raise ValueError(f"cannot read {path}: expected a .csv, .csv.gz or .parquet file")


class UnknownDataset(NotFound, Rejected):
    """No dataset of that name is registered (an event naming it is dead-lettered, not retried)."""


class DatasetCatalog:
    """Registered dataset specs, stored as JSON at "datasets/<name>.json"."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @staticmethod
    def _key(name: str) -> str:
        return f"datasets/{name}.json"

    def register(self, spec: DatasetSpec) -> None:
        """Store `spec`, replacing an earlier registration of the same name.

        Raises:
            ValueError: when the spec declares no columns (fill them with infer_columns first).
        """
        if not spec.columns:
            raise ValueError(
                f"dataset {spec.name!r} declares no columns: fill them with infer_columns before registering"
            )
        self.store.put_json(self._key(spec.name), spec.model_dump(mode="json"))

    def get(self, name: str) -> DatasetSpec:
        """Return the registered spec called `name`.

        Raises:
            ValueError: when `name` is not a valid dataset name.
            UnknownDataset: when no such dataset is registered.
        """
        try:
            raw = self.store.get_json(self._key(check_name(name, "dataset name", NAME_PATTERN)))
        except NotFound:
            raise UnknownDataset(f"dataset {name!r} is not registered (aikube register)") from None
        return DatasetSpec.model_validate(raw)
