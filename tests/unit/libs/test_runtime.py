"""The Dispatcher on the in-memory bus: routing, dead-lettering, retries, idempotency, emitted events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent

from aikube.catalog import Catalog
from aikube.codec import PubSubMessage, encode
from aikube.envelope import Emit, EventContext, make_event
from aikube.errors import Rejected
from aikube.runtime import DL_ATTEMPT, DL_REASON, Action, Router
from aikube.testing import MemoryBus

DEAD_LETTER = "ingestor.aikube.dataset.v1.arrived.dead-letter"
CATALOG = Catalog.load()


def example(key: str) -> dict[str, Any]:
    return CATALOG[key].example()


@pytest.fixture
def bus(catalog: Catalog) -> MemoryBus:
    return MemoryBus(catalog)


def arrived(catalog: Catalog, event_id: str = "e-1") -> CloudEvent:
    return make_event(
        catalog["dataset.v1.arrived"],
        example("dataset.v1.arrived"),
        source="/tests",
        subject="dataset/bikeshare",
        event_id=event_id,
    )


def echo_router(calls: list[str]) -> Router:
    router = Router()

    @router.handler("dataset.v1.arrived")
    def on_arrived(data: dict[str, Any], ctx: EventContext, deps: Any) -> Emit:
        calls.append(ctx.id)
        return Emit("dataset.v1.ingested", example("dataset.v1.ingested"))

    return router


def test_handled_event_is_acked_and_its_emit_published(bus: MemoryBus, catalog: Catalog) -> None:
    """A handled event is acked and the returned Emit is published as a CloudEvent of the catalog type."""
    outcome = bus.deliver(bus.dispatcher("ingestor", echo_router([]), None), arrived(catalog))
    assert outcome.action is Action.ACK and outcome.status == "handled"
    (emitted,) = bus.emitted("dataset.v1.ingested")
    assert emitted.get_type() == "dev.aikube.dataset.v1.ingested"
    assert emitted.get_source() == "/aikube/ingestor"
    assert emitted.get_subject() == "dataset/bikeshare"


def test_emitted_ids_are_derived_from_the_cause(catalog: Catalog) -> None:
    """Handling the same event in two fresh dispatchers emits the same event id (a retry re-emits, not duplicates)."""
    ids = []
    for _ in range(2):
        bus = MemoryBus(catalog)
        bus.deliver(bus.dispatcher("ingestor", echo_router([]), None), arrived(catalog))
        ids.append(bus.emitted("dataset.v1.ingested")[0].get_id())
    assert ids[0] == ids[1]


def test_duplicate_delivery_is_acked_without_a_second_effect(bus: MemoryBus, catalog: Catalog) -> None:
    """The same source+id delivered twice runs the handler once."""
    calls: list[str] = []
    dispatcher = bus.dispatcher("ingestor", echo_router(calls), None)
    bus.deliver(dispatcher, arrived(catalog))
    second = bus.deliver(dispatcher, arrived(catalog))
    assert second.status == "duplicate" and calls == ["e-1"]
    assert len(bus.emitted("dataset.v1.ingested")) == 1


def test_undecodable_message_is_dead_lettered_with_the_reason(bus: MemoryBus, catalog: Catalog) -> None:
    """A message without ce-id goes to the dead-letter topic at once, naming the missing attribute."""
    good = encode(arrived(catalog))
    broken = PubSubMessage(good.data, {k: v for k, v in good.attributes.items() if k != "ce-id"})
    outcome = bus.deliver(bus.dispatcher("ingestor", echo_router([]), None), broken)
    assert outcome.status == "dead_lettered" and outcome.action is Action.ACK
    (letter,) = bus.on_topic(DEAD_LETTER)
    assert "ce-id" in letter.attributes[DL_REASON]
    assert letter.data == good.data


def test_schema_invalid_data_is_dead_lettered_naming_the_field(bus: MemoryBus, catalog: Catalog) -> None:
    """Data that violates the schema is dead-lettered on its first delivery with the failing field."""
    event = arrived(catalog)
    message = encode(event)
    bad = PubSubMessage(json.dumps({"dataset": "bikeshare"}).encode(), message.attributes)
    calls: list[str] = []
    outcome = bus.deliver(bus.dispatcher("ingestor", echo_router(calls), None), bad)
    assert outcome.status == "dead_lettered" and calls == []
    assert "batch_id" in bus.on_topic(DEAD_LETTER)[0].attributes[DL_REASON]


def test_foreign_type_on_a_topic_is_dead_lettered(bus: MemoryBus, catalog: Catalog) -> None:
    """An event whose type belongs to another topic is not handled (the emulator ignores filters) but kept."""
    dispatcher = bus.dispatcher("ingestor", echo_router([]), None)
    foreign = make_event(catalog["dataset.v1.ingested"], example("dataset.v1.ingested"), source="/t", subject="s")
    outcome = dispatcher.process(dispatcher.subscriptions[0], encode(foreign).data, encode(foreign).attributes, 1)
    assert outcome.status == "dead_lettered"
    assert "does not belong" in bus.on_topic(DEAD_LETTER)[0].attributes[DL_REASON]


def failing_router() -> Router:
    router = Router()

    @router.handler("dataset.v1.arrived")
    def on_arrived(data: dict[str, Any], ctx: EventContext, deps: Any) -> None:
        raise RuntimeError("warehouse unavailable")

    return router


def test_handler_error_nacks_before_the_last_attempt(bus: MemoryBus, catalog: Catalog) -> None:
    """A failing handler is nacked for redelivery while attempts remain."""
    outcome = bus.deliver(bus.dispatcher("ingestor", failing_router(), None), arrived(catalog), attempt=1)
    assert outcome.action is Action.NACK and "warehouse unavailable" in outcome.reason
    assert bus.on_topic(DEAD_LETTER) == []


def test_handler_error_on_the_last_attempt_is_dead_lettered(bus: MemoryBus, catalog: Catalog) -> None:
    """On the last allowed attempt the message is dead-lettered with the error and the attempt count."""
    dispatcher = bus.dispatcher("ingestor", failing_router(), None, max_delivery_attempts=3)
    outcome = bus.deliver(dispatcher, arrived(catalog), attempt=3)
    assert outcome.status == "dead_lettered"
    (letter,) = bus.on_topic(DEAD_LETTER)
    assert letter.attributes[DL_ATTEMPT] == "3"
    assert "warehouse unavailable" in letter.attributes[DL_REASON]


def test_rejected_input_is_dead_lettered_without_retries(bus: MemoryBus, catalog: Catalog) -> None:
    """A handler's Rejected (input that can never succeed) dead-letters on the first attempt."""
    router = Router()

    @router.handler("dataset.v1.arrived")
    def on_arrived(data: dict[str, Any], ctx: EventContext, deps: Any) -> None:
        raise Rejected("dataset 'nope' is not registered")

    outcome = bus.deliver(bus.dispatcher("ingestor", router, None), arrived(catalog), attempt=1)
    assert outcome.status == "dead_lettered"
    assert "not registered" in bus.on_topic(DEAD_LETTER)[0].attributes[DL_REASON]


def test_a_failed_event_is_not_marked_handled(bus: MemoryBus, catalog: Catalog) -> None:
    """After a failure the redelivery runs the handler again (no idempotency marker for failures)."""
    attempts: list[int] = []
    router = Router()

    @router.handler("dataset.v1.arrived")
    def on_arrived(data: dict[str, Any], ctx: EventContext, deps: Any) -> None:
        attempts.append(ctx.delivery_attempt)
        if ctx.delivery_attempt == 1:
            raise RuntimeError("transient")

    dispatcher = bus.dispatcher("ingestor", router, None)
    bus.deliver(dispatcher, arrived(catalog), attempt=1)
    assert bus.deliver(dispatcher, arrived(catalog), attempt=2).status == "handled"
    assert attempts == [1, 2]


def test_invalid_emitted_data_fails_the_delivery(bus: MemoryBus, catalog: Catalog) -> None:
    """A handler emitting schema-invalid data is a failure (retried), never a published bad event."""
    router = Router()

    @router.handler("dataset.v1.arrived")
    def on_arrived(data: dict[str, Any], ctx: EventContext, deps: Any) -> Emit:
        return Emit("dataset.v1.ingested", {"dataset": "bikeshare"})

    outcome = bus.deliver(bus.dispatcher("ingestor", router, None), arrived(catalog))
    assert outcome.action is Action.NACK
    assert bus.emitted("dataset.v1.ingested") == []


def test_a_handler_for_a_type_the_catalog_does_not_route_is_refused(bus: MemoryBus) -> None:
    """Registering a handler for an event the service does not consume fails at start-up."""
    with pytest.raises(ValueError, match="not list it as a consumer"):
        bus.dispatcher("deployer", echo_router([]), None)
