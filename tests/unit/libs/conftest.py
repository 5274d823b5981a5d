"""Fixtures shared by the library's unit tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from aikube.telemetry import shutdown_tracing


@pytest.fixture
def restore_process_state() -> Iterator[None]:
    """Logging and tracing are set up per process: leave tracing off and the root logger as it was found."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    shutdown_tracing()
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
