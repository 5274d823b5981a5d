"""Executors run a job to completion: a local subprocess here, a Kubernetes Job on GKE (same entry point).

The job name is the idempotency fence: a name that already ran is not started again.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from aikube.storage import AlreadyExists, NotFound, ObjectStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSpec:
    """What to run: a name unique per request, the entry point's module, its environment and labels."""

    name: str
    module: str  # run as `python -m <module>`; the container's command on Kubernetes
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobResult:
    name: str
    succeeded: bool
    error: str = ""


class Executor(Protocol):
    def run(self, job: JobSpec) -> JobResult:
        """Run the job (or find its earlier run) and wait for the outcome."""
        ...


class LocalExecutor:
    """Runs the entry point as a subprocess of this interpreter; outcomes are recorded under `jobs/<name>/`.

    A second run of a recorded name returns the recorded outcome. A name claimed by a run that is still going
    (another replica, or a dispatcher that died mid-job) is waited for up to `timeout_s`.
    """

    def __init__(self, store: ObjectStore, *, timeout_s: float = 1800.0, env: Mapping[str, str] | None = None):
        self.store = store
        self.timeout_s = timeout_s
        self.env = dict(env or {})

    def run(self, job: JobSpec) -> JobResult:
        recorded = self._recorded(job.name)
        if recorded:
            log.info("job already ran", extra={"job": job.name})
            return recorded
        try:
            self.store.put_json(f"jobs/{job.name}/claim.json", {"pid": os.getpid(), "at": time.time()}, if_absent=True)
        except AlreadyExists:
            return self._wait_for(job.name)
        result = self._execute(job)
        self.store.put_json(f"jobs/{job.name}/result.json", {"succeeded": result.succeeded, "error": result.error})
        return result

    def _execute(self, job: JobSpec) -> JobResult:
        # One OpenMP thread unless told otherwise: the job shares this machine's cores with the services, and
        # scikit-learn's histogram trees run many times slower when threads outnumber free cores.
        env = {"OMP_NUM_THREADS": "1", **os.environ, **self.env, **job.env}
        started = time.monotonic()
        try:
            done = subprocess.run(
                [sys.executable, "-m", job.module],
                env=env,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
            )
        except subprocess.TimeoutExpired:
            return JobResult(job.name, False, f"deadline exceeded after {self.timeout_s:.0f}s")
        log.info("job finished", extra={"job": job.name, "rc": done.returncode, "seconds": time.monotonic() - started})
        if done.returncode == 0:
            return JobResult(job.name, True)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return JobResult(job.name, False, lines[-1] if lines else f"exit code {done.returncode}")

    def _recorded(self, name: str) -> JobResult | None:
        try:
            outcome = self.store.get_json(f"jobs/{name}/result.json")
        except NotFound:
            return None
        return JobResult(name, bool(outcome["succeeded"]), str(outcome.get("error", "")))

    def _wait_for(self, name: str) -> JobResult:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if recorded := self._recorded(name):
                return recorded
            time.sleep(1.0)
        raise TimeoutError(f"job {name} was claimed by another run that has not finished in {self.timeout_s:.0f}s")
