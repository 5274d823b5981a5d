"""The demo's observer stops waiting as soon as a message is dead-lettered, and says where and why."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aikube.bus import subscriptions_of
from aikube.catalog import Catalog
from aikube.codec import encode
from aikube.demo.observer import DeadLettered, Observer
from aikube.envelope import make_event
from aikube.runtime import DL_ATTEMPT, DL_REASON, DL_SUBSCRIPTION

CATALOG = Catalog.load(Path(__file__).resolve().parents[3] / "events")
_ids = itertools.count()


class Pull:
    def cancel(self) -> None:
        pass

    def result(self, timeout: float | None = None) -> None:
        pass


class Bus:
    """The streaming pulls the observer opens, so a test can deliver messages to their callbacks."""

    catalog = CATALOG

    def __init__(self) -> None:
        self.callbacks: dict[str, Callable[[Any], None]] = {}

    def ensure_subscription(self, name: str, topic: str) -> None:
        pass

    def subscribe(self, name: str, callback: Callable[[Any], None], max_messages: int = 4) -> Pull:
        self.callbacks[name] = callback
        return Pull()


class Message:
    def __init__(self, data: bytes, attributes: dict[str, str]) -> None:
        self.data, self.attributes, self.message_id = data, attributes, str(next(_ids))
        self.acked = False

    def ack(self) -> None:
        self.acked = True


def decided(batch_id: str) -> Message:
    spec = CATALOG["retrain.v1.decided"]
    message = encode(make_event(spec, {**spec.example(), "batch_id": batch_id}, source="/test", subject="x"))
    return Message(message.data, dict(message.attributes))


def dead_letter(subscription: str, reason: str | None) -> Message:
    spec = CATALOG["dataset.v1.ingested"]
    message = encode(make_event(spec, spec.example(), source="/aikube/ingestor", subject="x"))
    extra = {DL_SUBSCRIPTION: subscription, DL_ATTEMPT: "1"} | ({DL_REASON: reason} if reason else {})
    return Message(message.data, {**message.attributes, **extra})


FEATURES_SUB = next(s for s in subscriptions_of(CATALOG) if s.consumer == "feature-builder")


def wanted(batch_id: str) -> Callable[[str, dict[str, Any]], bool]:
    return lambda key, data: key == "retrain.v1.decided" and data.get("batch_id") == batch_id


def test_a_dead_letter_ends_the_wait_naming_the_subscription_and_the_reason() -> None:
    bus = Bus()
    observer = Observer(bus)  # type: ignore[arg-type]
    deliver = bus.callbacks[FEATURES_SUB.dead_letter_topic]
    threading.Timer(0.2, deliver, [dead_letter(FEATURES_SUB.name, "rejected: dataset 'x' is not registered")]).start()

    started = time.monotonic()
    with pytest.raises(DeadLettered) as failure:
        observer.wait_for(wanted("b1"), 30, "retrain decision for batch b1")

    assert time.monotonic() - started < 5  # not the 30 s timeout
    message = str(failure.value)
    assert "retrain decision for batch b1" in message
    assert FEATURES_SUB.name in message and "rejected: dataset 'x' is not registered" in message
    assert observer.dead_letters[0].event_type == "dev.aikube.dataset.v1.ingested"


def test_a_dead_letter_pub_sub_made_itself_still_ends_the_wait() -> None:
    bus = Bus()
    observer = Observer(bus)  # type: ignore[arg-type]
    bus.callbacks[FEATURES_SUB.dead_letter_topic](dead_letter(FEATURES_SUB.name, reason=None))

    with pytest.raises(DeadLettered, match="no aikube-dead-letter-reason"):
        observer.wait_for(wanted("b1"), 30, "retrain decision for batch b1")


def test_the_awaited_event_wins_over_dead_letters_and_redeliveries_count_once() -> None:
    bus = Bus()
    observer = Observer(bus)  # type: ignore[arg-type]
    bus.callbacks[f"observer.{CATALOG['retrain.v1.decided'].topic}"](decided("b1"))
    message = dead_letter(FEATURES_SUB.name, "rejected: boom")
    for _ in range(2):  # at-least-once delivery to the observer too
        bus.callbacks[FEATURES_SUB.dead_letter_topic](message)

    event = observer.wait_for(wanted("b1"), 1, "retrain decision for batch b1")

    assert event.get_data()["batch_id"] == "b1"
    assert len(observer.dead_letters) == 1 and message.acked


def test_without_dead_letters_the_wait_times_out_as_before() -> None:
    observer = Observer(Bus())  # type: ignore[arg-type]

    with pytest.raises(TimeoutError, match="no retrain decision for batch b9 within 0s"):
        observer.wait_for(wanted("b9"), 0.3, "retrain decision for batch b9")
