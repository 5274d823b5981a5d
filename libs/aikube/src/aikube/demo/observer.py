"""Watch every event on the bus, as an operator's audit subscription would, and wait for particular ones.

Dead letters are watched too (through each dead-letter topic's audit subscription): a wait ends as soon as one
arrives, since the chain it waits on has then most likely lost a message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from aikube.bus import PubSubBus, subscriptions_of
from aikube.codec import CodecError, from_pubsub
from aikube.runtime import DL_REASON, DL_SUBSCRIPTION

Match = Callable[[str, dict[str, Any]], bool]  # (catalog key, data) -> wanted?
# Pub/Sub's own dead-lettering (delivery attempts exhausted) names the source subscription here, with no reason.
PUBSUB_DL_SOURCE = "CloudPubSubDeadLetterSourceSubscription"


@dataclass(frozen=True)
class DeadLetter:
    """A message a service gave up on: where, what type of event, and why (`aikube-dead-letter-reason`)."""

    subscription: str
    event_type: str
    reason: str

    def __str__(self) -> str:
        return f"{self.subscription} dead-lettered {self.event_type}: {self.reason}"


class DeadLettered(RuntimeError):
    """A message was dead-lettered while the demo waited on the loop."""


def dead_letter_of(subscription: str, attributes: Mapping[str, str]) -> DeadLetter:
    """Describe a message read from `subscription`'s dead-letter topic by the attributes the runtime added."""
    return DeadLetter(
        subscription=attributes.get(DL_SUBSCRIPTION) or attributes.get(PUBSUB_DL_SOURCE) or subscription,
        event_type=attributes.get("ce-type", "a message of unknown type"),
        reason=attributes.get(DL_REASON) or "no aikube-dead-letter-reason (Pub/Sub gave up redelivering it)",
    )


class Observer:
    """One `observer.<topic>` subscription per catalog topic; events are kept in arrival order."""

    def __init__(self, bus: PubSubBus) -> None:
        self.bus = bus
        self.events: list[tuple[str, CloudEvent]] = []
        self.dead_letters: list[DeadLetter] = []
        self._seen: set[tuple[str, str]] = set()  # (source, id): the observer sees at-least-once delivery too
        self._seen_dead: set[str] = set()  # Pub/Sub message ids of dead letters, for the same reason
        self._changed = threading.Condition()
        self._pulls = []
        for spec in bus.catalog.values():
            name = f"observer.{spec.topic}"
            bus.ensure_subscription(name, spec.topic)
            self._pulls.append(bus.subscribe(name, self._callback(spec.key), max_messages=100))
        for sub in subscriptions_of(bus.catalog):
            # the audit subscription provision() gives every dead-letter topic (same name as the topic)
            bus.ensure_subscription(sub.dead_letter_topic, sub.dead_letter_topic)
            self._pulls.append(bus.subscribe(sub.dead_letter_topic, self._dead_letter_callback(sub.name)))

    def _callback(self, key: str) -> Callable[[Any], None]:
        def on_message(message: Any) -> None:
            message.ack()
            try:
                event = from_pubsub(message.data, message.attributes)
            except CodecError:
                return  # malformed messages are the services' to dead-letter; the observer only watches
            with self._changed:
                identity = (event.get_source(), event.get_id())
                if identity not in self._seen:
                    self._seen.add(identity)
                    self.events.append((key, event))
                    self._changed.notify_all()

        return on_message

    def _dead_letter_callback(self, subscription: str) -> Callable[[Any], None]:
        def on_dead_letter(message: Any) -> None:
            message.ack()
            with self._changed:
                if message.message_id not in self._seen_dead:
                    self._seen_dead.add(message.message_id)
                    self.dead_letters.append(dead_letter_of(subscription, message.attributes))
                    self._changed.notify_all()

        return on_dead_letter

    def find(self, match: Match) -> CloudEvent | None:
        with self._changed:
            return next((event for key, event in self.events if match(key, _data(event))), None)

    def wait_for(
        self, match: Match, timeout_s: float, what: str, alive: Callable[[], None] = lambda: None
    ) -> CloudEvent:
        """The first event that matches, waiting for it.

        Args:
            alive: called while waiting; raises if a part of the stack died (no point waiting then).

        Raises:
            TimeoutError: naming what was awaited.
            DeadLettered: the event is not there and a message was dead-lettered (naming the subscription and the
                reason); the run's first dead letter is enough, as the awaited chain has likely lost it.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            if (event := self.find(match)) is not None:
                return event
            if dead := self.first_dead_letter():
                raise DeadLettered(f"stopped waiting for the {what}: {dead}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {what} within {timeout_s:.0f}s")
            alive()
            with self._changed:
                self._changed.wait(min(remaining, 1.0))

    def first_dead_letter(self) -> DeadLetter | None:
        """The first dead letter seen so far, if any."""
        with self._changed:
            return self.dead_letters[0] if self.dead_letters else None

    def settle(self, quiet_s: float = 2.0, max_s: float = 10.0) -> None:
        """Wait until nothing new arrived for `quiet_s` (at most `max_s`): the last batch's stragglers get counted."""
        deadline = time.monotonic() + max_s
        with self._changed:
            while time.monotonic() < deadline:
                before = (len(self.events), len(self.dead_letters))
                self._changed.wait(min(quiet_s, max(0.0, deadline - time.monotonic())))
                if (len(self.events), len(self.dead_letters)) == before:
                    return

    def of(self, key: str) -> list[CloudEvent]:
        with self._changed:
            return [event for k, event in self.events if k == key]

    def close(self) -> None:
        for pull in self._pulls:
            pull.cancel()
        for pull in self._pulls:
            pull.result(timeout=30)


def _data(event: CloudEvent) -> dict[str, Any]:
    data = event.get_data()
    return data if isinstance(data, dict) else {}
