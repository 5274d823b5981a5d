"""Start and stop the official Google Cloud Pub/Sub emulator as a local process.

Example:
    >>> with PubSubEmulator() as emulator:          # doctest: +SKIP
    ...     os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
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


class EmulatorNotInstalled(RuntimeError):
    """The Pub/Sub emulator launcher cannot be found on this machine."""


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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PubSubEmulator:
    """One emulator process on a free port; stopped by its PID."""

    def __init__(self, port: int | None = None, startup_timeout: float = 30.0) -> None:
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()

    def start(self) -> PubSubEmulator:
        """Launch the emulator and wait until it answers.

        Raises:
            EmulatorNotInstalled: no launcher.
            RuntimeError: it exited or did not answer in time (with its log).
        """
        launcher = find_launcher()
        self._process = subprocess.Popen(
            [str(launcher), "--host=127.0.0.1", f"--port={self.port}"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C on the terminal must not kill it before we stop it cleanly
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Pub/Sub emulator exited with {self._process.returncode}: {self._output()}")
            if self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Pub/Sub emulator did not answer on {self.host} in {self.startup_timeout}s")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}/", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def _output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def stop(self) -> None:
        """Stop the emulator process (SIGTERM, then SIGKILL after 5 s)."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> PubSubEmulator:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
