"""Watch every event on the bus, as an operator's audit subscription would, and wait for particular ones."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from aikube.bus import PubSubBus
from aikube.codec import CodecError, from_pubsub

Match = Callable[[str, dict[str, Any]], bool]  # (catalog key, data) -> wanted?


class Observer:
    """One `observer.<topic>` subscription per catalog topic; events are kept in arrival order."""

    def __init__(self, bus: PubSubBus) -> None:
        self.bus = bus
        self.events: list[tuple[str, CloudEvent]] = []
        self._seen: set[tuple[str, str]] = set()  # (source, id): the observer sees at-least-once delivery too
        self._changed = threading.Condition()
        self._pulls = []
        for spec in bus.catalog.values():
            name = f"observer.{spec.topic}"
            bus.ensure_subscription(name, spec.topic)
            self._pulls.append(bus.subscribe(name, self._callback(spec.key), max_messages=100))

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
        """
        deadline = time.monotonic() + timeout_s
        while True:
            if (event := self.find(match)) is not None:
                return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {what} within {timeout_s:.0f}s")
            alive()
            with self._changed:
                self._changed.wait(min(remaining, 1.0))

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
