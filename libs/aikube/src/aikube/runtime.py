"""The service runtime: typed handlers per event type, validation, dead-lettering, idempotency, tracing, shutdown.

A service is a Router of handlers plus its dependencies:

    router = Router()

    @router.handler("dataset.v1.arrived")
    def on_dataset_arrived(data: dict, ctx: EventContext, deps: Deps) -> Emit | None:
        ...
        return Emit("dataset.v1.ingested", {...})

    Service("ingestor", settings, router, deps).run()      # blocks until SIGTERM

Delivery contract: a message is acked only after its handler succeeded and what it emitted was accepted by Pub/Sub.
An undecodable message, a foreign type or schema-invalid data goes to the subscription's dead-letter topic at once,
with the reason in its attributes. A handler error nacks (Pub/Sub retries with backoff); on the last allowed
attempt the runtime dead-letters it with the error. An event already handled (same source + id) is acked unapplied.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from cloudevents.core.v1.event import CloudEvent
from opentelemetry import trace

from aikube.bus import Subscription
from aikube.catalog import Catalog, SchemaViolation, UnknownEventType
from aikube.codec import CodecError, PubSubMessage, from_pubsub
from aikube.envelope import Emit, EventContext, derived_id, make_event, source_of
from aikube.errors import Rejected
from aikube.idempotency import IdempotencyStore, event_key
from aikube.locks import KeyedLocks
from aikube.telemetry import context_from

log = logging.getLogger(__name__)
tracer = trace.get_tracer("aikube.runtime")

Handler = Callable[[dict[str, Any], EventContext, Any], "Emit | Sequence[Emit] | None"]

# Attributes the runtime adds to a dead-lettered message (Pub/Sub's own DLQ adds CloudPubSubDeadLetterSource*).
DL_REASON = "aikube-dead-letter-reason"
DL_SUBSCRIPTION = "aikube-dead-letter-subscription"
DL_ATTEMPT = "aikube-delivery-attempt"
MAX_ATTRIBUTE_VALUE = 1000  # Pub/Sub allows 1024 bytes per attribute value


class Router:
    """Handlers registered by catalog key (`dataset.v1.arrived`), one per key."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}

    def handler(self, key: str) -> Callable[[Handler], Handler]:
        def register(func: Handler) -> Handler:
            if key in self.handlers:
                raise ValueError(f"two handlers for {key}")
            self.handlers[key] = func
            return func

        return register


class Action(Enum):
    ACK = "ack"
    NACK = "nack"


@dataclass(frozen=True)
class Outcome:
    """What happened to one delivery, for the transport to ack or nack and for tests to assert on."""

    action: Action
    status: str  # handled | duplicate | dead_lettered | failed
    reason: str = ""
    emitted: tuple[CloudEvent, ...] = field(default=())


class Publisher(Protocol):
    def publish_all(self, events: Iterable[CloudEvent], timeout: float = 60.0) -> list[str]: ...

    def publish_message(self, topic: str, message: PubSubMessage) -> Future[str]: ...


class Dispatcher:
    """Transport-free processing of one delivery: the same code under Pub/Sub and under the in-memory bus."""

    def __init__(
        self,
        service: str,
        router: Router,
        deps: Any,
        *,
        catalog: Catalog,
        publisher: Publisher,
        idempotency: IdempotencyStore,
        max_delivery_attempts: int,
    ) -> None:
        self.service = service
        self.router = router
        self.deps = deps
        self.catalog = catalog
        self.publisher = publisher
        self.idempotency = idempotency
        self.max_delivery_attempts = max_delivery_attempts
        self.subscriptions = [Subscription(service, catalog[key]) for key in router.handlers]
        for sub in self.subscriptions:
            if service not in sub.spec.consumers:
                raise ValueError(f"{service} handles {sub.spec.key} but the catalog does not list it as a consumer")
        self._in_progress = KeyedLocks()

    def process(self, subscription: Subscription, data: bytes, attributes: Mapping[str, str], attempt: int) -> Outcome:
        """Decode, check, deduplicate, handle and publish what the handler emits; never raises."""
        message = PubSubMessage(data, dict(attributes))
        try:
            event = from_pubsub(data, attributes)
            spec = self.catalog.by_type(event.get_type())
            if spec.key != subscription.spec.key:
                raise UnknownEventType(f"type {event.get_type()} does not belong on topic {subscription.spec.topic}")
            payload = event.get_data()
            spec.validate(payload)
        except (CodecError, UnknownEventType, SchemaViolation) as exc:
            return self._dead_letter(subscription, message, attempt, f"{type(exc).__name__}: {exc}")
        assert isinstance(payload, dict)  # the schemas only admit objects

        key = event_key(event.get_source(), event.get_id())
        with self._in_progress.hold(key):  # a concurrent duplicate waits, then sees the marker
            if self.idempotency.seen(key):
                log.info("duplicate delivery ignored", extra=_fields(event, attempt))
                return Outcome(Action.ACK, "duplicate")
            parent = context_from(event.get_attributes())
            with tracer.start_as_current_span(
                f"{spec.key} process", context=parent, kind=trace.SpanKind.CONSUMER, attributes=_span_attrs(event)
            ) as span:
                span.set_attribute("messaging.destination.subscription.name", subscription.name)
                span.set_attribute("messaging.gcp_pubsub.message.delivery_attempt", attempt)
                try:
                    ctx = EventContext.of(event, attempt, format(span.get_span_context().trace_id, "032x"))
                    emitted = self._emit(event, ctx, self.router.handlers[spec.key](payload, ctx, self.deps))
                    self.publisher.publish_all(emitted)
                except Rejected as exc:
                    span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
                    return self._dead_letter(subscription, message, attempt, f"rejected: {exc}")
                except Exception as exc:  # any other handler error is retried, then dead-lettered: never lost
                    span.record_exception(exc)
                    span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
                    log.exception("handler failed", extra=_fields(event, attempt))
                    if attempt >= self.max_delivery_attempts:
                        reason = f"handler failed after {attempt} attempts: {type(exc).__name__}: {exc}"
                        return self._dead_letter(subscription, message, attempt, reason)
                    return Outcome(Action.NACK, "failed", f"{type(exc).__name__}: {exc}")
            self.idempotency.mark(key)
        log.info("handled", extra={**_fields(event, attempt), "emitted": [e.get_type() for e in emitted]})
        return Outcome(Action.ACK, "handled", emitted=tuple(emitted))

    def _emit(self, cause: CloudEvent, ctx: EventContext, result: Emit | Sequence[Emit] | None) -> list[CloudEvent]:
        emits = [] if result is None else [result] if isinstance(result, Emit) else list(result)
        return [
            make_event(
                self.catalog[emit.key],
                emit.data,
                source=source_of(self.service),
                subject=emit.subject or ctx.subject,
                # Deterministic: a retried handler re-emits the same ids, which consumers deduplicate.
                event_id=derived_id(self.service, ctx.source, ctx.id, emit.key, str(index)),
            )
            for index, emit in enumerate(emits)
        ]

    def _dead_letter(self, subscription: Subscription, message: PubSubMessage, attempt: int, reason: str) -> Outcome:
        attributes = {
            **message.attributes,
            DL_REASON: reason[:MAX_ATTRIBUTE_VALUE],
            DL_SUBSCRIPTION: subscription.name,
            DL_ATTEMPT: str(attempt),
        }
        try:
            self.publisher.publish_message(
                subscription.dead_letter_topic, PubSubMessage(message.data, attributes)
            ).result(timeout=60)
        except Exception as exc:  # the dead-letter topic is unreachable: keep the message, retry later
            log.error("dead-lettering failed; message kept", extra={"reason": reason, "error": str(exc)})
            return Outcome(Action.NACK, "failed", f"dead-lettering failed: {exc}")
        log.warning("dead-lettered", extra={"reason": reason, "subscription": subscription.name, "attempt": attempt})
        return Outcome(Action.ACK, "dead_lettered", reason)


def _span_attrs(event: CloudEvent) -> dict[str, str]:
    return {
        "cloudevents.event_id": event.get_id(),
        "cloudevents.event_type": event.get_type(),
        "cloudevents.event_subject": event.get_subject() or "",
        "cloudevents.event_source": event.get_source(),
    }


def _fields(event: CloudEvent, attempt: int) -> dict[str, Any]:
    return {
        "ce_id": event.get_id(),
        "ce_type": event.get_type(),
        "ce_subject": event.get_subject(),
        "delivery_attempt": attempt,
    }


class HealthServer:
    """`/healthz` (the process serves) and `/readyz` (every subscription is pulling), for Kubernetes probes."""

    def __init__(self, port: int, is_ready: Callable[[], bool]) -> None:
        ready = is_ready

        class Probe(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (stdlib name)
                ok = self.path == "/healthz" or (self.path == "/readyz" and ready())
                self.send_response(200 if ok else 503)
                self.end_headers()
                self.wfile.write(b"ok" if ok else b"not ready")

            def log_message(self, *args: Any) -> None:  # probes are not news
                pass

        self.server = ThreadingHTTPServer(("0.0.0.0", port), Probe)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Service:
    """Runs a Dispatcher on Pub/Sub streaming pull until SIGTERM or SIGINT.

    Shutdown: stop pulling, let running handlers finish (their messages are acked), leave the rest unacked for
    redelivery, flush the publisher, then flush traces.
    """

    def __init__(self, dispatcher: Dispatcher, bus: Any, *, max_messages: int = 4, health_port: int | None = None):
        self.dispatcher = dispatcher
        self.bus = bus
        self.max_messages = max_messages
        self.health = HealthServer(health_port, self.ready) if health_port is not None else None
        self._stopped = threading.Event()
        self._stop_requested = threading.Event()
        self._pulls: list[Any] = []

    def ready(self) -> bool:
        return bool(self._pulls) and not any(pull.done() for pull in self._pulls)

    def _callback(self, subscription: Subscription) -> Callable[[Any], None]:
        def on_message(message: Any) -> None:
            outcome = self.dispatcher.process(
                subscription, message.data, message.attributes, message.delivery_attempt or 1
            )
            if outcome.action is Action.ACK:
                message.ack()
            else:
                message.nack()

        return on_message

    def start(self) -> None:
        """Start pulling every subscription and the health endpoint."""
        for sub in self.dispatcher.subscriptions:
            self._pulls.append(self.bus.subscribe(sub.name, self._callback(sub), max_messages=self.max_messages))
        if self.health:
            self.health.start()
        log.info("started", extra={"subscriptions": [s.name for s in self.dispatcher.subscriptions]})

    def stop(self) -> None:
        """Graceful shutdown; safe to call twice."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        for pull in self._pulls:
            pull.cancel()
        for pull in self._pulls:
            pull.result(timeout=120)  # returns once in-flight callbacks have finished
        self.bus.close()
        if self.health:
            self.health.stop()
        log.info("stopped")

    def run(self) -> None:
        """Start, block until SIGTERM/SIGINT, then stop gracefully."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop_requested.set())
        self.start()
        while not self._stop_requested.wait(0.5):
            if any(pull.done() for pull in self._pulls):
                # a pull stream died (e.g. subscription deleted): exit non-zero so Kubernetes restarts the pod
                failed = next(p for p in self._pulls if p.done())
                self.stop()
                raise RuntimeError(f"subscription stream ended: {failed.exception()}")
        self.stop()
