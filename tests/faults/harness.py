"""The world the fault suite runs in, started and cleaned up as one.

    its own redis-server (on a free port: it can be killed) <- fault proxy <-+
    the machine's PostgreSQL (a schema of its own)          <- fault proxy <-+- switch serve --workers N
    the recording network (tests/faults/network.py)         <----------------+   (one remote route)

The switch runs as `python -m switch serve` from a TOML file of its own: the
production stores through the proxies, a unique schema and key prefix, a
fingerprint key file and a token key ring file (both 0600), a short idempotency
lease (intents older than it are taken for abandoned) and `[routes.card]` on the
recording network through the `remote` adapter.

running_world() yields the World and, whatever happens, stops the switch, the
network, the proxies and Redis, and drops the schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults.journal import pending_work
from tests.faults.proxy import FaultProxy

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432
POSTGRES_DSN = f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/test"
READY_SECONDS = 60.0
STOP_SECONDS = 15.0


class WorldError(RuntimeError):
    """The world could not be started (a missing tool, a process that did not come up)."""


@dataclass(frozen=True)
class WorldSettings:
    workers: int = 2
    lease_seconds: int = 3
    adapter_timeout_ms: int = 1500  # at most lease_seconds * 500: the switch requires lease >= 2x timeout
    network_latency: float = 0.002
    drain_seconds: int = 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tail(path: Path, size: int = 3000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else ""


async def _wait_for_exit(process: subprocess.Popen[bytes], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while process.poll() is None:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _wait_gone(pids: list[int], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if not any(_alive(pid) for pid in pids) or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.05)


class RedisProcess:
    """A redis-server of the test's own, on a fixed port, without persistence: kill() is kill -9."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise WorldError(
                "redis-server is not on PATH: the fault suite starts (and kills) a Redis of its own "
                "(Debian: apt-get install redis-server)"
            )
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    async def start(self) -> None:
        command = [
            self.binary,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--dir", str(self.folder), "--logfile", str(self.folder / "redis.log")),
        ]
        self.process = _spawn(command, self.folder, None)
        deadline = time.monotonic() + 10.0
        while not await self._pong():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise WorldError(f"redis-server on port {self.port} did not start:\n{_tail(self.folder / 'redis.log')}")
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            await _wait_for_exit(self.process, 5.0)
            self.kills += 1

    async def _pong(self) -> bool:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 1.0)
        except (OSError, TimeoutError):
            return False
        try:
            writer.write(b"PING\r\n")
            return await asyncio.wait_for(reader.readline(), 1.0) == b"+PONG\r\n"
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()


@dataclass
class SwitchProcess:
    """One `python -m switch serve` (a parent and its forked workers), in a session of its own."""

    config: Path
    log: Path
    workers: int
    process: subprocess.Popen[bytes] | None = None
    exit_code: int | None = None  # the parent's, once stopped
    orphans: list[int] = field(default_factory=list)  # workers still running when the parent had exited

    async def start(self) -> None:
        # Its configuration is the TOML file alone (SWITCH_NO_EXTENSIONS, not configuration, goes through).
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCH_") or k == "SWITCH_NO_EXTENSIONS"}
        command = [sys.executable, "-m", "switch", "serve", "--config", str(self.config)]
        self.process = _spawn(command, ROOT, self.log, env=env, session=True)
        deadline = time.monotonic() + READY_SECONDS
        while self._serving() < self.workers:
            if self.process.poll() is not None:
                raise WorldError(f"switch serve exited with {self.process.returncode}:\n{_tail(self.log)}")
            if time.monotonic() > deadline:
                raise WorldError(
                    f"switch serve: {self._serving()} of {self.workers} workers serving:\n{_tail(self.log)}"
                )
            await asyncio.sleep(0.1)

    def _serving(self) -> int:
        return _tail(self.log, 1_000_000).count('"msg":"serving on ')

    def serves(self, pid: int) -> bool:
        """Whether worker pid has logged that it serves."""
        return f"(pid {pid})" in _tail(self.log, 1_000_000)

    def children(self) -> list[int]:
        """The worker processes the parent forked and that are still alive (not zombies)."""
        if self.process is None:
            return []
        pid = self.process.pid
        try:
            listed = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return []
        return [int(child) for child in listed if _alive(int(child))]

    async def stop(self, grace: float) -> None:
        """SIGTERM to the parent, which forwards it to its workers (they drain); a worker
        the parent left running (it died first) gets SIGTERM from here; SIGKILL to the
        whole session past the grace."""
        process = self.process
        if process is None:
            return
        workers = self.children()
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        if await _wait_for_exit(process, grace + STOP_SECONDS):
            self.exit_code = process.returncode
            self.orphans = [pid for pid in workers if _alive(pid) and _group(pid) == process.pid]
            for pid in self.orphans:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            await _wait_gone(self.orphans, grace + STOP_SECONDS)
        self.kill_session()

    def kill_session(self) -> None:
        """Whatever is left of this serve's session (its process group), at once."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5.0)


def _spawn(
    command: list[str], cwd: Path, log: Path | None, *, env: dict[str, str] | None = None, session: bool = False
) -> subprocess.Popen[bytes]:
    """Starts command with its output appended to log (None: discarded); session: in a
    session (and process group) of its own, so everything it forks can be ended at once."""
    if log is None:
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=session
        )
    with log.open("ab") as out:
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=session
        )


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields after the command name (state, ppid, pgrp, ...); [] if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return bool(fields) and fields[0] not in ("Z", "X")


def _group(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[2]) if len(fields) > 2 else None


@dataclass
class World:
    folder: Path
    settings: WorldSettings
    redis: RedisProcess
    pg_proxy: FaultProxy
    redis_proxy: FaultProxy
    network_port: int
    network_log: Path
    schema: str
    prefix: str
    port: int
    network: subprocess.Popen[bytes] | None = None
    switch: SwitchProcess | None = None
    starts: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start_network(self) -> None:
        command = [
            sys.executable,
            *("-m", "tests.faults.network", "--port", str(self.network_port), "--log", str(self.network_log)),
            *("--latency", str(self.settings.network_latency)),
        ]
        self.network = _spawn(command, ROOT, self.folder / "network.out")
        deadline = time.monotonic() + READY_SECONDS
        while not await _listening(self.network_port):
            if self.network.poll() is not None or time.monotonic() > deadline:
                raise WorldError(f"the recording network did not start:\n{_tail(self.folder / 'network.out')}")
            await asyncio.sleep(0.1)

    async def start_switch(self) -> SwitchProcess:
        """Starts a `switch serve` on the world's port; returns it once every worker serves."""
        self.starts += 1
        serve = SwitchProcess(
            self.folder / "switch.toml", self.folder / f"switch-{self.starts}.log", self.settings.workers
        )
        try:
            await serve.start()
        except BaseException:
            serve.kill_session()
            raise
        self.switch = serve
        return serve

    async def settle(self, seconds: float) -> bool:
        """Waits until the switch's workers have journaled every abandoned intent, had every
        reversal acknowledged and resolved every pending operation; False if that takes
        longer than seconds."""
        import asyncpg

        deadline = time.monotonic() + seconds
        connection = await asyncpg.connect(POSTGRES_DSN, server_settings={"search_path": self.schema})
        try:
            while True:
                if not await pending_work(connection):
                    return True
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.2)
        finally:
            await connection.close()

    async def stop_switch(self) -> None:
        if self.switch is not None:
            await self.switch.stop(self.settings.drain_seconds)

    async def stop_network(self) -> None:
        if self.network is not None and self.network.poll() is None:
            self.network.terminate()
            if not await _wait_for_exit(self.network, STOP_SECONDS):
                self.network.kill()
                await _wait_for_exit(self.network, 5.0)

    def write_config(self) -> Path:
        keys = self.folder / "keys"
        _write_keys(keys)
        path = self.folder / "switch.toml"
        s = self.settings
        path.write_text(
            f"""log_level = "INFO"

[server]
host = "127.0.0.1"
port = {self.port}
workers = {s.workers}
drain_seconds = {s.drain_seconds}
plaintext = true

[idempotency]
lease_seconds = {s.lease_seconds}

[adapters]
timeout_ms = {s.adapter_timeout_ms}

[stores]
redis_url = "redis://127.0.0.1:{self.redis_proxy.port}/0"
postgres_dsn = "postgresql://postgres@127.0.0.1:{self.pg_proxy.port}/test"
postgres_schema = "{self.schema}"
key_prefix = "{self.prefix}"

[security]
fingerprint_key_file = "{keys / "fingerprint.key"}"
audit_signing_key_file = "{keys / "audit-signing.key"}"

[tokenization]
key_file = "{keys / "token-keys.json"}"

[routes.card]
adapter = "remote"
options = {{ address = "127.0.0.1:{self.network_port}", connect_timeout = 1.0, backoff_max = 0.5 }}

[routes.instant]
adapter = "simulated"
"""
        )
        return path


def _write_keys(folder: Path) -> None:
    from switch.config.keys import (
        FINGERPRINT_KEY_FILE,
        TOKEN_KEY_FILE,
        new_fingerprint_key,
        new_key_ring,
        write_key_file,
        write_secret,
    )
    from switch.security.custody.files import SIGNING_KEY_FILE, new_signing_key_pem

    write_secret(folder / FINGERPRINT_KEY_FILE, new_fingerprint_key())
    write_key_file(folder / TOKEN_KEY_FILE, new_key_ring())
    write_secret(folder / SIGNING_KEY_FILE, new_signing_key_pem())


async def _listening(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


@asynccontextmanager
async def running_world(folder: Path, settings: WorldSettings | None = None) -> AsyncIterator[World]:
    """Starts Redis, both proxies, the network and the switch; stops and removes all of it."""
    settings = settings or WorldSettings()
    if settings.lease_seconds * 1000 < 2 * settings.adapter_timeout_ms:
        raise WorldError("lease_seconds must be at least twice adapter_timeout_ms (the switch refuses less)")
    _make_folder(folder)
    unique = secrets.token_hex(4)
    redis = RedisProcess(folder)
    pg_proxy = FaultProxy(POSTGRES_HOST, POSTGRES_PORT, name="postgres")
    redis_proxy = FaultProxy("127.0.0.1", redis.port, name="redis")
    world = World(
        folder=folder,
        settings=settings,
        redis=redis,
        pg_proxy=pg_proxy,
        redis_proxy=redis_proxy,
        network_port=free_port(),
        network_log=folder / "network.jsonl",
        schema=f"faults_{unique}",
        prefix=f"faults:{unique}",
        port=free_port(),
    )
    try:
        await redis.start()
        pg_proxy.start()
        redis_proxy.start()
        world.write_config()
        await world.start_network()
        await world.start_switch()
        yield world
    finally:
        for serve in [world.switch] if world.switch else []:
            with contextlib.suppress(Exception):
                await serve.stop(settings.drain_seconds)
            serve.kill_session()
        with contextlib.suppress(Exception):
            await world.stop_network()
        pg_proxy.close()
        redis_proxy.close()
        await redis.kill()
        await _drop_schema(world.schema)


def _make_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)


async def _drop_schema(schema: str) -> None:
    import asyncpg

    with contextlib.suppress(OSError, asyncpg.PostgresError):
        connection = await asyncpg.connect(POSTGRES_DSN)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()


__all__ = ["RedisProcess", "SwitchProcess", "World", "WorldError", "WorldSettings", "free_port", "running_world"]
