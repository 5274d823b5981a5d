"""Shared fixtures: the catalog, the real Pub/Sub emulator (one per test session), a project per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aikube.bus import DeliveryPolicy, PubSubBus
from aikube.catalog import Catalog
from aikube.emulator import EmulatorNotInstalled, PubSubEmulator

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.load(REPO / "events")


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[PubSubEmulator]:
    """The official emulator on a free port, stopped by PID at the end of the session.

    It may skip only where the emulator is not installed; on CI (CI=true) that is a failure.
    """
    try:
        emulator = PubSubEmulator().start()
    except EmulatorNotInstalled as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the emulator tier: {exc}")
        pytest.skip(str(exc))
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    yield emulator
    emulator.stop()
    if previous is None:
        os.environ.pop("PUBSUB_EMULATOR_HOST", None)
    else:
        os.environ["PUBSUB_EMULATOR_HOST"] = previous


@pytest.fixture
def project_id() -> str:
    """A project of its own per test: the emulator isolates topics and subscriptions by project."""
    return f"aikube-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def fast_policy() -> DeliveryPolicy:
    """Pub/Sub's minimum of 5 attempts with short backoff, so redelivery tests finish in seconds."""
    return DeliveryPolicy(max_delivery_attempts=5, minimum_backoff_s=0.1, maximum_backoff_s=0.5, ack_deadline_s=10)


@pytest.fixture
def pubsub_bus(
    pubsub_emulator: PubSubEmulator, project_id: str, catalog: Catalog, fast_policy: DeliveryPolicy
) -> Iterator[PubSubBus]:
    """A bus on the emulator with the catalog's whole topology provisioned in a fresh project."""
    bus = PubSubBus(project_id, catalog, policy=fast_policy)
    bus.provision()
    yield bus
    bus.close()
