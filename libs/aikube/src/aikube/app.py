"""Composition of a service process: settings, logging, tracing, bus, dispatcher, run."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from aikube.adapters import open_store
from aikube.bus import DeliveryPolicy, PubSubBus
from aikube.catalog import Catalog
from aikube.idempotency import ObjectStoreIdempotency
from aikube.runtime import Dispatcher, Router, Service
from aikube.settings import ENV_PREFIX, ConfigError, ServiceSettings, load_settings
from aikube.storage import ObjectStore
from aikube.telemetry import setup_logging, setup_tracing, shutdown_tracing

S = TypeVar("S", bound=ServiceSettings)
T = TypeVar("T")
log = logging.getLogger(__name__)

EXIT_CONFIG = 2  # the settings are wrong: fix the environment variables
EXIT_FAILED = 1  # the service could not start or stopped on an error (Pub/Sub, a folder it may not use, ...)


class StartupError(RuntimeError):
    """The settings are valid but the service cannot use what they name; the message names the variable."""


def build_service(
    name: str, router: Router, deps: Any, settings: ServiceSettings, *, store: ObjectStore | None = None
) -> Service:
    """Wire a service's router and dependencies onto Pub/Sub with the settings' delivery policy.

    Args:
        store: the store of the handled-event markers; default: opened from the settings.
    """
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
        idempotency=ObjectStoreIdempotency(store or open_store(settings.store), name),
        max_delivery_attempts=settings.max_delivery_attempts,
    )
    return Service(dispatcher, bus, max_messages=settings.max_messages, health_port=settings.health_port)


def run_service(name: str, router: Router, make_deps: Callable[[S], Any], settings_cls: type[S]) -> None:
    """Entry point of a service process: any startup problem is one line on stderr, never a traceback.

    Exits 2 on bad settings (each variable named), 1 when the service cannot start or its subscriptions fail
    (Pub/Sub unreachable or not provisioned, a folder it may not use); with AIKUBE_LOG_LEVEL=DEBUG the
    traceback is logged as well.
    """
    try:
        settings = load_settings(settings_cls)
    except ConfigError as exc:
        _exit(f"{name}: {exc}", EXIT_CONFIG)
    deps = None
    try:
        setup_logging(name, settings.log_level)
        _using(
            "TRACE_DIR",
            settings.trace_dir,
            lambda: setup_tracing(name, exporter=settings.trace_exporter, trace_dir=settings.trace_dir),
        )
        store = _using("STORE", settings.store, lambda: open_store(settings.store))
        deps = make_deps(settings)
        service = _using(
            "HEALTH_PORT", settings.health_port, lambda: build_service(name, router, deps, settings, store=store)
        )
        service.bus.check_subscriptions(sub.name for sub in service.dispatcher.subscriptions)  # before ready
        service.run()
    except ConfigError as exc:  # a setting only make_deps checks
        _exit(f"{name}: {exc}", EXIT_CONFIG)
    except Exception as exc:  # the operator needs the cause in one line, not a stack; DEBUG logs the stack too
        log.debug("service failed", exc_info=True)
        _exit(f"{name}: {_describe(exc)}", EXIT_FAILED)
    finally:
        if close := getattr(deps, "close", None):
            close()  # resources the service owns, e.g. the deployer's local model servers
        shutdown_tracing()


def _using(variable: str, value: object, open_: Callable[[], T]) -> T:
    """Open what a setting names; a folder that cannot be created or written names that setting."""
    try:
        return open_()
    except OSError as exc:
        raise StartupError(f"cannot use {ENV_PREFIX}{variable}={value}: {exc}") from exc


def _describe(exc: BaseException) -> str:
    message = str(exc).strip()
    if isinstance(exc, RuntimeError) and message:
        return message  # ours (StartupError, BusError, a pull stream that ended) say what failed
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _exit(message: str, code: int) -> NoReturn:
    print(message, file=sys.stderr)
    raise SystemExit(code) from None
