"""A small dataset with every column type and every role, for the feature tests (unit and warehouse contract)."""

from __future__ import annotations

import pandas as pd

from aikube.datasets import DatasetSpec

TIMES = ["2011-01-01 00:00:00", "2011-01-02 13:00:00", "2011-07-15 23:00:00", "2012-02-29 06:30:00"]


def synthetic_spec(**overrides: object) -> DatasetSpec:
    """A classification spec with every column type and every role."""
    fields: dict[str, object] = {
        "name": "synthetic",
        "timestamp": "when",
        "target": "label",
        "task": "classification",
        "drop": ["row_id"],
        "sensitive": {"email": "drop", "phone": "mask"},
        "columns": {
            "row_id": "int",
            "when": "timestamp",
            "amount": "float",
            "count": "int",
            "city": "string",
            "member": "bool",
            "email": "string",
            "phone": "int",
            "label": "string",
        },
    }
    return DatasetSpec.model_validate({**fields, **overrides})


def synthetic_frame() -> pd.DataFrame:
    """Rows for synthetic_spec, with text timestamps as a CSV would give them."""
    n = len(TIMES)
    return pd.DataFrame(
        {
            "row_id": range(n),
            "when": TIMES,
            "amount": [1.5, 2.0, -3.25, 0.0],
            "count": [1, 2, 3, 4],
            "city": ["Paris", "Lyon", "Paris", "Nice"],
            "member": [True, False, True, False],
            "email": [f"u{i}@example.com" for i in range(n)],
            "phone": [5550100 + i for i in range(n)],
            "label": ["a", "b", "a", "c"],
        }
    )
