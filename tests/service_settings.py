"""The settings every service requires, valid, on folders of one test (for entry-point tests)."""

from __future__ import annotations

from pathlib import Path


def service_settings(tmp_path: Path) -> dict[str, str]:
    """A project, a store and a warehouse under tmp_path: AIKUBE_PROJECT_ID, AIKUBE_STORE, AIKUBE_WAREHOUSE."""
    return {
        "AIKUBE_PROJECT_ID": "p",
        "AIKUBE_STORE": (tmp_path / "store").as_uri(),
        "AIKUBE_WAREHOUSE": f"duckdb://{tmp_path / 'warehouse'}",
    }
