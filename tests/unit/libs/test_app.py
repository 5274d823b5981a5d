"""Service startup (aikube.app.run_service): every bad start is one line on stderr and a non-zero exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from service_settings import service_settings

from aikube import app
from aikube.bus import BusError
from aikube.runtime import Router
from aikube.settings import ConfigError, ServiceSettings

pytestmark = pytest.mark.usefixtures("restore_process_state")  # each test sets up logging and tracing


@pytest.fixture
def env(service_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Valid settings on local folders, the health endpoint off."""
    service_env.setenv("AIKUBE_HEALTH_PORT", "")
    return service_env


class Deps:
    closed = False

    def close(self) -> None:
        self.closed = True


class UnprovisionedBus:
    """A bus whose project has no subscriptions; running it would be a test bug."""

    def __init__(self, project_id: str, catalog: Any, **_: Any) -> None:
        self.project_id = project_id

    def check_subscriptions(self, names: Any) -> None:
        raise BusError(f"subscription x does not exist in project {self.project_id}: run `aikube provision`")

    def close(self) -> None:
        pass


def run(make_deps: Any = lambda settings: Deps()) -> int:
    with pytest.raises(SystemExit) as stopped:
        app.run_service("svc", Router(), make_deps, ServiceSettings)
    return int(stopped.value.code or 0)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_bad_setting_exits_2_naming_it(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A store URI no adapter opens is a configuration error before anything starts."""
    env.setenv("AIKUBE_STORE", "s3://x")
    assert run() == 2
    assert one_line(capsys.readouterr().err).startswith("svc: ServiceSettings cannot start: AIKUBE_STORE:")


def test_unusable_store_folder_names_the_setting(
    env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store folder that cannot be created (here: below a file) exits 1 naming AIKUBE_STORE."""
    (tmp_path / "file").write_text("")
    env.setenv("AIKUBE_STORE", (tmp_path / "file" / "store").as_uri())
    assert run() == 1
    assert one_line(capsys.readouterr().err).startswith(f"svc: cannot use AIKUBE_STORE={(tmp_path / 'file').as_uri()}")


def test_unusable_trace_dir_names_the_setting(
    env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """So does a trace folder that cannot be created."""
    (tmp_path / "file").write_text("")
    env.setenv("AIKUBE_TRACE_EXPORTER", "file")
    env.setenv("AIKUBE_TRACE_DIR", str(tmp_path / "file" / "traces"))
    assert run() == 1
    assert one_line(capsys.readouterr().err).startswith("svc: cannot use AIKUBE_TRACE_DIR=")


def test_a_health_port_in_use_names_the_setting(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A port another process listens on stops the service with one line naming AIKUBE_HEALTH_PORT."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env.setenv("AIKUBE_HEALTH_PORT", str(port))
        env.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:1")  # the clients are built, never called
        assert run() == 1
    assert one_line(capsys.readouterr().err).startswith(f"svc: cannot use AIKUBE_HEALTH_PORT={port}: ")


def test_config_error_of_make_deps_exits_2(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A setting only the service's make_deps checks is still a configuration error."""

    def make_deps(settings: ServiceSettings) -> Any:
        raise ConfigError("AIKUBE_SERVING: no such backend")

    assert run(make_deps) == 2
    assert one_line(capsys.readouterr().err) == "svc: AIKUBE_SERVING: no such backend"


def test_other_startup_failure_exits_1_with_its_type(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Anything else failing at startup is one line with the exception type, not a stack."""

    def make_deps(settings: ServiceSettings) -> Any:
        raise PermissionError(13, "Permission denied", "/data/warehouse")

    assert run(make_deps) == 1
    assert one_line(capsys.readouterr().err) == "svc: PermissionError: [Errno 13] Permission denied: '/data/warehouse'"


def test_unprovisioned_project_fails_before_running(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Missing subscriptions stop the service before it pulls or reports ready; its resources are closed."""
    deps = Deps()
    env.setattr(app, "PubSubBus", UnprovisionedBus)
    env.setattr(app.Service, "run", lambda self: pytest.fail("the service ran"))
    assert run(lambda settings: deps) == 1
    assert "run `aikube provision`" in one_line(capsys.readouterr().err)
    assert deps.closed


@pytest.mark.parametrize(
    ("variable", "value", "code", "says"),
    [
        ("AIKUBE_WAREHOUSE", "garbage", 2, "AIKUBE_WAREHOUSE: unsupported warehouse URI 'garbage'"),
        ("AIKUBE_LOG_LEVEL", "LOUD", 2, "AIKUBE_LOG_LEVEL: Input should be 'DEBUG'"),
    ],
)
def test_service_process_prints_no_traceback(tmp_path: Path, variable: str, value: str, code: int, says: str) -> None:
    """The real entry point of a service, as a process: the exit code and one line, nothing else."""
    env = {**os.environ, **service_settings(tmp_path), "PUBSUB_EMULATOR_HOST": "127.0.0.1:1", variable: value}
    done = subprocess.run(
        [sys.executable, "-m", "feature_builder.main"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == code
    assert says in one_line(done.stderr) and done.stdout == ""
