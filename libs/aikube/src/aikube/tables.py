"""Names of the warehouse tables and object keys a dataset's data lives under (one rule, every service)."""

from __future__ import annotations


def _ident(dataset: str) -> str:
    # dataset names may hold '-', which SQL identifiers may not
    return dataset.replace("-", "_")


def raw_table(dataset: str) -> str:
    """Accepted, masked rows as they arrived, one partition per batch."""
    return f"raw_{_ident(dataset)}"


def features_table(dataset: str) -> str:
    """Feature snapshots, one partition per batch."""
    return f"features_{_ident(dataset)}"


def model_subject(model: str) -> str:
    return f"model/{model}"


def dataset_subject(dataset: str) -> str:
    return f"dataset/{dataset}"
