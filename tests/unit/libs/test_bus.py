"""The Pub/Sub bus when Pub/Sub cannot be used: bounded waits and errors that say what to do.

An emulator address nothing listens on (127.0.0.1:1) refuses at once, so these need no emulator.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from aikube.bus import BusError, PubSubBus
from aikube.catalog import Catalog
from aikube.sdk import arrived_event

DEAD_HOST = "127.0.0.1:1"


@pytest.fixture
def dead_bus(monkeypatch: pytest.MonkeyPatch, catalog: Catalog) -> Any:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", DEAD_HOST)
    bus = PubSubBus("p", catalog, admin_timeout_s=1.0, publish_timeout_s=1.0)
    yield bus
    bus.close()


def timed(call: Any) -> tuple[BusError, float]:
    started = time.monotonic()
    with pytest.raises(BusError) as error:
        call()
    return error.value, time.monotonic() - started


def test_provision_against_a_dead_host_fails_within_the_admin_timeout(dead_bus: PubSubBus) -> None:
    """Provisioning names the host and how to start an emulator instead of retrying for minutes."""
    error, seconds = timed(dead_bus.provision)
    assert seconds < 10
    assert f"emulator at {DEAD_HOST} (project p) does not answer" in str(error) and "aikube emulator" in str(error)


def test_publish_against_a_dead_host_fails_with_a_message(dead_bus: PubSubBus, catalog: Catalog) -> None:
    """An unaccepted publish is a BusError naming the host within the publish timeout, never an empty error.

    The failure pauses the subject's ordering key; the bus resumes it, so the next publish fails the same way
    instead of being refused as paused.
    """
    event = arrived_event(catalog, "d", "b1", uri="file:///x.csv")
    for _ in range(2):
        error, seconds = timed(lambda: dead_bus.publish_all([event]))
        assert seconds < 15
        assert str(error).startswith(f"cannot publish {event.get_type()}: the Pub/Sub emulator at {DEAD_HOST}")


def test_check_subscriptions_against_a_dead_host(dead_bus: PubSubBus) -> None:
    """A service's startup check fails fast on an unreachable host."""
    error, seconds = timed(lambda: dead_bus.check_subscriptions(["ingestor.aikube.dataset.v1.arrived"]))
    assert seconds < 10 and "does not answer" in str(error)


class Subscriber:
    """get_subscription answers with a given error; records what was asked."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.asked: list[str] = []

    def subscription_path(self, project: str, name: str) -> str:
        return f"projects/{project}/subscriptions/{name}"

    def get_subscription(self, request: dict[str, str], **_: Any) -> None:
        self.asked.append(request["subscription"])
        raise self.error

    def close(self) -> None:
        pass


def test_missing_subscription_says_to_provision(dead_bus: PubSubBus) -> None:
    """A project without the service's subscriptions is named, with the command that creates them."""
    dead_bus.subscriber = Subscriber(gexc.NotFound("Subscription does not exist"))  # type: ignore[assignment]
    with pytest.raises(BusError, match=r"subscription s does not exist in .*: run `aikube provision --project p`"):
        dead_bus.check_subscriptions(["s"])


def test_credentials_that_may_only_consume_skip_the_check(dead_bus: PubSubBus) -> None:
    """Least-privilege IAM may not read subscriptions: that is no reason not to start."""
    subscriber = Subscriber(gexc.PermissionDenied("pubsub.subscriptions.get"))
    dead_bus.subscriber = subscriber  # type: ignore[assignment]
    dead_bus.check_subscriptions(["a", "b"])
    assert subscriber.asked == ["projects/p/subscriptions/a"]


class Publisher:
    """Every publish fails with a given error."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def topic_path(self, project: str, topic: str) -> str:
        return f"projects/{project}/topics/{topic}"

    def publish(self, topic: str, data: bytes, **_: Any) -> Future[str]:
        future: Future[str] = Future()
        future.set_exception(self.error)
        return future

    def resume_publish(self, topic: str, ordering_key: str) -> None:
        pass

    def stop(self) -> None:
        pass


def test_publish_to_a_missing_topic_says_to_provision(dead_bus: PubSubBus, catalog: Catalog) -> None:
    """A topic that does not exist points at `aikube provision`."""
    dead_bus.publisher = Publisher(gexc.NotFound("Topic not found"))  # type: ignore[assignment]
    with pytest.raises(BusError, match=r"404 Topic not found in .*; run `aikube provision --project p`"):
        dead_bus.publish_all([arrived_event(catalog, "d", "b1", uri="file:///x.csv")])


def test_no_credentials_and_no_emulator(monkeypatch: pytest.MonkeyPatch, catalog: Catalog, tmp_path: Path) -> None:
    """Without an emulator host or credentials the bus says how to get either, instead of a library traceback."""
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(BusError, match="no Google Cloud credentials for Pub/Sub \\(project p\\)") as error:
        PubSubBus("p", catalog)
    assert "PUBSUB_EMULATOR_HOST=host:port" in str(error.value) and "application-default login" in str(error.value)
