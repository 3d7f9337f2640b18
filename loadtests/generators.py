"""The load generator processes, from the orchestrator's side (capacity.py, scaling.py).

A LoadGenerator is one `python -m loadtests.loadgen` process (loadtests/loadgen.py has
the protocol); it takes any number of runs, one after the other. run_together() runs one
plan on each of several generators, all starting on one instant, and reads the CPU that
the measured processes (the server, the stores) spend meanwhile: from this process, so a
generator's event loop never stops for /proc.
"""

from __future__ import annotations

import contextlib
import select
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from loadtests import harness
from loadtests.driver import CALL_TIMEOUT, Plan

READY_TIMEOUT = 60.0  # building a run's requests and connecting
START_DELAY = 0.2  # from "go" to the common start instant: every generator has read it by then


class LoadGenerator:
    """One load generator process; its stderr goes to `log`."""

    def __init__(self, log: Path, *, cwd: Path) -> None:
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "loadtests.loadgen"],
            cwd=cwd,  # not the repository: `-m` puts cwd first on the path (see harness.python_env)
            env=harness.python_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            start_new_session=True,
        )

    def send(self, message: Mapping[str, Any]) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(orjson.dumps(message) + b"\n")
        stdin.flush()

    def answer(self, timeout: float) -> dict[str, Any]:
        """Its next line; a RuntimeError when it says "error", exits or stays silent."""
        stdout = self.process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], max(0.0, timeout))
        line = stdout.readline() if ready else b""
        if not line:
            tail = harness.log_tail(self.log, 2000).strip()
            raise RuntimeError(f"the load generator gave no answer (exit code {self.process.poll()}): {tail}")
        answer: dict[str, Any] = orjson.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the load generator failed: {answer['error']}")
        return answer

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        harness.reap(self.process, 10, group=True)
        self._log_file.close()


@dataclass(frozen=True)
class Together:
    reports: list[dict[str, Any]]  # one per generator, in order
    cpu_s: dict[str, float]  # CPU seconds each watched group spent in the measured window
    window_s: float  # wall seconds from the window's start until the last report


def run_together(
    generators: Sequence[LoadGenerator], plans: Sequence[Plan], *, watch: Mapping[str, Sequence[int]]
) -> Together:
    """Each generator runs its plan; all start on one instant and warm up alike (the first
    plan's warm-up). `watch` names groups of processes whose CPU is read from the end of the
    warm-up until every report is in."""
    for generator, plan in zip(generators, plans, strict=True):
        generator.send({"plan": asdict(plan)})
    deadline = time.monotonic() + READY_TIMEOUT
    for generator in generators:
        generator.answer(deadline - time.monotonic())
    start = time.time() + START_DELAY
    for generator in generators:
        generator.send({"go": start})
    measure_from = start + plans[0].warmup
    time.sleep(max(0.0, measure_from - time.time()))
    before, began = harness.cpu_seconds(watch), time.monotonic()
    longest = max(plan.duration for plan in plans)
    deadline = began + longest + CALL_TIMEOUT + 60
    reports = [generator.answer(deadline - time.monotonic()) for generator in generators]
    after, window = harness.cpu_seconds(watch), time.monotonic() - began
    # A process outside the trees' reach (one that exited unreaped) can make the second
    # reading smaller: never below zero.
    spent = {name: max(0.0, after[name] - before[name]) for name in watch}
    return Together(reports, spent, window)
