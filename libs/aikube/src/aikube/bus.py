"""The bus over Google Cloud Pub/Sub: publish CloudEvents, provision the catalog's topology, pull with flow control.

The same code talks to the emulator when `PUBSUB_EMULATOR_HOST` is set (the client library reads it).

Example:
    >>> bus = PubSubBus("aikube-local", Catalog.load())     # doctest: +SKIP
    >>> bus.provision()
    >>> bus.publish(event)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass

from cloudevents.core.v1.event import CloudEvent
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.protobuf import duration_pb2

from aikube.catalog import Catalog, EventSpec, dead_letter_topic, subscription_name
from aikube.codec import PubSubMessage, encode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryPolicy:
    """Redelivery and dead-lettering of every subscription the bus provisions."""

    max_delivery_attempts: int = 5  # Pub/Sub accepts 5..100
    minimum_backoff_s: float = 1.0
    maximum_backoff_s: float = 60.0
    ack_deadline_s: int = 60


@dataclass(frozen=True)
class Subscription:
    """A consumer's subscription to one catalog topic, with its dead-letter topic."""

    consumer: str
    spec: EventSpec

    @property
    def name(self) -> str:
        return subscription_name(self.consumer, self.spec.topic)

    @property
    def dead_letter_topic(self) -> str:
        return dead_letter_topic(self.name)


def subscriptions_of(catalog: Catalog, services: Iterable[str] | None = None) -> list[Subscription]:
    """Every (consumer, topic) subscription the catalog implies, optionally for some services only."""
    wanted = set(services) if services is not None else None
    return [
        Subscription(consumer, spec)
        for spec in catalog.values()
        for consumer in spec.consumers
        if wanted is None or consumer in wanted
    ]


class PubSubBus:
    """Publisher, provisioner and subscriber over one Google Cloud project."""

    def __init__(
        self,
        project_id: str,
        catalog: Catalog,
        *,
        policy: DeliveryPolicy | None = None,
        max_batch_messages: int = 100,
        max_batch_latency_s: float = 0.01,
    ) -> None:
        self.project_id = project_id
        self.catalog = catalog
        self.policy = policy or DeliveryPolicy()
        self.publisher = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(
                max_messages=max_batch_messages, max_latency=max_batch_latency_s
            ),
            publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True),
        )
        self.subscriber = pubsub_v1.SubscriberClient()

    # -- names ---------------------------------------------------------------------------------------------------
    def topic_path(self, topic: str) -> str:
        return self.publisher.topic_path(self.project_id, topic)

    def subscription_path(self, subscription: str) -> str:
        return self.subscriber.subscription_path(self.project_id, subscription)

    # -- publish -------------------------------------------------------------------------------------------------
    def publish(self, event: CloudEvent) -> Future[str]:
        """Publish an event to its catalog topic (binary mode; ordering key = subject for ordered types).

        Returns:
            The publish future; its result is the Pub/Sub message id.
        """
        spec = self.catalog.by_type(event.get_type())
        ordering_key = (event.get_subject() or "") if spec.ordered else ""
        return self.publish_message(spec.topic, encode(event, ordering_key=ordering_key))

    def publish_message(self, topic: str, message: PubSubMessage) -> Future[str]:
        """Publish an already encoded message to a topic."""
        future: Future[str] = self.publisher.publish(
            self.topic_path(topic), message.data, ordering_key=message.ordering_key, **dict(message.attributes)
        )
        return future

    def publish_all(self, events: Iterable[CloudEvent], timeout: float = 60.0) -> list[str]:
        """Publish events and wait until Pub/Sub has accepted every one of them."""
        futures = [self.publish(event) for event in events]
        return [future.result(timeout=timeout) for future in futures]

    # -- provisioning --------------------------------------------------------------------------------------------
    def provision(self, services: Iterable[str] | None = None) -> list[Subscription]:
        """Create every catalog topic and the subscriptions of the given services (default: all), idempotently.

        Each subscription gets a dead-letter topic with an audit subscription (a topic without a subscription
        would drop what reaches it), the delivery policy's retry backoff, and message ordering where the
        catalog orders by subject. On GCP, Terraform in infra/ creates the same topology.
        """
        for spec in self.catalog.values():
            self._ensure_topic(spec.topic)
        subscriptions = subscriptions_of(self.catalog, services)
        for sub in subscriptions:
            self._ensure_topic(sub.dead_letter_topic)
            self.ensure_subscription(sub.dead_letter_topic, sub.dead_letter_topic)
            self.ensure_subscription(
                sub.name,
                sub.spec.topic,
                ordered=sub.spec.ordered,
                dead_letter=self.topic_path(sub.dead_letter_topic),
            )
        return subscriptions

    def _ensure_topic(self, topic: str) -> None:
        try:
            self.publisher.create_topic(request={"name": self.topic_path(topic)})
        except gexc.AlreadyExists:
            pass

    def ensure_subscription(
        self, name: str, topic: str, *, ordered: bool = False, dead_letter: str | None = None
    ) -> None:
        """Create a subscription unless it exists (dead-letter policy and retry backoff when `dead_letter` is set)."""
        request: dict[str, object] = {
            "name": self.subscription_path(name),
            "topic": self.topic_path(topic),
            "ack_deadline_seconds": self.policy.ack_deadline_s,
            "enable_message_ordering": ordered,
        }
        if dead_letter:
            request["dead_letter_policy"] = {
                "dead_letter_topic": dead_letter,
                "max_delivery_attempts": self.policy.max_delivery_attempts,
            }
            request["retry_policy"] = {
                "minimum_backoff": _duration(self.policy.minimum_backoff_s),
                "maximum_backoff": _duration(self.policy.maximum_backoff_s),
            }
        try:
            self.subscriber.create_subscription(request=request)
        except gexc.AlreadyExists:
            pass

    # -- subscribe -----------------------------------------------------------------------------------------------
    def subscribe(
        self,
        subscription: str,
        callback: Callable[[pubsub_v1.subscriber.message.Message], None],
        *,
        max_messages: int = 4,
    ) -> pubsub_v1.subscriber.futures.StreamingPullFuture:
        """Streaming pull with flow control: at most `max_messages` outstanding, which bounds memory.

        Callbacks run on the client's thread pool; on shutdown the pull waits for running callbacks.
        Leases are extended in steps of the policy's ack deadline, so messages this pull held when it stopped or
        died come back after that deadline (the client's own stream default is 60 s whatever the policy says, and
        the emulator ignores the nacks the client sends for them once the stream has closed).
        """
        return self.subscriber.subscribe(
            self.subscription_path(subscription),
            callback,
            flow_control=pubsub_v1.types.FlowControl(
                max_messages=max_messages, max_duration_per_lease_extension=self.policy.ack_deadline_s
            ),
            await_callbacks_on_shutdown=True,
        )

    def pull(self, subscription: str, max_messages: int = 100, timeout: float = 5.0) -> list[PulledMessage]:
        """Synchronously pull and acknowledge what is waiting (for audits, the demo and tests)."""
        try:
            response = self.subscriber.pull(
                request={"subscription": self.subscription_path(subscription), "max_messages": max_messages},
                timeout=timeout,
            )
        except gexc.DeadlineExceeded:
            return []
        received = list(response.received_messages)
        if received:
            self.subscriber.acknowledge(
                request={
                    "subscription": self.subscription_path(subscription),
                    "ack_ids": [m.ack_id for m in received],
                }
            )
        return [PulledMessage(bytes(m.message.data), dict(m.message.attributes), m.delivery_attempt) for m in received]

    def close(self) -> None:
        """Flush pending publishes and close both clients."""
        self.publisher.stop()
        self.subscriber.close()


@dataclass(frozen=True)
class PulledMessage:
    data: bytes
    attributes: Mapping[str, str]
    delivery_attempt: int


def _duration(seconds: float) -> duration_pb2.Duration:
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))
