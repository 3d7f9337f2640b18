"""`switch serve --workers N`: the parent process that forks the workers and keeps N running.

The parent never imports gRPC (gRPC Python forbids forking after it is loaded);
each worker builds its own server on the shared port (SO_REUSEPORT). The first
worker starts alone and the others only once it serves, so a start-up error is
reported once, by it, and the others are never forked. A worker that dies later
(a crash, the OOM killer, kill -9) is replaced at once, or after a growing pause if
it keeps dying right after its start. SIGTERM and SIGINT are forwarded to every
worker, which drains and exits; the parent exits once all have.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace

from switch import config

log = logging.getLogger("switch")

# A worker that dies sooner than this after its start is restarted after a pause
# that doubles each time (from FIRST_PAUSE up to MAX_PAUSE): a crash loop must not
# spin the machine.
STABLE_SECONDS = 5.0
FIRST_PAUSE_SECONDS = 0.5
MAX_PAUSE_SECONDS = 30.0

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
FORK_BLOCKED = {*STOP_SIGNALS, signal.SIGHUP}  # the worker unblocks them once it handles them
RunWorker = Callable[[config.Settings, int | None], int]  # (settings, ready pipe or None) -> exit status


class Supervisor:
    def __init__(self, settings: config.Settings, run_worker: RunWorker) -> None:
        self._settings = settings
        self._run_worker = run_worker
        self._children: dict[int, tuple[int, float]] = {}  # pid -> (worker index, started at)
        self._pauses: dict[int, float] = {}  # worker index -> pause before its next restart
        self._stopping = False

    def run(self) -> int:
        """Runs the workers until they are told to stop; the first non-zero exit status of
        a worker that was stopping, or of the first worker if it never served."""
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        signal.signal(signal.SIGHUP, self._relay)
        pid, serving = self._fork(0, wait_until_serving=True)
        if not serving:
            return _exit_status(os.waitpid(pid, 0)[1])
        for index in range(1, self._settings.server.workers):
            if not self._stopping:
                self._fork(index)
        status = 0
        while self._children:
            pid, wait_status = os.wait()
            if pid not in self._children:
                continue
            index, started = self._children.pop(pid)
            if self._stopping:
                status = status or _exit_status(wait_status)
            else:
                self._replace(index, pid, wait_status, time.monotonic() - started)
        return status

    def _replace(self, index: int, pid: int, wait_status: int, lived: float) -> None:
        log.error(
            "worker %d (pid %d) exited with %d after %.1f s; starting another",
            index,
            pid,
            _exit_status(wait_status),
            lived,
        )
        pause = self._pauses.get(index, 0.0) if lived < STABLE_SECONDS else 0.0
        deadline = time.monotonic() + pause
        while not self._stopping and time.monotonic() < deadline:  # a signal ends the pause early
            time.sleep(min(0.1, deadline - time.monotonic()))
        if not self._stopping:
            self._pauses[index] = min(max(pause * 2, FIRST_PAUSE_SECONDS), MAX_PAUSE_SECONDS)
            self._fork(index)

    def _fork(self, index: int, *, wait_until_serving: bool = False) -> tuple[int, bool]:
        """Forks worker index; with wait_until_serving, returns once it serves (True) or
        has exited (False)."""
        ready_read, ready_write = os.pipe() if wait_until_serving else (-1, -1)
        # Blocked across the fork: the child keeps them blocked until its own handlers are in
        # place (the worker unblocks them), so a stop sent while it starts is neither lost nor
        # kills it half-built, and the parent's handler never runs in the child.
        signal.pthread_sigmask(signal.SIG_BLOCK, FORK_BLOCKED)
        pid = os.fork()
        if pid == 0:
            for signum in FORK_BLOCKED:
                signal.signal(signum, signal.SIG_DFL)
            if wait_until_serving:
                os.close(ready_read)
            os._exit(self._run_worker(_as_worker(self._settings, index), ready_write if wait_until_serving else None))
        self._children[pid] = (index, time.monotonic())  # before the unblock: a stop pending now reaches it
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORK_BLOCKED)
        if not wait_until_serving:
            return pid, True
        os.close(ready_write)
        with os.fdopen(ready_read, "rb") as ready:
            serving = ready.read(1) == b"1"  # end of file: it exited
        if not serving:
            del self._children[pid]
        return pid, serving

    def _relay(self, signum: int, _frame: object) -> None:
        """SIGHUP: every worker reads its TLS files and its risk policy again; nothing stops."""
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _forward(self, signum: int, _frame: object) -> None:
        self._stopping = True
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError):  # it exited and is not yet reaped
                os.kill(pid, signum)


def _as_worker(settings: config.Settings, index: int) -> config.Settings:
    """Worker i's settings: its own metrics port, so each process is scraped on its own."""
    if not settings.server.metrics_port:
        return settings
    server = replace(settings.server, metrics_port=settings.server.metrics_port + index)
    return replace(settings, server=server)


def _exit_status(wait_status: int) -> int:
    return os.waitstatus_to_exitcode(wait_status)
