"""Publish→handled throughput on the Pub/Sub emulator: the plain google-cloud-pubsub client against AIkube's runtime.

Both paths run in the same process against the same emulator (started here, stopped at the end), on the catalog's
topology for dataset.v1.arrived (ordered subscription with dead-letter and retry policy), with the same messages
(small valid events, spread over --keys ordering keys), the same publisher batch settings and the same client-side
flow control (--max-messages, default 4 = the services' default `AIKUBE_MAX_MESSAGES`).

  plain   PublisherClient.publish of the pre-encoded binary-mode messages; streaming pull whose callback acks.
  aikube  PubSubBus.publish(event) (encoding included); Service + Dispatcher with a no-op handler: decode, catalog
          lookup, schema validation, idempotency check/mark, consumer span, ack. Idempotency is MemoryIdempotency,
          so the object store is NOT measured; tracing is set up with exporter "none" (spans are created, not
          exported); logging stays at WARNING (a service at INFO also writes one JSON line per event).

Each round uses a fresh project per path; the emulator is warmed up first. Reported: median over rounds.

Usage:
    .venv/bin/python benchmarks/bus_throughput.py [--messages 5000] [--rounds 3] [--max-messages 4,100]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from aikube.bus import DeliveryPolicy, PubSubBus, Subscription
from aikube.catalog import Catalog
from aikube.codec import encode
from aikube.emulator import PubSubEmulator
from aikube.envelope import derived_id, make_event, source_of
from aikube.idempotency import MemoryIdempotency
from aikube.runtime import Dispatcher, Outcome, Router, Service
from aikube.telemetry import setup_tracing, shutdown_tracing

KEY = "dataset.v1.arrived"
CONSUMER = "ingestor"


@dataclass(frozen=True)
class Result:
    path: str
    max_messages: int
    publish_s: float  # first publish call → every publish accepted
    total_s: float  # first publish call → last message handled/acked
    messages: int
    redelivered: int  # deliveries beyond one per message (should be 0)

    @property
    def rate(self) -> float:
        return self.messages / self.total_s


class Countdown:
    """Counts distinct message ids; `done` is set when every expected one was seen."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen: set[str] = set()
        self.deliveries = 0
        self.done = threading.Event()
        self._lock = threading.Lock()

    def hit(self, message_id: str) -> None:
        with self._lock:
            self.deliveries += 1
            self.seen.add(message_id)
            if len(self.seen) >= self.expected:
                self.done.set()

    def wait(self, timeout: float, path: str) -> None:
        if not self.done.wait(timeout):
            raise TimeoutError(f"{path}: {len(self.seen)} of {self.expected} handled after {timeout:.0f} s")


def events(catalog: Catalog, count: int, keys: int, run: str) -> list[CloudEvent]:
    """Small valid dataset.v1.arrived events (one inline record), subjects spread over `keys` datasets."""
    return [
        make_event(
            catalog[KEY],
            {"dataset": f"ds{i % keys:03d}", "batch_id": f"b-{i}", "records": [{"x": i}]},
            source=source_of("aikube-sdk"),
            subject=f"dataset/ds{i % keys:03d}",
            event_id=derived_id("bench", run, str(i)),
        )
        for i in range(count)
    ]


def provisioned_bus(catalog: Catalog, policy: DeliveryPolicy) -> PubSubBus:
    """A bus on a fresh project of the emulator with the catalog topology for the consumer."""
    bus = PubSubBus(f"bench-{uuid.uuid4().hex[:10]}", catalog, policy=policy)
    bus.provision([CONSUMER])
    return bus


def run_plain(
    catalog: Catalog, policy: DeliveryPolicy, batch: list[CloudEvent], max_messages: int, timeout: float
) -> Result:
    """The plain client: publish pre-encoded messages, streaming pull that acks."""
    from google.cloud import pubsub_v1

    admin = provisioned_bus(catalog, policy)  # topology only; its clients are not used for the measurement
    spec = catalog[KEY]
    messages = [encode(event, ordering_key=event.get_subject() or "") for event in batch]
    publisher = pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_messages=100, max_latency=0.01),
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True),
    )
    subscriber = pubsub_v1.SubscriberClient()
    countdown = Countdown(len(messages))

    def on_message(message: Any) -> None:
        message.ack()
        countdown.hit(message.attributes["ce-id"])

    pull = subscriber.subscribe(
        admin.subscription_path(Subscription(CONSUMER, spec).name),
        on_message,
        flow_control=pubsub_v1.types.FlowControl(max_messages=max_messages),
    )
    topic = admin.topic_path(spec.topic)
    try:
        start = time.perf_counter()
        futures = [
            publisher.publish(topic, m.data, ordering_key=m.ordering_key, **dict(m.attributes)) for m in messages
        ]
        for future in futures:
            future.result(timeout=timeout)
        published = time.perf_counter()
        countdown.wait(timeout, "plain")
        end = time.perf_counter()
    finally:
        pull.cancel()
        pull.result(timeout=60)
        subscriber.close()
        publisher.stop()
        admin.close()
    return Result(
        "plain client",
        max_messages,
        published - start,
        end - start,
        len(messages),
        countdown.deliveries - len(messages),
    )


class CountingDispatcher(Dispatcher):
    """The real Dispatcher; counts each processed delivery once it has been handled."""

    countdown: Countdown

    def process(self, subscription: Subscription, data: bytes, attributes: Mapping[str, str], attempt: int) -> Outcome:
        outcome = super().process(subscription, data, attributes, attempt)
        if outcome.status not in ("handled", "duplicate"):
            raise RuntimeError(f"benchmark event not handled: {outcome}")
        self.countdown.hit(attributes["ce-id"])
        return outcome


def run_aikube(
    catalog: Catalog, policy: DeliveryPolicy, batch: list[CloudEvent], max_messages: int, timeout: float
) -> Result:
    """AIkube: PubSubBus.publish, Service + Dispatcher with a no-op handler and in-memory idempotency."""
    publisher_bus = provisioned_bus(catalog, policy)
    router = Router()

    @router.handler(KEY)
    def no_op(data: dict[str, Any], ctx: Any, deps: Any) -> None:
        return None

    service_bus = PubSubBus(publisher_bus.project_id, catalog, policy=policy)
    dispatcher = CountingDispatcher(
        CONSUMER,
        router,
        None,
        catalog=catalog,
        publisher=service_bus,
        idempotency=MemoryIdempotency(),
        max_delivery_attempts=policy.max_delivery_attempts,
    )
    dispatcher.countdown = countdown = Countdown(len(batch))
    service = Service(dispatcher, service_bus, max_messages=max_messages)
    service.start()
    try:
        start = time.perf_counter()
        futures = [publisher_bus.publish(event) for event in batch]
        for future in futures:
            future.result(timeout=timeout)
        published = time.perf_counter()
        countdown.wait(timeout, "aikube")
        end = time.perf_counter()
    finally:
        service.stop()
        publisher_bus.close()
    return Result(
        "aikube runtime", max_messages, published - start, end - start, len(batch), countdown.deliveries - len(batch)
    )


def median_of(results: list[Result]) -> Result:
    return sorted(results, key=lambda r: r.total_s)[len(results) // 2]


def table(rows: list[tuple[Result, list[Result]]], ratios: dict[int, float]) -> str:
    header = (
        f"{'path':<15} {'in flight':>9} {'messages':>8} {'publish msg/s':>13} {'end-to-end msg/s':>16}  rounds (msg/s)"
    )
    lines = [header, "-" * len(header)]
    for median, runs in rows:
        each = ", ".join(f"{r.rate:,.0f}" for r in runs)
        lines.append(
            f"{median.path:<15} {median.max_messages:>9} {median.messages:>8} "
            f"{median.messages / median.publish_s:>13,.0f} {median.rate:>16,.0f}  {each}"
        )
    lines.append("")
    lines += [f"aikube / plain, end to end, {m} in flight: {ratio:.2f}" for m, ratio in ratios.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000, help="events per round and path (default 5000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per path; the median is reported (default 3)")
    parser.add_argument(
        "--max-messages", default="4,100", help="comma-separated client flow-control limits to compare (default 4,100)"
    )
    parser.add_argument("--keys", type=int, default=64, help="distinct subjects = ordering keys (default 64)")
    parser.add_argument("--warmup", type=int, default=1000, help="messages through each path first (default 1000)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one round")
    args = parser.parse_args(argv)
    limits = [int(value) for value in args.max_messages.split(",")]

    logging.basicConfig(level=logging.WARNING)
    catalog = Catalog.load()
    # Retry settings do not matter here (nothing fails); the ack deadline is the services' default.
    policy = DeliveryPolicy()
    emulator = PubSubEmulator()
    emulator.start()
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    setup_tracing("bench", exporter="none")
    try:
        print(
            f"emulator {emulator.host} (pid {emulator.pid}); python {platform.python_version()}; "
            f"{os.cpu_count()} CPUs; {args.messages} messages x {args.rounds} rounds",
            file=sys.stderr,
        )
        paths: list[tuple[str, Callable[..., Result]]] = [("plain", run_plain), ("aikube", run_aikube)]
        for _, run in paths:  # warm up the emulator's JVM and both client paths
            run(catalog, policy, events(catalog, args.warmup, args.keys, "warmup"), max(limits), args.timeout)
        rows: list[tuple[Result, list[Result]]] = []
        ratios: dict[int, float] = {}
        for limit in limits:
            runs: dict[str, list[Result]] = {name: [] for name, _ in paths}
            for round_ in range(args.rounds):
                for name, run in paths:  # interleaved, so drift in the emulator hits both paths alike
                    batch = events(catalog, args.messages, args.keys, f"{name}-{limit}-{round_}")
                    result = run(catalog, policy, batch, limit, args.timeout)
                    print(
                        f"  {name:<6} in flight {limit:>3} round {round_ + 1}: {result.rate:,.0f} msg/s"
                        f" (redelivered {result.redelivered})",
                        file=sys.stderr,
                    )
                    runs[name].append(result)
            medians = {name: median_of(results) for name, results in runs.items()}
            rows += [(medians[name], runs[name]) for name, _ in paths]
            ratios[limit] = medians["aikube"].rate / medians["plain"].rate
        print(table(rows, ratios))
    finally:
        shutdown_tracing()
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
