"""The servers a load test measures, as processes: the bare echo, the switch and the
ISO 8583 simulator; started, waited for, stopped (capacity.py, scaling.py, sizing.py).

Each server runs in a session of its own with its output in a log, so stopping it signals
its whole process group (a `switch serve --workers N` and its workers, N echo processes
sharing one port). A server with a TLS folder (`switch tls init`) serves mutual TLS with
its files, and is probed with its client certificate.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loadtests import harness

READY_TIMEOUT = 60.0


@dataclass
class Server:
    name: str  # its key in the reports: "echo", "embedded-a", "switch", ...
    label: str  # how the tables name it
    command: list[str]  # "{port}" stands for the port
    env: dict[str, str]
    log: Path
    cwd: Path
    copies: int = 1  # processes of the same command (echo processes sharing the port)
    tls_dir: Path | None = None  # it serves mutual TLS with this folder's files; clients use its client files
    port: int = field(default_factory=harness.free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def logs(self) -> list[Path]:
        if self.copies == 1:
            return [self.log]
        return [self.log.with_name(f"{self.log.stem}-{index}{self.log.suffix}") for index in range(self.copies)]

    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def start(self) -> None:
        command = [part.replace("{port}", str(self.port)) for part in self.command]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.processes = [harness.spawn(command, log=log, cwd=self.cwd, env=self.env) for log in self.logs]

    def exited(self) -> int | None:
        """The exit status of a process of it that has exited, or None while all run."""
        return next((code for process in self.processes if (code := process.poll()) is not None), None)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (the switch drains), then SIGKILL after `timeout` seconds."""
        for process in self.processes:
            harness.send(process, signal.SIGTERM, group=True)
        for process in self.processes:
            harness.reap(process, timeout, group=True)

    def print_log_tails(self) -> None:
        for log in self.logs:
            tail = harness.log_tail(log)
            if tail.strip():
                print(f"--- {self.label}: {log.name} (tail) ---\n{tail}", file=sys.stderr)


def echo(
    folder: Path, *, copies: int = 1, name: str = "echo", label: str = "echo", tls_dir: Path | None = None
) -> Server:
    """`copies` bare echo processes on one port (loadtests/echo.py); with tls_dir, over mutual TLS."""
    command = [sys.executable, "-m", "loadtests.echo", "--port", "{port}"]
    if tls_dir is not None:
        command += ["--tls-dir", str(tls_dir)]
    env = harness.python_env()
    return Server(name, label, command, env, folder / f"{name}.log", folder, copies, tls_dir=tls_dir)


def switch(
    config: Path,
    env: dict[str, str],
    log: Path,
    *,
    name: str = "switch",
    label: str = "switch",
    extra: Sequence[str] = (),
    cwd: Path = harness.ROOT,
    tls_dir: Path | None = None,
) -> Server:
    """`python -m switch serve` on a configuration file; `extra` adds options (--workers N).
    tls_dir: the folder whose files the configuration's [server.tls] names (the probe's client files)."""
    command = [sys.executable, "-m", "switch", "serve", "--config", str(config), "--port", "{port}", *extra]
    return Server(name, label, command, env, log, cwd, tls_dir=tls_dir)


def simulator(env: dict[str, str], log: Path, *, name: str, label: str) -> Server:
    """The ISO 8583 card network's simulator (`python -m switch sim card`)."""
    command = [sys.executable, "-m", "switch", "sim", "card", "--port", "{port}"]
    return Server(name, label, command, env, log, harness.ROOT)


def tls_folder(path: Path | None) -> Path | None:
    """A --tls-dir option's folder (`switch tls init`), absolute (the servers and clients run
    in other folders), once it holds every file: SystemExit naming what it lacks."""
    if path is None:
        return None
    from switch.cli.demo.tls import TlsFolder
    from switch.domain.errors import StartupError

    try:
        return TlsFolder.open(path).path
    except StartupError as error:
        raise SystemExit(str(error)) from None


# --- readiness -------------------------------------------------------------------------------------


def wait_listening(server: Server, timeout: float = READY_TIMEOUT) -> None:
    """Its port takes a TCP connection; fails at once if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.exited() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=1.0):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{server.label} did not start listening on port {server.port}")


def wait_healthy(server: Server, timeout: float = READY_TIMEOUT) -> None:
    """Its gRPC health service says SERVING (loadtests/probe.py); fails at once if it exits."""
    command = [sys.executable, "-m", "loadtests.probe", server.target, "--timeout", str(timeout)]
    if server.tls_dir is not None:
        command += ["--tls-dir", str(server.tls_dir)]
    probe = subprocess.Popen(
        command,
        cwd=server.cwd,
        env=harness.python_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + timeout + 15  # the probe's own start included
    while probe.poll() is None and server.exited() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if probe.poll() is None:
        probe.kill()
    said = probe.communicate()[0].strip()
    if probe.returncode != 0 or server.exited() is not None:
        raise RuntimeError(f"{server.label} did not become ready (see its log {server.log}): {said}")


def wait_logged(server: Server, marker: bytes, count: int, timeout: float = READY_TIMEOUT) -> None:
    """Its logs hold `marker` `count` times: one line per process (or worker) that serves,
    where a health check would reach only the one its connection lands on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = server.exited()
        if code is not None:
            raise RuntimeError(f"{server.label} exited with {code} before serving")
        seen = 0
        for log in server.logs:
            with contextlib.suppress(OSError):
                seen += log.read_bytes().count(marker)
        if seen >= count:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{server.label}: not all {count} processes serving after {timeout:.0f} s")


@contextlib.contextmanager
def serving(server: Server) -> Iterator[str]:
    """Runs a gRPC server until the block ends; yields its target. On an error its log's
    tail goes to stderr."""
    server.start()
    try:
        wait_healthy(server)
        yield server.target
    except BaseException:
        server.print_log_tails()
        raise
    finally:
        server.stop()
