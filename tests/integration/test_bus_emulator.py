"""The event spine against the real Pub/Sub emulator: codec round trips, redelivery and dead-lettering,
idempotency, graceful shutdown and one trace across three services."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent
from opentelemetry import trace

from aikube.bus import DeliveryPolicy, PubSubBus, PulledMessage, Subscription
from aikube.catalog import Catalog, dead_letter_topic, subscription_name
from aikube.codec import PubSubMessage, from_pubsub, to_binary, to_structured
from aikube.envelope import Emit, EventContext, make_event, source_of
from aikube.idempotency import MemoryIdempotency
from aikube.runtime import DL_ATTEMPT, DL_REASON, DL_SUBSCRIPTION, Dispatcher, Outcome, Router, Service
from aikube.telemetry import context_from, setup_tracing, shutdown_tracing
from aikube.tracefile import load_spans

pytestmark = pytest.mark.emulator

WAIT_S = 30.0  # upper bound of every wait; the happy path takes well under a second per hop
ARRIVED = "dataset.v1.arrived"
INGESTOR_SUB = subscription_name("ingestor", "aikube.dataset.v1.arrived")
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"

tracer = trace.get_tracer("tests.integration.bus")


# --- helpers ------------------------------------------------------------------------------------------------------


def arrived(catalog: Catalog, batch_id: str, *, dataset: str = "bikes", **extensions: str) -> CloudEvent:
    """A valid dataset.v1.arrived event from the SDK, with optional extra extensions."""
    event = make_event(
        catalog[ARRIVED],
        {"dataset": dataset, "batch_id": batch_id, "records": [{"x": 1}]},
        source=source_of("aikube-sdk"),
        subject=f"dataset/{dataset}",
    )
    if not extensions:
        return event
    return CloudEvent({**event.get_attributes(), **extensions}, event.get_data())


def pull_until(bus: PubSubBus, subscription: str, count: int, timeout: float = WAIT_S) -> list[PulledMessage]:
    """Pull (and ack) until `count` messages arrived; fails after `timeout` seconds with what did arrive."""
    received: list[PulledMessage] = []
    deadline = time.monotonic() + timeout
    while len(received) < count and time.monotonic() < deadline:
        received += bus.pull(subscription, max_messages=count - len(received), timeout=1.0)
    assert len(received) == count, f"{subscription}: {len(received)} of {count} messages in {timeout}s: {received}"
    return received


class RecordingDispatcher(Dispatcher):
    """The real Dispatcher that also queues every Outcome, so tests wait on outcomes instead of sleeping."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes: queue.Queue[Outcome] = queue.Queue()

    def process(self, subscription: Subscription, data: bytes, attributes: Mapping[str, str], attempt: int) -> Outcome:
        outcome = super().process(subscription, data, attributes, attempt)
        self.outcomes.put(outcome)
        return outcome

    def next_outcomes(self, count: int, timeout: float = WAIT_S) -> list[Outcome]:
        deadline = time.monotonic() + timeout
        return [self.outcomes.get(timeout=max(0.0, deadline - time.monotonic())) for _ in range(count)]


@pytest.fixture
def start_service(
    pubsub_bus: PubSubBus, catalog: Catalog, fast_policy: DeliveryPolicy
) -> Iterator[Callable[..., tuple[Service, RecordingDispatcher]]]:
    """Start a Service (own bus, fresh MemoryIdempotency) on the test's project; every one is stopped at the end."""
    started: list[Service] = []

    def start(name: str, router: Router, *, max_messages: int = 4) -> tuple[Service, RecordingDispatcher]:
        bus = PubSubBus(pubsub_bus.project_id, catalog, policy=fast_policy)
        dispatcher = RecordingDispatcher(
            name,
            router,
            None,
            catalog=catalog,
            publisher=bus,
            idempotency=MemoryIdempotency(),
            max_delivery_attempts=fast_policy.max_delivery_attempts,
        )
        service = Service(dispatcher, bus, max_messages=max_messages)
        service.start()
        started.append(service)
        return service, dispatcher

    yield start
    for service in started:
        service.stop()  # idempotent


def recording_router(key: str, handled: queue.Queue[str]) -> Router:
    """A router whose only handler records the batch id of each event it handles."""
    router = Router()

    @router.handler(key)
    def record(data: dict[str, Any], ctx: EventContext, deps: Any) -> None:
        handled.put(data["batch_id"])

    return router


# --- a. codec round trips through the emulator ----------------------------------------------------------------------


def test_binary_mode_round_trip_keeps_attributes_trace_extensions_and_data(
    pubsub_bus: PubSubBus, catalog: Catalog
) -> None:
    """A binary-mode event comes back from the emulator with every attribute, traceparent/tracestate and data."""
    event = arrived(catalog, "b-1", traceparent=TRACEPARENT, tracestate="aikube=1,vendor=x")

    pubsub_bus.publish(event).result(timeout=WAIT_S)
    [message] = pull_until(pubsub_bus, INGESTOR_SUB, 1)

    assert message.attributes == dict(to_binary(event).attributes)
    assert message.attributes["ce-traceparent"] == TRACEPARENT
    assert message.attributes["ce-tracestate"] == "aikube=1,vendor=x"
    decoded = from_pubsub(message.data, message.attributes)
    assert decoded.get_attributes() == event.get_attributes()
    assert decoded.get_data() == event.get_data()


def test_structured_mode_round_trip_keeps_attributes_trace_extensions_and_data(
    pubsub_bus: PubSubBus, catalog: Catalog
) -> None:
    """A structured-mode event (whole event in the body) comes back from the emulator unchanged."""
    event = arrived(catalog, "s-1", traceparent=TRACEPARENT, tracestate="aikube=1")
    sent = to_structured(event, ordering_key=event.get_subject() or "")

    pubsub_bus.publish_message(catalog[ARRIVED].topic, sent).result(timeout=WAIT_S)
    [message] = pull_until(pubsub_bus, INGESTOR_SUB, 1)

    assert message.attributes == {"content-type": "application/cloudevents+json"}
    assert message.data == sent.data
    decoded = from_pubsub(message.data, message.attributes)
    assert decoded.get_attributes() == event.get_attributes()
    assert decoded.get_extension("traceparent") == TRACEPARENT
    assert decoded.get_data() == event.get_data()


def test_streaming_subscriber_receives_binary_event(pubsub_bus: PubSubBus, catalog: Catalog) -> None:
    """The bus's streaming pull (flow-controlled) delivers the same decodable event, delivery attempt 1."""
    event = arrived(catalog, "st-1", traceparent=TRACEPARENT)
    received: queue.Queue[tuple[CloudEvent, int]] = queue.Queue()

    def on_message(message: Any) -> None:
        received.put((from_pubsub(message.data, message.attributes), message.delivery_attempt))
        message.ack()

    pull = pubsub_bus.subscribe(INGESTOR_SUB, on_message)
    try:
        pubsub_bus.publish(event).result(timeout=WAIT_S)
        decoded, attempt = received.get(timeout=WAIT_S)
    finally:
        pull.cancel()
        pull.result(timeout=WAIT_S)
    assert decoded.get_attributes() == event.get_attributes()
    assert decoded.get_data() == event.get_data()
    assert attempt == 1


# --- b. handler errors: redelivery, then dead letter -------------------------------------------------------------


def test_failing_handler_is_retried_then_dead_lettered_with_attempt_and_error(
    pubsub_bus: PubSubBus, catalog: Catalog, fast_policy: DeliveryPolicy, start_service: Callable[..., Any]
) -> None:
    """A raising handler is redelivered N times; the N-th attempt lands on `<sub>.dead-letter` with the error."""
    attempts: list[int] = []
    router = Router()

    @router.handler(ARRIVED)
    def explode(data: dict[str, Any], ctx: EventContext, deps: Any) -> None:
        attempts.append(ctx.delivery_attempt)
        raise RuntimeError("warehouse unavailable")

    _, dispatcher = start_service("ingestor", router)
    event = arrived(catalog, "fail-1")
    pubsub_bus.publish(event).result(timeout=WAIT_S)

    n = fast_policy.max_delivery_attempts
    outcomes = dispatcher.next_outcomes(n)
    assert [o.status for o in outcomes] == ["failed"] * (n - 1) + ["dead_lettered"]
    assert attempts == list(range(1, n + 1))
    [dead] = pull_until(pubsub_bus, dead_letter_topic(INGESTOR_SUB), 1)
    assert dead.attributes[DL_ATTEMPT] == str(n)
    assert dead.attributes[DL_REASON] == f"handler failed after {n} attempts: RuntimeError: warehouse unavailable"
    assert dead.attributes[DL_SUBSCRIPTION] == INGESTOR_SUB
    assert from_pubsub(dead.data, dead.attributes).get_id() == event.get_id()  # the original message, intact


# --- c. poison messages: dead-lettered on first delivery, the good ones still flow ------------------------------


def _bad_json(catalog: Catalog) -> PubSubMessage:
    good = to_binary(arrived(catalog, "bad-json"))
    return PubSubMessage(b'{"dataset": "bikes", "batch_id":', good.attributes)


def _missing_id(catalog: Catalog) -> PubSubMessage:
    good = to_binary(arrived(catalog, "no-id"))
    return PubSubMessage(good.data, {k: v for k, v in good.attributes.items() if k != "ce-id"})


def _schema_invalid(catalog: Catalog) -> PubSubMessage:
    good = arrived(catalog, "invalid")
    return to_binary(CloudEvent(good.get_attributes(), {"dataset": "Bikes!", "batch_id": "invalid"}))


@pytest.mark.parametrize(
    ("make_bad", "reason"),
    [
        (_bad_json, "CodecError: body (content-type application/json): invalid JSON"),
        (_missing_id, "CodecError: missing required attribute ce-id"),
        (_schema_invalid, "SchemaViolation: dataset.v1.arrived data violates DatasetArrivedData.json"),
    ],
    ids=["bad-json", "missing-ce-id", "schema-invalid"],
)
def test_poison_message_is_dead_lettered_on_first_delivery_and_good_one_still_handled(
    pubsub_bus: PubSubBus,
    catalog: Catalog,
    start_service: Callable[..., Any],
    make_bad: Callable[[Catalog], PubSubMessage],
    reason: str,
) -> None:
    """An undecodable or schema-invalid message goes to the dead letter at attempt 1; the next good one is handled."""
    handled: queue.Queue[str] = queue.Queue()
    start_service("ingestor", recording_router(ARRIVED, handled))
    bad = make_bad(catalog)

    pubsub_bus.publish_message(catalog[ARRIVED].topic, bad).result(timeout=WAIT_S)
    pubsub_bus.publish(arrived(catalog, "good-1")).result(timeout=WAIT_S)

    assert handled.get(timeout=WAIT_S) == "good-1"
    [dead] = pull_until(pubsub_bus, dead_letter_topic(INGESTOR_SUB), 1)
    assert dead.attributes[DL_REASON].startswith(reason), dead.attributes[DL_REASON]
    assert dead.attributes[DL_ATTEMPT] == "1"
    assert dead.data == bad.data
    assert handled.empty()  # the poison message never reached the handler


# --- d. idempotency ----------------------------------------------------------------------------------------------


def test_duplicate_delivery_of_same_source_and_id_has_one_effect(
    pubsub_bus: PubSubBus, catalog: Catalog, start_service: Callable[..., Any]
) -> None:
    """The same event (source + id) published twice is handled once and acked as a duplicate the second time."""
    effects: Counter[str] = Counter()
    router = Router()

    @router.handler(ARRIVED)
    def count(data: dict[str, Any], ctx: EventContext, deps: Any) -> None:
        effects[ctx.id] += 1

    _, dispatcher = start_service("ingestor", router)
    event = arrived(catalog, "dup-1")
    pubsub_bus.publish_all([event, event])  # two Pub/Sub messages, one CloudEvent

    assert sorted(o.status for o in dispatcher.next_outcomes(2)) == ["duplicate", "handled"]
    assert effects == {event.get_id(): 1}


# --- e. graceful shutdown ----------------------------------------------------------------------------------------


def test_stop_finishes_in_flight_message_and_leaves_the_rest_for_the_next_service(
    pubsub_bus: PubSubBus, catalog: Catalog, fast_policy: DeliveryPolicy, start_service: Callable[..., Any]
) -> None:
    """Stop during a slow handler: it finishes and is acked, the rest go to a new Service; nothing lost or doubled."""
    published = [f"b-{i}" for i in range(6)]
    handled_by_first: list[str] = []
    in_handler, release = threading.Event(), threading.Event()
    slow = Router()

    @slow.handler(ARRIVED)
    def slow_handler(data: dict[str, Any], ctx: EventContext, deps: Any) -> None:
        in_handler.set()
        assert release.wait(WAIT_S)
        handled_by_first.append(data["batch_id"])

    first, _ = start_service("ingestor", slow, max_messages=1)
    # One subject, so one ordering key: the emulator pushes all six to the first service, which runs one and holds
    # the rest. EMULATOR BUG: for some keys (deterministic per key, e.g. dataset/bikes, dataset/bikeshare) it never
    # redelivers messages a closed stream held, nor later ones of that key; dataset/spine is a key it handles.
    pubsub_bus.publish_all(arrived(catalog, batch_id, dataset="spine") for batch_id in published)
    assert in_handler.wait(WAIT_S)

    stopping = threading.Thread(target=first.stop)
    stopping.start()
    stopping.join(timeout=1.0)
    assert stopping.is_alive(), "stop() returned while a handler was still running"
    release.set()
    stopping.join(timeout=WAIT_S)
    assert not stopping.is_alive()
    stopped_at = time.monotonic()
    assert handled_by_first == ["b-0"]

    handled_by_second: queue.Queue[tuple[str, int]] = queue.Queue()
    second = Router()

    @second.handler(ARRIVED)
    def record(data: dict[str, Any], ctx: EventContext, deps: Any) -> None:
        handled_by_second.put((data["batch_id"], ctx.delivery_attempt))

    start_service("ingestor", second)
    rest = [handled_by_second.get(timeout=WAIT_S) for _ in range(len(published) - 1)]

    assert [batch_id for batch_id, _ in rest] == published[1:]  # redelivered in order
    assert all(attempt > 1 for _, attempt in rest)  # they had been delivered to the first service, then handed back
    # Whatever the first service left unacked (b-0 too, had its ack been lost) is due again within the ack deadline
    # of its last lease; nothing more may arrive by then.
    with pytest.raises(queue.Empty):
        handled_by_second.get(timeout=max(0.0, stopped_at + fast_policy.ack_deadline_s + 2 - time.monotonic()))


# --- f. one trace across three services --------------------------------------------------------------------------


@pytest.fixture
def trace_dir(tmp_path: Path) -> Iterator[Path]:
    """File tracing for this process, switched off afterwards."""
    setup_tracing("spine", exporter="file", trace_dir=tmp_path)
    yield tmp_path
    shutdown_tracing()


def test_three_hop_chain_produces_one_trace(
    pubsub_bus: PubSubBus, catalog: Catalog, start_service: Callable[..., Any], trace_dir: Path
) -> None:
    """arrived → ingestor → ingested → feature-builder → built → drift-watcher → checked is one trace, chained."""
    ingestor, builder, watcher = Router(), Router(), Router()
    done = threading.Event()

    @ingestor.handler("dataset.v1.arrived")
    def ingest(data: dict[str, Any], ctx: EventContext, deps: Any) -> Emit:
        return Emit(
            "dataset.v1.ingested",
            {
                "dataset": data["dataset"],
                "batch_id": data["batch_id"],
                "rows_received": 1,
                "rows_accepted": 1,
                "rows_rejected": 0,
                "raw_uri": "memory://raw/bikes/t-1.parquet",
                "table": "raw_bikes",
            },
        )

    @builder.handler("dataset.v1.ingested")
    def build(data: dict[str, Any], ctx: EventContext, deps: Any) -> Emit:
        return Emit(
            "featureSet.v1.built",
            {
                "dataset": data["dataset"],
                "batch_id": data["batch_id"],
                "table": "features_bikes",
                "snapshot": "snap-1",
                "rows": 1,
                "feature_columns": ["x"],
            },
        )

    @watcher.handler("featureSet.v1.built")
    def check(data: dict[str, Any], ctx: EventContext, deps: Any) -> Emit:
        done.set()
        return Emit(
            "drift.v1.checked",
            {
                "model": "bikes-model",
                "dataset": data["dataset"],
                "batch_id": data["batch_id"],
                "status": "no_reference",
                "rows": 1,
                "drifted": False,
            },
        )

    services = [
        start_service("ingestor", ingestor)[0],
        start_service("feature-builder", builder)[0],
        start_service("drift-watcher", watcher)[0],
    ]
    with tracer.start_as_current_span("dataset.v1.arrived publish", kind=trace.SpanKind.PRODUCER) as root:
        pubsub_bus.publish(arrived(catalog, "t-1")).result(timeout=WAIT_S)
    trace_id = format(root.get_span_context().trace_id, "032x")

    assert done.wait(WAIT_S)
    [checked] = pull_until(pubsub_bus, subscription_name("retrain-scheduler", "aikube.drift.v1.checked"), 1)
    for service in services:
        service.stop()  # running handlers finish, so every process span has ended and been written

    spans = load_spans(trace_dir)
    assert {span.trace_id for span in spans} == {trace_id}
    by_name = {span.name: span for span in spans}
    chain = [
        "dataset.v1.arrived publish",
        "dataset.v1.arrived process",
        "dataset.v1.ingested process",
        "featureSet.v1.built process",
    ]
    assert sorted(by_name) == sorted(chain) and len(spans) == len(chain)
    assert by_name[chain[0]].parent_span_id is None
    for parent, child in itertools.pairwise(chain):
        assert by_name[child].parent_span_id == by_name[parent].span_id, f"{child} is not a child of {parent}"
    # the last event carries the trace on: its traceparent points at drift-watcher's process span
    last = context_from(from_pubsub(checked.data, checked.attributes).get_attributes())
    span_context = trace.get_current_span(last).get_span_context()
    assert format(span_context.trace_id, "032x") == trace_id
    assert format(span_context.span_id, "016x") == by_name[chain[-1]].span_id
