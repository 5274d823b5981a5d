"""The model artifact format and the Predictor that reads it."""

from __future__ import annotations

import io
from typing import Any

import joblib
import numpy as np
import pandas as pd
from pydantic import ValidationError

from aikube.datasets import DatasetSpec
from aikube.features import compute_features, model_columns

__all__ = ["Predictor", "make_artifact"]

_ARTIFACT_KEYS = ("pipeline", "spec", "columns")


def make_artifact(pipeline: Any, spec: DatasetSpec) -> bytes:
    """Serialise a fitted sklearn pipeline with its spec and model columns (the format Predictor reads)."""
    buffer = io.BytesIO()
    joblib.dump({"pipeline": pipeline, "spec": spec.model_dump(mode="json"), "columns": model_columns(spec)}, buffer)
    return buffer.getvalue()


class Predictor:
    """A fitted pipeline plus the spec whose feature SQL prepares its input."""

    def __init__(self, pipeline: Any, spec: DatasetSpec, columns: list[str]) -> None:
        self.pipeline = pipeline
        self._spec = spec
        self.columns = columns

    @classmethod
    def from_artifact(cls, data: bytes) -> Predictor:
        """Load an artifact written by make_artifact.

        Only load artifacts from the registry: joblib unpickles, which can run code.

        Raises:
            ValueError: when the bytes are not such an artifact.
        """
        try:
            content = joblib.load(io.BytesIO(data))
        except Exception as exc:  # unpickling failures have no common type
            raise ValueError(f"not a model artifact: {exc}") from exc
        if not isinstance(content, dict) or any(key not in content for key in _ARTIFACT_KEYS):
            raise ValueError(f"not a model artifact: expected a dict with keys {list(_ARTIFACT_KEYS)}")
        try:
            spec = DatasetSpec.model_validate(content["spec"])
        except ValidationError as exc:
            raise ValueError(f"model artifact has an invalid spec: {exc}") from exc
        return cls(content["pipeline"], spec, list(content["columns"]))

    @property
    def spec(self) -> DatasetSpec:
        """The dataset spec the model was trained with."""
        return self._spec

    @property
    def task(self) -> str:
        """ "regression" or "classification"."""
        return self._spec.task

    @property
    def classes(self) -> list[Any] | None:
        """The class labels, in the order of predict's probability columns (None for regression)."""
        return np.asarray(self.pipeline.classes_).tolist() if self.task == "classification" else None

    def predict(self, records: list[dict[str, Any]] | pd.DataFrame) -> np.ndarray:
        """Predict values (regression) or class probabilities, one row per record, in input order.

        Raises:
            ValueError: when there are no records, a column is missing, or a value has the wrong type.
        """
        if not isinstance(records, pd.DataFrame) and not all(isinstance(record, dict) for record in records):
            raise ValueError("records must be objects mapping column names to values")
        frame = records if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
        if frame.empty:
            raise ValueError("no records to predict")
        features = compute_features(self._spec, frame)[self.columns]
        if self.task == "classification":
            return np.asarray(self.pipeline.predict_proba(features))
        return np.asarray(self.pipeline.predict(features))
