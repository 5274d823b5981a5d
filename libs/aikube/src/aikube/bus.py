"""The bus over Google Cloud Pub/Sub: publish CloudEvents, provision the catalog's topology, pull with flow control.

The same code talks to the emulator when `PUBSUB_EMULATOR_HOST` is set (the client library reads it). Every call
is bounded in time: an unreachable Pub/Sub, missing credentials or an unprovisioned project become a `BusError`
that says what to do, instead of the client library's ten-minute retries.

Example:
    >>> bus = PubSubBus("aikube-local", Catalog.load())     # doctest: +SKIP
    >>> bus.provision()
    >>> bus.publish(event)
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any

from cloudevents.core.v1.event import CloudEvent
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_exception_type
from google.auth.exceptions import GoogleAuthError
from google.cloud import pubsub_v1
from google.protobuf import duration_pb2

from aikube.catalog import Catalog, EventSpec, dead_letter_topic, subscription_name
from aikube.codec import PubSubMessage, encode

log = logging.getLogger(__name__)

EMULATOR_HOST = "PUBSUB_EMULATOR_HOST"
ADMIN_TIMEOUT_S = 10.0  # creating or reading a topic or subscription takes milliseconds when Pub/Sub is reachable
PUBLISH_TIMEOUT_S = 60.0  # then a service's handler fails and its message is redelivered
# What the client library's own publish retry retries; the bus bounds it by the publish timeout.
_PUBLISH_RETRYABLE = if_exception_type(
    gexc.Aborted,
    gexc.Cancelled,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.ResourceExhausted,
    gexc.ServiceUnavailable,
    gexc.Unknown,
)
_UNREACHABLE = (gexc.RetryError, gexc.DeadlineExceeded, gexc.ServiceUnavailable, TimeoutError)


class BusError(RuntimeError):
    """Pub/Sub cannot be used as configured: unreachable, no credentials, no permission or not provisioned.

    The message names the project and host and says what to do.
    """


def pubsub_target(project_id: str) -> str:
    """Where this process's Pub/Sub clients go, for messages: the emulator's host or Google Cloud."""
    host = os.environ.get(EMULATOR_HOST)
    where = f"the Pub/Sub emulator at {host}" if host else "Google Cloud Pub/Sub"
    return f"{where} (project {project_id})"


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
        admin_timeout_s: float = ADMIN_TIMEOUT_S,
        publish_timeout_s: float = PUBLISH_TIMEOUT_S,
    ) -> None:
        """Create the clients (nothing is sent yet).

        Raises:
            BusError: no emulator host and no Google Cloud credentials.
        """
        self.project_id = project_id
        self.catalog = catalog
        self.policy = policy or DeliveryPolicy()
        self.admin_timeout_s = admin_timeout_s
        self.publish_timeout_s = publish_timeout_s
        try:
            self.publisher = pubsub_v1.PublisherClient(
                batch_settings=pubsub_v1.types.BatchSettings(
                    max_messages=max_batch_messages, max_latency=max_batch_latency_s
                ),
                publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True),
            )
            self.subscriber = pubsub_v1.SubscriberClient()
        except GoogleAuthError as exc:
            raise BusError(
                f"no Google Cloud credentials for Pub/Sub (project {project_id}): set {EMULATOR_HOST}=host:port to "
                "use the emulator (`aikube emulator` prints it), or provide credentials (`gcloud auth "
                f"application-default login` or GOOGLE_APPLICATION_CREDENTIALS); {_first_line(exc)}"
            ) from None

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
        """Publish an already encoded message to a topic; the future fails after the bus's publish timeout."""
        future: Future[str] = self.publisher.publish(
            self.topic_path(topic),
            message.data,
            ordering_key=message.ordering_key,
            retry=self._publish_retry(),
            timeout=self.publish_timeout_s,
            **dict(message.attributes),
        )
        return future

    def _publish_retry(self) -> Retry:
        """The library's publish retry, given up after the publish timeout.

        With message ordering enabled the library replaces any retry deadline by infinity (a dead host would be
        retried forever), so the deadline is kept in the predicate, which it leaves alone.
        """
        give_up = time.monotonic() + self.publish_timeout_s
        return Retry(
            predicate=lambda exc: _PUBLISH_RETRYABLE(exc) and time.monotonic() < give_up,
            initial=0.1,
            maximum=5.0,
            timeout=self.publish_timeout_s,
        )

    def publish_all(self, events: Iterable[CloudEvent], timeout: float | None = None) -> list[str]:
        """Publish events and wait until Pub/Sub has accepted every one of them.

        Args:
            timeout: how long to wait in all; default a little over the bus's publish timeout.

        Raises:
            BusError: Pub/Sub did not accept them (unreachable, topic missing, no permission). Ordering keys the
                failure paused are resumed, so a retry can publish them again.
        """
        events = list(events)
        futures = [self.publish(event) for event in events]
        wait_s = self.publish_timeout_s + 5 if timeout is None else timeout
        done, pending = wait(futures, timeout=wait_s)
        failed = [future for future in done if future.exception() is not None]
        if not pending and not failed:
            return [future.result() for future in futures]
        self._resume_ordering(events)
        cause = failed[0].exception() if failed else TimeoutError(f"not accepted within {wait_s:g}s")
        raise self._error(f"cannot publish {events[0].get_type()}", cause) from None

    def _resume_ordering(self, events: list[CloudEvent]) -> None:
        # A failed publish pauses its ordering key; without a resume every later event of that subject would fail.
        for event in events:
            spec = self.catalog.by_type(event.get_type())
            if spec.ordered and event.get_subject():
                try:
                    self.publisher.resume_publish(self.topic_path(spec.topic), event.get_subject() or "")
                except (ValueError, RuntimeError):
                    pass  # never published on this client, or the client is stopping

    # -- errors and timeouts -------------------------------------------------------------------------------------
    def _error(self, doing: str, exc: BaseException) -> BusError:
        """A BusError saying what failed against which Pub/Sub, and what to do about it."""
        target = pubsub_target(self.project_id)
        if isinstance(exc, _UNREACHABLE):
            hint = (
                f"is it running? `aikube emulator` starts one and prints the {EMULATOR_HOST} to export"
                if os.environ.get(EMULATOR_HOST)
                else f"check the network and credentials, or set {EMULATOR_HOST}=host:port to use the emulator"
            )
            return BusError(f"{doing}: {target} does not answer; {hint} ({_first_line(exc)})")
        if isinstance(exc, gexc.NotFound):
            return BusError(
                f"{doing}: {_first_line(exc)} in {target}; run `aikube provision --project {self.project_id}`"
            )
        if isinstance(exc, gexc.PermissionDenied | gexc.Unauthenticated | GoogleAuthError):
            return BusError(f"{doing}: not allowed on {target}; check the credentials' roles ({_first_line(exc)})")
        return BusError(f"{doing} on {target}: {type(exc).__name__}: {_first_line(exc)}")

    def _admin(self, call: Callable[..., Any], request: dict[str, Any]) -> Any:
        """An admin call that gives up after the admin timeout (the library retries for ten minutes)."""
        retry = Retry(
            predicate=if_exception_type(gexc.ServiceUnavailable), initial=0.1, maximum=2.0, timeout=self.admin_timeout_s
        )
        return call(request=request, retry=retry, timeout=self.admin_timeout_s)

    # -- provisioning --------------------------------------------------------------------------------------------
    def provision(self, services: Iterable[str] | None = None) -> list[Subscription]:
        """Create every catalog topic and the subscriptions of the given services (default: all), idempotently.

        Each subscription gets a dead-letter topic with an audit subscription (a topic without a subscription
        would drop what reaches it), the delivery policy's retry backoff, and message ordering where the
        catalog orders by subject. On GCP, Terraform in infra/ creates the same topology.

        Raises:
            BusError: Pub/Sub unreachable (within the admin timeout) or refusing.
        """
        try:
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
        except (gexc.GoogleAPIError, GoogleAuthError, TimeoutError) as exc:
            raise self._error("cannot provision", exc) from None
        return subscriptions

    def check_subscriptions(self, names: Iterable[str]) -> None:
        """Fail fast, before a service reports ready, when Pub/Sub is unreachable or a subscription is missing.

        Credentials allowed to consume but not to read subscriptions (least-privilege IAM) skip the check: the
        streaming pull then reports a missing subscription itself.

        Raises:
            BusError: naming the subscription or the host, and what to do.
        """
        for name in names:
            try:
                self._admin(self.subscriber.get_subscription, {"subscription": self.subscription_path(name)})
            except gexc.PermissionDenied:
                return
            except gexc.NotFound:
                raise BusError(
                    f"subscription {name} does not exist in {pubsub_target(self.project_id)}: "
                    f"run `aikube provision --project {self.project_id}`"
                ) from None
            except (gexc.GoogleAPIError, GoogleAuthError, TimeoutError) as exc:
                raise self._error(f"cannot read subscription {name}", exc) from None

    def _ensure_topic(self, topic: str) -> None:
        try:
            self._admin(self.publisher.create_topic, {"name": self.topic_path(topic)})
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
            self._admin(self.subscriber.create_subscription, request)
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


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, gexc.RetryError) and exc.cause is not None:
        exc = exc.cause  # "Timeout of 10.0s exceeded" says less than the last error
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _duration(seconds: float) -> duration_pb2.Duration:
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))
