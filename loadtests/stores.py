"""The stores of a load test, Redis and PostgreSQL, and a run's state in them
(capacity.py, scaling.py, stages.py, sizing.py).

Stores are the given URLs (this machine's Redis and PostgreSQL, by default), or ones the
run starts and stops itself:

    binaries=DIR    PostgreSQL (initdb + postgres found under DIR, fsync on, jit off) and
                    redis-server on free loopback ports, as user nobody when run as root;
                    DIR/lib, when present, is the LD_LIBRARY_PATH of those two alone
    cluster=N       a Redis Cluster of N primaries on loopback, instead of one Redis
                    (redis-server from DIR, else from PATH; loadtests/redis_cluster.py)

A run keeps its state in a schema and a key prefix of its own: empty_state() clears it
between runs, drop_state() removes it at the end.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from loadtests import harness, redis_cluster

INITDB_FLAGS = ("--locale=C", "--no-sync")
READY_TIMEOUT = 60.0
# PostgreSQL for a benchmark: durable commits as in production, no JIT (its compile time
# would land in the first runs), room for every worker's pool.
POSTGRES_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "on",
    "synchronous_commit": "on",
    "jit": "off",
    "max_connections": "400",
    "shared_buffers": "256MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
    "timezone": "GMT",
    "log_timezone": "GMT",
    "huge_pages": "off",
}


class Stores:
    """Redis + PostgreSQL for one run: given, or started in `folder` (see the module's doc)."""

    def __init__(
        self,
        redis_url: str,
        postgres_dsn: str,
        folder: Path,
        *,
        binaries: Path | None = None,
        cluster: int = 0,
    ) -> None:
        if cluster and cluster < 3:
            raise SystemExit("--redis-cluster: a Redis Cluster needs at least three primaries")
        self.redis_url = redis_url
        self.postgres_dsn = postgres_dsn
        self.folder = folder
        self.binaries = binaries.resolve() if binaries is not None else None
        self.cluster = cluster
        self.redis_urls = [redis_url]  # each primary's, for a cluster
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    @property
    def owned(self) -> bool:
        """PostgreSQL and Redis were started by this run (their CPU is theirs alone)."""
        return self.binaries is not None

    def pids(self, name: str) -> list[int]:
        """The processes this run started: "postgres" or "redis" (every cluster node)."""
        return [process.pid for started, process in self.started if started == name]

    def __enter__(self) -> Stores:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self.binaries is not None:
            self._start_postgres_and_redis(self.binaries)
        if self.cluster:
            self._start_cluster()
        if self.started:
            print(f"# stores started: {self.postgres_dsn} {self.redis_url}", flush=True)

    def stop(self) -> None:
        for name, process in reversed(self.started):
            if process.poll() is not None:
                continue
            # PostgreSQL: SIGINT is the fast shutdown; Redis: SIGTERM (a cluster node, which
            # keeps nothing and takes seconds to shut down: SIGKILL).
            stop = signal.SIGINT if name == "postgres" else (signal.SIGKILL if self.cluster else signal.SIGTERM)
            harness.send(process, stop)
            harness.reap(process, 20, group=True)
        self.started = []

    def _spawn(self, name: str, command: list[str], env: dict[str, str], log: Path, extra: dict[str, Any]) -> None:
        process = harness.spawn(command, log=log, cwd=self.folder, env=env, append=True, **extra)
        self.started.append((name, process))

    def _start_cluster(self) -> None:
        """N redis-server cluster nodes (from DIR, else PATH) formed into one cluster."""
        binary = str(_find(self.binaries, "redis-server")) if self.binaries else shutil.which("redis-server")
        if not binary:
            raise RuntimeError("--redis-cluster: no redis-server on PATH (or give --start-stores DIR)")
        env = _store_env(self.binaries)
        ports = redis_cluster.free_ports(self.cluster)
        home = self.folder / "redis-cluster"
        for port in ports:
            self._spawn("redis", redis_cluster.node_command(binary, port, home), env, home / f"{port}.out", {})
        redis_cluster.form_cluster(ports, [process for name, process in self.started if name == "redis"])
        self.redis_urls = [f"redis://127.0.0.1:{port}/0" for port in ports]
        self.redis_url = self.redis_urls[0]
        print(f"# Redis Cluster started: {len(ports)} primaries on {', '.join(map(str, ports))}", flush=True)

    def _start_postgres_and_redis(self, source: Path) -> None:
        postgres, initdb, redis_server = (_find(source, name) for name in ("postgres", "initdb", "redis-server"))
        env = _store_env(source)
        as_user: dict[str, Any] = {}
        if os.geteuid() == 0:  # PostgreSQL refuses root: run it as nobody
            try:
                entry = pwd.getpwnam("nobody")
                uid, gid = entry.pw_uid, entry.pw_gid
            except KeyError:
                uid = gid = 65534
            as_user = {"user": uid, "group": gid, "extra_groups": []}
            if not _world_traversable(source):  # nobody must reach the binaries: use a copy
                given, source = source, self.folder / "stores"
                shutil.copytree(given, source, symlinks=True)
                source.chmod(0o755)
                postgres, initdb = (_find(source, name) for name in ("postgres", "initdb"))
                if "LD_LIBRARY_PATH" in env:
                    env["LD_LIBRARY_PATH"] = str(source / "lib")
        data, sockets = self.folder / "pgdata", self.folder / "pgsock"
        for path in (data, sockets):
            path.mkdir(mode=0o700)
            if as_user:
                os.chown(path, as_user["user"], as_user["group"])
        log = self.folder / "postgres.log"
        with log.open("ab") as out:
            done = subprocess.run(
                [str(initdb), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", *INITDB_FLAGS],
                cwd=self.folder,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
                **as_user,
            )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{harness.log_tail(log)}")
        pg_port, redis_port = harness.free_port(), harness.free_port()
        settings = dict(POSTGRES_SETTINGS, port=str(pg_port), unix_socket_directories=str(sockets))
        settings["dynamic_shared_memory_type"] = "posix" if os.access("/dev/shm", os.W_OK) else "mmap"
        command = [str(postgres), "-D", str(data)]
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        self._spawn("postgres", command, env, log, as_user)
        redis_log = self.folder / "redis.log"
        if not self.cluster:  # else the cluster's nodes are started next
            redis_command = [str(redis_server), "--bind", "127.0.0.1", "--port", str(redis_port), "--save", ""]
            redis_command += ["--appendonly", "no", "--protected-mode", "no", "--daemonize", "no"]
            redis_command += ["--dir", str(self.folder), "--logfile", ""]
            self._spawn("redis", redis_command, env, redis_log, {})
            self.redis_url = f"redis://127.0.0.1:{redis_port}/0"
            self.redis_urls = [self.redis_url]
        self.postgres_dsn = f"postgresql://postgres@127.0.0.1:{pg_port}/postgres"
        self._wait_ready(log, redis_log)

    def _wait_ready(self, pg_log: Path, redis_log: Path) -> None:
        import asyncpg
        import redis

        deadline = time.monotonic() + READY_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            for name, process in self.started:
                if process.poll() is not None:
                    log = pg_log if name == "postgres" else redis_log
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{harness.log_tail(log)}")
            try:
                if not self.cluster:  # a cluster's nodes are waited for as it is formed
                    client = redis.Redis.from_url(self.redis_url)
                    try:
                        client.ping()
                    finally:
                        client.close()

                async def check() -> None:
                    connection = await asyncpg.connect(self.postgres_dsn, timeout=2)
                    try:
                        await connection.fetchval("SELECT 1")
                    finally:
                        await connection.close()

                asyncio.run(check())
                return
            except Exception as error:
                last = repr(error)
                time.sleep(0.2)
        raise RuntimeError(
            f"stores not ready after {READY_TIMEOUT:.0f} s ({last}):\n"
            f"{harness.log_tail(pg_log)}\n{harness.log_tail(redis_log)}"
        )


def _store_env(source: Path | None) -> dict[str, str]:
    """The environment of a store process: source/lib, when present, is its LD_LIBRARY_PATH alone."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TZ": "GMT", "LC_ALL": "C", "LANG": "C"}
    if source is not None and (source / "lib").is_dir():
        env["LD_LIBRARY_PATH"] = str(source / "lib")
    return env


def _find(root: Path, name: str) -> Path:
    found = sorted(path for path in root.rglob(name) if path.is_file() and os.access(path, os.X_OK))
    if not found:
        raise RuntimeError(f"--start-stores: no executable {name} under {root}")
    return found[0]


def _world_traversable(path: Path) -> bool:
    return all(os.stat(part).st_mode & 0o001 for part in (path, *path.parents))


# --- a run's state ---------------------------------------------------------------------------------


def drop_state(redis_url: str, postgres_dsn: str, schema: str, prefix: str) -> None:
    """Remove one run's Redis keys (prefix:*) and PostgreSQL schema."""
    _delete_keys(redis_url, prefix)
    _run_sql(postgres_dsn, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def empty_state(redis_url: str, postgres_dsn: str, schema: str, prefix: str) -> None:
    """Empty one run's Redis keys and journal tables, keeping the schema (a running switch
    keeps its connections and prepared statements)."""
    _delete_keys(redis_url, prefix)
    _run_sql(postgres_dsn, f'TRUNCATE "{schema}".reversals, "{schema}".journal_entries, "{schema}".transactions')


def _delete_keys(redis_url: str, prefix: str) -> None:
    import redis
    from redis.cluster import RedisCluster

    client: Any = redis.Redis.from_url(redis_url)
    if client.info("cluster").get("cluster_enabled"):
        client.close()
        client = RedisCluster.from_url(redis_url)  # scans every primary; splits a DEL by slot
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


def _run_sql(postgres_dsn: str, statement: str) -> None:
    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(postgres_dsn)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())
