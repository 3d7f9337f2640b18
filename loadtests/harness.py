"""What the load tests share: free ports, the processes they start and stop, the CPU
time they read from /proc and the environment they give the switch and their own
processes.

Standard library and orjson only at import time: scaling.py runs it on a bare machine with
nothing but its carried site-packages.
"""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
SERVICE = "switch.v1.Switch"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Client channels: each its own connection (no shared subchannel pool), large answers allowed.
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]

# Velocity: every authorization moves the instrument and merchant counters; the limits
# sit far above what a run reaches, so nothing is declined by them.
VELOCITY_LIMITS = """
[[limits]]
scope = "instrument"
window_seconds = 3600
max_count = 100000000

[[limits]]
scope = "merchant"
window_seconds = 3600
max_amount = 1000000000000000
"""


# --- ports and processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def spawn(
    command: Sequence[str],
    *,
    log: Path,
    cwd: Path | str,
    env: dict[str, str],
    append: bool = False,
    user: int | None = None,
    group: int | None = None,
    extra_groups: list[int] | None = None,
) -> subprocess.Popen[bytes]:
    """A server process in a session of its own, its stdout and stderr to log."""
    with log.open("ab" if append else "wb") as out:
        return subprocess.Popen(
            list(command),
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=user,
            group=group,
            extra_groups=extra_groups,
        )


def send(process: subprocess.Popen[bytes], signum: int, *, group: bool = False) -> None:
    """Signal a process that still runs (group: its whole process group)."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)


def reap(process: subprocess.Popen[bytes], timeout: float, *, group: bool = False) -> None:
    """Wait for a process to exit; after timeout seconds kill it (group: its process group)."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
        process.wait(timeout=5)


# --- CPU time ---------------------------------------------------------------------------------------


def store_pids() -> tuple[int, ...]:
    """This machine's PostgreSQL postmaster and redis-server processes, by name: their
    CPU (backends included) is what the stores spend while a benchmark runs."""
    found: dict[int, tuple[str, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        found[int(entry.name)] = (name, int(stat.rsplit(")", 1)[1].split()[1]))
    return tuple(
        pid
        for pid, (name, parent) in found.items()
        if name == "redis-server" or (name == "postgres" and found.get(parent, ("", 0))[0] != "postgres")
    )


def cpu_seconds(groups: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """For each group of processes (pids; 0 and unknown ones are skipped): the user + system
    CPU seconds of them, their threads and all their live descendants, plus the descendants
    they have reaped, from one reading of /proc (Linux).

    The reaped descendants count so that a figure never goes down between two readings: a
    PostgreSQL backend that exits between them (a client's connection closing) takes its
    CPU out of the live tree, and the postmaster's cutime/cstime is where it goes."""
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent, CPU seconds)
    if any(pid for pids in groups.values() for pid in pids):
        tick = os.sysconf("SC_CLK_TCK")
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            # utime, stime, cutime, cstime: proc(5) fields 14-17
            stats[int(entry.name)] = (int(fields[1]), sum(int(x) for x in fields[11:15]) / tick)
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    spent: dict[str, float] = {}
    for name, roots in groups.items():
        total, todo, seen = 0.0, [pid for pid in roots if pid], set()
        while todo:
            pid = todo.pop()
            if pid in seen or pid not in stats:
                continue
            seen.add(pid)
            total += stats[pid][1]
            todo += children.get(pid, [])
        spent[name] = total
    return spent


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def log_tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return f"({path}: unreadable)"


# --- environments ------------------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    """This process's environment without any SWITCH_* setting."""
    return {key: value for key, value in os.environ.items() if not key.startswith("SWITCH_")}


def python_env() -> dict[str, str]:
    """The environment of a `python -m loadtests.<module>` process (the echo, a load
    generator, the probe). The repository goes last on its path: the `loadtests` package
    is found there, while `switch` still comes from PYTHONPATH or the installed package
    first (on a lent machine, the copy beside its compiled modules)."""
    env = clean_env()
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (env.get("PYTHONPATH"), str(ROOT))))
    return env


def production_env(redis_url: str, postgres_dsn: str, schema: str, prefix: str, folder: Path) -> dict[str, str]:
    """The switch on Redis + PostgreSQL, in its own schema and key prefix; plaintext on
    loopback, said explicitly (production stores otherwise need [server.tls]); its
    checkpoint signing key is written in folder."""
    signing_key = folder / "audit-signing.key"
    if not signing_key.exists():
        from switch.security.custody.files import new_signing_key_pem
        from switch.security.custody.storage import write_private

        write_private(signing_key, new_signing_key_pem())
    return {
        "SWITCH_REDIS_URL": redis_url,
        "SWITCH_POSTGRES_DSN": postgres_dsn,
        "SWITCH_POSTGRES_SCHEMA": schema,
        "SWITCH_KEY_PREFIX": prefix,
        "SWITCH_PLAINTEXT": "true",
        "SWITCH_FINGERPRINT_KEY": secrets.token_hex(32),
        "SWITCH_AUDIT_SIGNING_KEY_FILE": str(signing_key),
    }


def write_tokenization_keys(path: Path) -> Path:
    """A fresh tokenization key ring (SWITCH_TOKENIZATION_KEY_FILE), mode 0600 as the switch requires."""
    data = orjson.dumps({"active_key": "k1", "keys": {"k1": secrets.token_hex(32)}})
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
        handle.write(data)
    return path
