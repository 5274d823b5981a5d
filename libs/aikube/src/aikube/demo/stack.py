"""The local stack of the demo: the Pub/Sub emulator, the topology, the six service processes, and their cleanup."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

from aikube.bus import PubSubBus
from aikube.catalog import Catalog
from aikube.emulator import BigQueryEmulator, FakeGcsServer, LocalServer, PubSubEmulator, answers, free_port

# service id -> module of its entry point (the same module the container image runs)
SERVICES = {
    "ingestor": "ingestor.main",
    "feature-builder": "feature_builder.main",
    "drift-watcher": "drift_watcher.main",
    "retrain-scheduler": "retrain_scheduler.main",
    "trainer-dispatcher": "trainer_dispatcher.main",
    "deployer": "deployer.main",
}


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: the demo stops everything it started, exactly as on Ctrl-C."""


@contextmanager
def _sigterm_handled_by(handler: Callable[[int, FrameType | None], Any] | int) -> Iterator[None]:
    """Install a SIGTERM handler for the block, then put the previous one back (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # Python runs signal handlers in the main thread only; there the default stays
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        # None: a handler installed from outside Python, which cannot be reinstalled; the default is the safe bet
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"received signal {signal.Signals(signum).name}")


def sigterm_as_interrupt() -> AbstractContextManager[None]:
    """While the block runs, SIGTERM raises Terminated (a KeyboardInterrupt) in the main thread.

    `kill <pid>` (a supervisor, a CI timeout) then unwinds through the same `with Stack(...)` cleanup as Ctrl-C,
    instead of ending this process and leaving the emulator and the services running.
    """
    return _sigterm_handled_by(_raise_terminated)


@dataclass
class Workspace:
    """Where one run keeps its state: object store, warehouse, traces and service logs."""

    root: Path

    @property
    def store(self) -> Path:
        return self.root / "state" / "objects"

    @property
    def warehouse(self) -> Path:
        return self.root / "state" / "warehouse"

    @property
    def traces(self) -> Path:
        return self.root / "traces"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def create(self) -> Workspace:
        for folder in (self.store, self.warehouse, self.traces, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        return self


BACKENDS = ("local", "gcp-emulators")
DEMO_BUCKET = "aikube-demo"
DEMO_DATASET = "aikube_demo"


@dataclass
class Stack:
    """Starts everything in order and stops everything it started, on success, failure or Ctrl-C.

    Backends: `local` keeps objects in a folder and the warehouse in embedded DuckDB; `gcp-emulators` uses the
    Cloud Storage and BigQuery stand-ins through the same clients as on Google Cloud. Pub/Sub is the emulator in both.
    """

    workspace: Workspace
    catalog: Catalog
    emulator_host: str | None = None  # use a running Pub/Sub emulator instead of starting one
    backend: str = "local"
    project_id: str = field(default_factory=lambda: f"aikube-demo-{secrets.token_hex(3)}")
    bus: PubSubBus | None = None
    store_uri: str = ""
    warehouse_uri: str = ""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    health_ports: dict[str, int] = field(default_factory=dict)
    mask_salt: str = field(default_factory=lambda: secrets.token_hex(16))
    _servers: list[LocalServer] = field(default_factory=list)
    _saved_env: dict[str, str | None] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def start(self, services: dict[str, str] = SERVICES, timeout_s: float = 90.0) -> Stack:
        """Stand-ins, topics and subscriptions from the catalog, then the services; returns once all are ready."""
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}: choose one of {', '.join(BACKENDS)}")
        if self.emulator_host is None:
            self.emulator_host = self._serve(PubSubEmulator()).env["PUBSUB_EMULATOR_HOST"]
        self._set_env({"PUBSUB_EMULATOR_HOST": self.emulator_host})  # this process's clients too
        if self.backend == "local":
            self.store_uri = self.workspace.store.resolve().as_uri()
            self.warehouse_uri = "duckdb://" + str(self.workspace.warehouse.resolve())
        else:
            self._start_gcp_stand_ins()
        self.bus = PubSubBus(self.project_id, self.catalog)
        self.bus.provision()
        for service, module in services.items():
            self._spawn(service, module)
        self._await_ready(timeout_s)
        return self

    def _serve(self, server: LocalServer) -> LocalServer:
        self._servers.append(server)
        server.start()
        self._set_env(server.env)
        return server

    def _set_env(self, values: dict[str, str]) -> None:
        """Point this process's clients at the stand-ins; stop() restores what was there."""
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _start_gcp_stand_ins(self) -> None:
        """Cloud Storage and BigQuery stand-ins with the bucket and dataset Terraform would create."""
        from google.cloud import storage

        from aikube.bigquery import bigquery_client

        self._serve(FakeGcsServer())
        self._serve(BigQueryEmulator(self.project_id, self.workspace.root))
        storage.Client(project=self.project_id).create_bucket(DEMO_BUCKET)
        bigquery_client(self.project_id).create_dataset(DEMO_DATASET)
        self.store_uri = f"gs://{DEMO_BUCKET}/{self.project_id}"
        self.warehouse_uri = f"bigquery://{self.project_id}/{DEMO_DATASET}"

    def env(self, service: str) -> dict[str, str]:
        """The environment of a service process: what a Kubernetes Deployment sets, pointed at local parts."""
        port = self.health_ports.setdefault(service, free_port())
        stand_ins = {name: value for server in self._servers for name, value in server.env.items()}
        return {
            **os.environ,
            **stand_ins,
            "PUBSUB_EMULATOR_HOST": str(self.emulator_host),
            "AIKUBE_PROJECT_ID": self.project_id,
            "AIKUBE_STORE": self.store_uri,
            "AIKUBE_WAREHOUSE": self.warehouse_uri,
            "AIKUBE_TRACE_EXPORTER": "file",
            "AIKUBE_TRACE_DIR": str(self.workspace.traces.resolve()),
            "AIKUBE_HEALTH_PORT": str(port),
            "AIKUBE_MASK_SALT": self.mask_salt,
            "AIKUBE_EVENTS_DIR": str(self.catalog.events_dir),
            "PYTHONUNBUFFERED": "1",
        }

    def _spawn(self, service: str, module: str) -> None:
        log = (self.workspace.logs / f"{service}.log").open("ab")
        self._logs.append(log)
        self.processes[service] = subprocess.Popen(
            [sys.executable, "-m", module], env=self.env(service), stdout=log, stderr=subprocess.STDOUT
        )

    def _await_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        waiting = set(self.processes)
        while waiting and time.monotonic() < deadline:
            for service in sorted(waiting):
                self.check_alive(service)
                if answers(f"http://127.0.0.1:{self.health_ports[service]}/readyz"):
                    waiting.discard(service)
            time.sleep(0.2)
        if waiting:
            raise RuntimeError(
                f"services not ready after {timeout_s:.0f}s: {sorted(waiting)} (see {self.workspace.logs})"
            )

    def check_alive(self, service: str | None = None) -> None:
        """Raise if a service process has exited, with the end of its log."""
        for name in [service] if service else list(self.processes):
            code = self.processes[name].poll()
            if code is not None:
                tail = (self.workspace.logs / f"{name}.log").read_text(errors="replace").splitlines()[-5:]
                raise RuntimeError(f"{name} exited with code {code}:\n  " + "\n  ".join(tail))

    def stop(self) -> None:
        """SIGTERM every service (they finish in-flight work), then the stand-ins.

        A SIGTERM to this process meanwhile is ignored: stopping is what it asks for, and raising half-way would
        leave the rest running.
        """
        with _sigterm_handled_by(signal.SIG_IGN):
            self._stop()

    def _stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self._logs:
            log.close()
        if self.bus is not None:
            self.bus.close()
        for server in reversed(self._servers):
            server.stop()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
