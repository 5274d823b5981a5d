"""SIGTERM to `aikube demo` stops everything it started, exactly as Ctrl-C does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

import aikube.demo
from aikube.catalog import Catalog
from aikube.demo import Terminated, run_demo
from aikube.demo.stack import Stack, Workspace, sigterm_as_interrupt


def sigterm_myself_and_wait(seconds: float = 10.0) -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # the handler runs between bytecodes of the main thread
        time.sleep(0.01)


def test_sigterm_raises_a_keyboard_interrupt_and_the_previous_handler_comes_back() -> None:
    before = signal.getsignal(signal.SIGTERM)

    with pytest.raises(KeyboardInterrupt) as raised, sigterm_as_interrupt():
        sigterm_myself_and_wait()

    assert isinstance(raised.value, Terminated)
    assert signal.getsignal(signal.SIGTERM) == before


def test_sigterm_stops_the_stacks_processes(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stack = Stack(Workspace(tmp_path).create(), Catalog.load(), processes={"service": child})
        with pytest.raises(Terminated), sigterm_as_interrupt(), stack:
            sigterm_myself_and_wait()
        assert child.poll() == -signal.SIGTERM  # stopped by Stack.stop, not left running
    finally:
        child.kill()
        child.wait()


def test_a_sigterm_during_the_stop_does_not_cut_it_short(tmp_path: Path) -> None:
    children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)]
    try:
        stack = Stack(Workspace(tmp_path).create(), Catalog.load(), processes=dict(zip("ab", children, strict=True)))
        with sigterm_as_interrupt():
            original = stack._stop

            def stop_while_signalled() -> None:
                os.kill(os.getpid(), signal.SIGTERM)  # arrives while stopping: ignored, stopping goes on
                time.sleep(0.2)
                original()

            stack._stop = stop_while_signalled  # type: ignore[method-assign]
            stack.stop()
        assert [c.poll() for c in children] == [-signal.SIGTERM, -signal.SIGTERM]
    finally:
        for child in children:
            child.kill()
            child.wait()


class StackThatGetsSigterm:
    """Stands in for the Stack: its start is where a SIGTERM arrives; records whether it was stopped."""

    stopped = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> StackThatGetsSigterm:
        return self

    def start(self) -> None:
        sigterm_myself_and_wait()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        StackThatGetsSigterm.stopped = True


def test_run_demo_turns_sigterm_into_the_stacks_cleanup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "d.csv").write_text("ts,x,y\n2021-01-01T00:00:00,1.0,2.0\n")
    (tmp_path / "d.yaml").write_text("name: d\npath: d.csv\ntimestamp: ts\ntarget: y\ntask: regression\nbatch: 1D\n")
    monkeypatch.setattr(aikube.demo, "Stack", StackThatGetsSigterm)
    before = signal.getsignal(signal.SIGTERM)

    with pytest.raises(Terminated):
        run_demo(tmp_path / "d.yaml", tmp_path / "out", say=lambda _: None)

    assert StackThatGetsSigterm.stopped
    assert signal.getsignal(signal.SIGTERM) == before
