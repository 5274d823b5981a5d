"""Shared fixtures: the catalog, the real Pub/Sub emulator (one per test session), a project per test, and the
Cloud Storage and BigQuery stand-ins (aikube.emulator), one process each per test session, stopped by PID.

The stand-ins serve both tests/integration (what only Cloud Storage or BigQuery does) and the `gcp_emulators`
parameters of tests/contract (the ObjectStore and Warehouse protocols, once for every backend). A stand-in that
cannot be installed skips its tests locally and fails them on CI (CI=true), as the Pub/Sub emulator does. CI installs
bqemulator's virtualenv in `make setup`; locally it is made on first use.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

from aikube.bus import DeliveryPolicy, PubSubBus
from aikube.catalog import Catalog
from aikube.emulator import BigQueryEmulator, EmulatorNotInstalled, FakeGcsServer, LocalServer, PubSubEmulator

REPO = Path(__file__).resolve().parent.parent
TEST_PROJECT = "aikube-test"


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


# --- the GCP stand-ins


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail on CI where every tier must run."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the GCP stand-in tier: {reason}")
    pytest.skip(reason)


@contextmanager
def running(server_factory: type[LocalServer] | object, *args: object) -> Iterator[LocalServer]:
    """Start a stand-in with its client variables set for the session; unavailable() if it cannot run."""
    try:
        server = server_factory(*args).start()  # type: ignore[operator]
    except (EmulatorNotInstalled, RuntimeError) as exc:
        unavailable(str(exc))
    previous = {name: os.environ.get(name) for name in server.env}
    os.environ.update(server.env)
    try:
        yield server
    finally:
        server.stop()
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- Cloud Storage


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[LocalServer]:
    """fake-gcs-server (in memory) with STORAGE_EMULATOR_HOST pointing at it for the session."""
    with running(FakeGcsServer) as server:
        yield server


@pytest.fixture
def gcs_bucket(gcs_emulator: LocalServer) -> str:
    """A new empty bucket per test."""
    import google.cloud.storage as storage

    name = f"aikube-{uuid.uuid4().hex[:12]}"
    storage.Client(project=TEST_PROJECT).create_bucket(name)
    return name


# --- BigQuery


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """bqemulator (in memory) with BIGQUERY_EMULATOR_HOST pointing at it for the session."""
    with running(BigQueryEmulator, TEST_PROJECT, tmp_path_factory.mktemp("bqemulator")) as server:
        yield server


@pytest.fixture
def bigquery_project(bigquery_emulator: LocalServer) -> str:
    """The project the datasets are made in (the emulator accepts any)."""
    return TEST_PROJECT


@pytest.fixture
def bigquery_dataset(bigquery_project: str) -> str:
    """A new empty dataset per test, in `bigquery_project`."""
    from aikube.bigquery import bigquery_client

    name = f"aikube_{uuid.uuid4().hex[:12]}"
    bigquery_client(bigquery_project).create_dataset(name)
    return name
