"""In-memory bus for fast handler tests: the real Dispatcher, the real codec, no network.

It stands beside the emulator tests (tests/integration), never instead of them.

Example:
    >>> bus = MemoryBus(Catalog.load())
    >>> dispatcher = bus.dispatcher("ingestor", router, deps)
    >>> outcome = bus.deliver(dispatcher, event)
    >>> bus.emitted("dataset.v1.ingested")
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from aikube.bus import Subscription
from aikube.catalog import Catalog
from aikube.codec import PubSubMessage, encode, from_pubsub
from aikube.idempotency import IdempotencyStore, MemoryIdempotency
from aikube.runtime import Dispatcher, Outcome, Router


class MemoryBus:
    """Records every published message per topic."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.messages: list[tuple[str, PubSubMessage]] = []

    def publish_all(self, events: Iterable[CloudEvent], timeout: float = 60.0) -> list[str]:
        ids = []
        for event in events:
            self.messages.append((self.catalog.by_type(event.get_type()).topic, encode(event)))
            ids.append(str(len(self.messages)))
        return ids

    def publish_message(self, topic: str, message: PubSubMessage) -> Future[str]:
        self.messages.append((topic, message))
        future: Future[str] = Future()
        future.set_result(str(len(self.messages)))
        return future

    def on_topic(self, topic: str) -> list[PubSubMessage]:
        return [message for t, message in self.messages if t == topic]

    def emitted(self, key: str) -> list[CloudEvent]:
        """Decoded events published to a catalog key's topic."""
        return [from_pubsub(m.data, m.attributes) for m in self.on_topic(self.catalog[key].topic)]

    def dispatcher(
        self,
        service: str,
        router: Router,
        deps: Any,
        *,
        idempotency: IdempotencyStore | None = None,
        max_delivery_attempts: int = 5,
    ) -> Dispatcher:
        return Dispatcher(
            service,
            router,
            deps,
            catalog=self.catalog,
            publisher=self,
            idempotency=idempotency or MemoryIdempotency(),
            max_delivery_attempts=max_delivery_attempts,
        )

    def deliver(self, dispatcher: Dispatcher, event: CloudEvent | PubSubMessage, attempt: int = 1) -> Outcome:
        """Deliver one event (or raw message) to the dispatcher's subscription for its type."""
        message = event if isinstance(event, PubSubMessage) else encode(event)
        subscription = _subscription_for(dispatcher, message)
        return dispatcher.process(subscription, message.data, message.attributes, attempt)


def _subscription_for(dispatcher: Dispatcher, message: PubSubMessage) -> Subscription:
    """The subscription whose type the message claims; the first one when it claims none (a malformed message)."""
    claimed = {k.lower(): v for k, v in message.attributes.items()}.get("ce-type")
    for sub in dispatcher.subscriptions:
        if sub.spec.type == claimed:
            return sub
    return dispatcher.subscriptions[0]
