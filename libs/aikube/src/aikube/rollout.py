"""Serving backends: bring a model version up, check it is healthy, retire the version it replaced.

Local: one model-server process per version (`python -m aikube.serving`) on a free port. The switch is atomic
because clients resolve the endpoint from the registry's champion pointer, which changes only after the new
server is healthy; a server that fails its health check is stopped and the champion keeps serving (rollback).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from typing import Protocol

log = logging.getLogger(__name__)


class RolloutFailed(RuntimeError):
    """The new version did not come up healthy; nothing was switched.

    A backend that knows what serves after its rollback says so: `serving_version` (None when nothing, or when
    unknown) and `serving_revision` (the Kubernetes Deployment revision, where there is one).
    """

    def __init__(self, message: str, *, serving_version: str | None = None, serving_revision: str | None = None):
        super().__init__(message)
        self.serving_version = serving_version
        self.serving_revision = serving_revision


class ServingBackend(Protocol):
    def deploy(self, model: str, version: str, artifact_uri: str) -> str:
        """Serve a version and return its endpoint once healthy (idempotent per version).

        Raises:
            RolloutFailed: the version is not healthy; the previous one still serves.
        """
        ...

    def retire(self, model: str, keep: str) -> None:
        """Stop every served version of the model but `keep`."""
        ...

    def close(self) -> None: ...


class LocalServing:
    """Model-server subprocesses, owned by this process and stopped with it."""

    def __init__(self, *, startup_timeout_s: float = 60.0, health_path: str = "/healthz") -> None:
        self.startup_timeout_s = startup_timeout_s
        self.health_path = health_path
        self._servers: dict[tuple[str, str], tuple[subprocess.Popen[str], str]] = {}
        self._lock = threading.Lock()

    def deploy(self, model: str, version: str, artifact_uri: str) -> str:
        with self._lock:
            if (model, version) in self._servers:
                process, endpoint = self._servers[(model, version)]
                if process.poll() is None and self._healthy(endpoint):
                    return endpoint
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "aikube.serving",
                    "--artifact-uri",
                    artifact_uri,
                    "--version",
                    version,
                    "--port",
                    "0",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:
                endpoint = self._await_ready(process)
                if not self._healthy(endpoint):
                    raise RolloutFailed(f"{model} {version}: health check {endpoint}{self.health_path} failed")
            except RolloutFailed:
                _stop(process)
                raise
            self._servers[(model, version)] = (process, endpoint)
            log.info("serving", extra={"model": model, "version": version, "endpoint": endpoint})
            return endpoint

    def _await_ready(self, process: subprocess.Popen[str]) -> str:
        """Wait for the server's ready line; keep draining its output into the log so its pipe never fills."""
        ready: dict[str, object] = {}
        started = threading.Event()
        recent: deque[str] = deque(maxlen=20)

        def read_output() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                if not started.is_set() and line.startswith("{"):
                    ready.update(json.loads(line))
                    started.set()
                elif line.strip():
                    recent.append(line.strip())
                    log.info("model server: %s", line.strip())
            process.stdout.close()  # EOF: the process has exited
            started.set()

        threading.Thread(target=read_output, daemon=True).start()
        started.wait(self.startup_timeout_s)
        if ready.get("status") != "ready":
            _stop(process)
            detail = recent[-1] if recent else f"exit code {process.poll()}"
            raise RolloutFailed(f"model server did not start in {self.startup_timeout_s:.0f}s: {detail}")
        return f"http://{ready['host']}:{ready['port']}"

    def _healthy(self, endpoint: str) -> bool:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(endpoint + self.health_path, timeout=2) as response:
                    return bool(response.status == 200)
            except OSError:
                time.sleep(0.1)
        return False

    def retire(self, model: str, keep: str) -> None:
        with self._lock:
            for (served_model, version), (process, _) in list(self._servers.items()):
                if served_model == model and version != keep:
                    _stop(process)
                    del self._servers[(served_model, version)]

    def close(self) -> None:
        with self._lock:
            for process, _ in self._servers.values():
                _stop(process)
            self._servers.clear()


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
