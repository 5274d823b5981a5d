"""Composition of a service process: settings, logging, tracing, bus, dispatcher, run."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from aikube.adapters import open_store
from aikube.bus import DeliveryPolicy, PubSubBus
from aikube.catalog import Catalog
from aikube.idempotency import ObjectStoreIdempotency
from aikube.runtime import Dispatcher, Router, Service
from aikube.settings import ConfigError, ServiceSettings, load_settings
from aikube.telemetry import setup_logging, setup_tracing, shutdown_tracing

S = TypeVar("S", bound=ServiceSettings)
log = logging.getLogger(__name__)


def build_service(name: str, router: Router, deps: Any, settings: ServiceSettings) -> Service:
    """Wire a service's router and dependencies onto Pub/Sub with the settings' delivery policy."""
    catalog = Catalog.load()
    bus = PubSubBus(
        settings.project_id, catalog, policy=DeliveryPolicy(max_delivery_attempts=settings.max_delivery_attempts)
    )
    dispatcher = Dispatcher(
        name,
        router,
        deps,
        catalog=catalog,
        publisher=bus,
        idempotency=ObjectStoreIdempotency(open_store(settings.store), name),
        max_delivery_attempts=settings.max_delivery_attempts,
    )
    return Service(dispatcher, bus, max_messages=settings.max_messages, health_port=settings.health_port)


def run_service(name: str, router: Router, make_deps: Callable[[S], Any], settings_cls: type[S]) -> None:
    """Entry point of a service process: exits 2 with a clear message on bad configuration."""
    try:
        settings = load_settings(settings_cls)
    except ConfigError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging(name, settings.log_level)
    setup_tracing(name, exporter=settings.trace_exporter, trace_dir=settings.trace_dir, otlp_endpoint=None)
    deps = make_deps(settings)
    try:
        build_service(name, router, deps, settings).run()
    finally:
        if close := getattr(deps, "close", None):
            close()  # resources the service owns, e.g. the deployer's local model servers
        shutdown_tracing()
