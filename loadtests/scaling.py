"""Scaling: `switch serve --workers N` on Redis + PostgreSQL against a bare gRPC echo of N processes.

    .venv/bin/python loadtests/scaling.py [--workers 1,2,4,8,12] [--modes batch,unary]
        [--duration 5] [--warmup 1] [--clients 0] [--redis-url URL] [--postgres-dsn DSN]
        [--start-stores DIR] [--redis-cluster N] [--out DIR] [--max-seconds 0] [--extra-config PATH]

For each worker count N it starts, one after the other (never side by side):

    echo     N processes of a grpc.aio server under uvloop on one port (SO_REUSEPORT, the
             switch's own server options): Authorize answers one fixed response,
             AuthorizeBatch one per item. Requests and answers are still protobuf-parsed
             and serialized, so only the switch's logic is missing. The ceiling.
    switch   `python -m switch serve --workers N` on Redis + PostgreSQL (a fresh schema and
             key prefix for every N), everything on: durable journal, idempotency,
             velocity limits set far above what a run reaches, fees, tokenization.

Both are driven by the same load generator: C client processes (--clients; 0: max(2,
ceil(N x --clients-per-worker 0.75)), about what the echo needs), each a grpc.aio
client under uvloop with its share of 4 channels (TCP connections) per worker, so
SO_REUSEPORT's per-connection spreading reaches every worker, and its share of 8
AuthorizeBatch calls of 100 items (or 64 unary calls) per worker in flight. Clients
connect, say "ready", and start together on one wall-clock instant; calls answered
inside the measured window count, after --warmup seconds. Requests to the switch
carry fresh idempotency keys (built per call, so no call is a replay); the echo gets
a pre-built ring of the same requests (its keys mean nothing).
Every 8th answer is parsed item by item (approved / declined / error).

Passes run batch first for every N, then unary, so with --max-seconds the primary
table is complete before the optional one. --start-stores DIR starts PostgreSQL
(initdb + postgres found under DIR, fsync on, jit off) and redis-server on free
loopback ports, as user nobody when run as root, and stops them at the end; DIR/lib,
when present, is the LD_LIBRARY_PATH of those two alone. --out DIR receives
scaling.json, scaling.txt (the table) and logs.tar.gz (every server's log).
--redis-cluster N keeps the state in a Redis Cluster of N primaries that this run
starts on loopback (redis-server from DIR with --start-stores, else from PATH;
loadtests/redis_cluster.py) instead of one Redis; the table adds the busiest
primary's cores, the one that bounds a cluster.
--extra-config PATH adds a TOML file to the switch's configuration (a [batcher]
table, say), to measure a tuning knob at every worker count; the table names it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import math
import os
import platform
import pwd
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING or __package__:
    from loadtests import echo, harness, payloads, redis_cluster
else:  # run as a script (python loadtests/scaling.py): loadtests/ is sys.path[0]
    import echo
    import harness
    import payloads
    import redis_cluster

HERE = Path(__file__).resolve()
DEFAULT_REDIS_URL = harness.DEFAULT_REDIS_URL
DEFAULT_POSTGRES_DSN = harness.DEFAULT_POSTGRES_DSN
SERVICE = harness.SERVICE
MODES = ("batch", "unary")
BATCH_ITEMS = 100
KEY_LENGTH = payloads.KEY_LENGTH  # every idempotency key has this length, so templates can be spliced
KEY_TAG = payloads.KEY_TAG  # AuthorizeRequest.idempotency_key: field 1, length-delimited
READY_TIMEOUT = 90.0
CALL_TIMEOUT = 30.0
SAMPLE_EVERY = 8  # parse every 8th answer item by item
RING_CALLS = {"batch": 256, "unary": 8192}  # the echo's pre-built requests, cycled
HISTOGRAM_STEPS = 100.0  # latency buckets per e-fold: ~1 % wide
INITDB_FLAGS = ("--locale=C", "--no-sync")

SWITCH_CONFIG = """
log_level = "WARNING"

[server]
drain_seconds = 2

# The switch's own work: the in-process simulated issuer answers cards and accounts.
[routes.card]
adapter = "simulated"

[routes.instant]
adapter = "simulated"

# Velocity: every authorization moves the instrument and merchant counters; the limits
# sit far above what a run reaches, so nothing is declined by them."""
SWITCH_CONFIG += harness.VELOCITY_LIMITS
SWITCH_CONFIG += """
[[fee_schedule]]
name = "cards"
rail = "card"
percent = "2.9"
fixed = 30
min = 50
max = 200000
tiers = [ { up_to = 10000, percent = "3.4", fixed = 30 }, { percent = "2.5", fixed = 20 } ]
shares = [
  { party = "platform", percent = "50" },
  { party = "partner", percent = "50", shares = [ { party = "agent", percent = "40" } ] },
]

[[fee_schedule]]
name = "instant"
rail = "instant"
percent = "0.5"
fixed = 10
shares = [ { party = "platform", percent = "70" }, { party = "partner", percent = "30" } ]
"""


# --- results -------------------------------------------------------------------------------------


@dataclass
class Point:
    workers: int
    target: str  # echo | switch
    mode: str  # batch | unary
    clients: int
    channels: int
    in_flight: int
    authorizations_per_s: float = 0.0
    calls: int = 0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    failed_calls: dict[str, int] = field(default_factory=dict)
    item_errors: int = 0
    sampled_approved: int = 0
    sampled_declined: int = 0
    server_cores: float = 0.0  # server CPU seconds / measured second (all its processes)
    postgres_cores: float = 0.0  # PostgreSQL likewise (every backend), when this run started it
    redis_cores: float = 0.0  # Redis likewise, when this run started it (every primary of a cluster)
    redis_busiest_cores: float = 0.0  # a cluster's busiest primary alone
    client_cpu_max: float = 0.0  # the busiest client process's CPU / wall (1.0 = one core)
    client_cpu_mean: float = 0.0
    error: str = ""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.role == "echo":
        return echo.main(args.port)
    if args.role == "drive":
        return _drive_main(args)
    return _orchestrate(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="switch --workers N vs an N-process gRPC echo")
    parser.add_argument("--workers", default="1,2,4,8,12", help="worker counts, comma-separated")
    parser.add_argument("--modes", default=",".join(MODES), help="batch,unary (batch: AuthorizeBatch x100)")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per point")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each point")
    parser.add_argument("--clients", type=int, default=0, help="client processes (0: from --clients-per-worker)")
    parser.add_argument(
        "--clients-per-worker", type=float, default=0.75, help="with --clients 0: max(2, ceil(N x this))"
    )
    parser.add_argument("--channels-per-worker", type=int, default=4)
    parser.add_argument("--batch-in-flight", type=int, default=8, help="AuthorizeBatch calls in flight per worker")
    parser.add_argument("--unary-in-flight", type=int, default=64, help="Authorize calls in flight per worker")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--postgres-dsn", default=DEFAULT_POSTGRES_DSN)
    parser.add_argument("--start-stores", default="", metavar="DIR", help="start PostgreSQL + Redis found in DIR")
    parser.add_argument(
        "--redis-cluster", type=int, default=0, metavar="N", help="start a Redis Cluster of N (>= 3) primaries"
    )
    parser.add_argument("--out", default="", metavar="DIR", help="write scaling.json, scaling.txt, logs.tar.gz")
    parser.add_argument("--max-seconds", type=float, default=0.0, help="skip points that would start after this")
    parser.add_argument(
        "--extra-config",
        type=_text_of,  # read once, here: a bad path fails before anything starts
        default="",
        metavar="PATH",
        help="TOML added to the switch's configuration",
    )
    # Internal roles: the same file runs the echo server and the load generator.
    parser.add_argument("--role", choices=("scale", "echo", "drive"), default="scale", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--target", default="", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="batch", help=argparse.SUPPRESS)
    parser.add_argument("--channels", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--in-flight", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--fresh-keys", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", default="", help=argparse.SUPPRESS)
    return parser


# --- the orchestrator ----------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    processes: list[subprocess.Popen[bytes]]
    logs: list[Path]


class Stores:
    """Redis + PostgreSQL: the given URLs, or ones started from binaries in a folder."""

    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.redis_url: str = args.redis_url
        self.postgres_dsn: str = args.postgres_dsn
        self.folder = folder
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.source = Path(args.start_stores) if args.start_stores else None
        self.cluster: int = args.redis_cluster
        if self.cluster and self.cluster < 3:
            raise SystemExit("--redis-cluster: a Redis Cluster needs at least three primaries")

    @property
    def owned(self) -> bool:
        return self.source is not None

    def pids(self, name: str) -> list[int]:
        return [process.pid for started, process in self.started if started == name]

    def start(self) -> None:
        if self.source is not None:
            self._start_postgres_and_redis(self.source.resolve())
        if self.cluster:
            self._start_cluster()
        if self.started:
            print(f"# stores started: {self.postgres_dsn} {self.redis_url}", flush=True)

    def _start_cluster(self) -> None:
        """N redis-server cluster nodes (from DIR, else PATH) formed into one cluster."""
        binary = str(_find(self.source.resolve(), "redis-server")) if self.source else shutil.which("redis-server")
        if not binary:
            raise RuntimeError("--redis-cluster: no redis-server on PATH (or give --start-stores DIR)")
        env = _store_env(self.source.resolve() if self.source else None)
        ports = redis_cluster.free_ports(self.cluster)
        home = self.folder / "redis-cluster"
        for port in ports:
            self._spawn("redis", redis_cluster.node_command(binary, port, home), env, home / f"{port}.out", {})
        redis_cluster.form_cluster(ports, [process for name, process in self.started if name == "redis"])
        self.redis_url = f"redis://127.0.0.1:{ports[0]}/0"
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
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{_tail(log)}")
        pg_port, redis_port = harness.free_port(), harness.free_port()
        shm = "posix" if os.access("/dev/shm", os.W_OK) else "mmap"
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(pg_port),
            "unix_socket_directories": str(sockets),
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
            "dynamic_shared_memory_type": shm,
        }
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
        self.postgres_dsn = f"postgresql://postgres@127.0.0.1:{pg_port}/postgres"
        self._wait_ready(log, redis_log)

    def _spawn(self, name: str, command: list[str], env: dict[str, str], log: Path, extra: dict[str, Any]) -> None:
        process = harness.spawn(command, log=log, cwd=self.folder, env=env, append=True, **extra)
        self.started.append((name, process))

    def _wait_ready(self, pg_log: Path, redis_log: Path) -> None:
        import asyncpg
        import redis

        deadline = time.monotonic() + 60
        last = ""
        while time.monotonic() < deadline:
            for name, process in self.started:
                if process.poll() is not None:
                    log = pg_log if name == "postgres" else redis_log
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{_tail(log)}")
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
        raise RuntimeError(f"stores not ready after 60 s ({last}):\n{_tail(pg_log)}\n{_tail(redis_log)}")

    def stop(self) -> None:
        for name, process in reversed(self.started):
            if process.poll() is not None:
                continue
            # PostgreSQL: SIGINT is the fast shutdown; Redis: SIGTERM (a cluster node, which
            # keeps nothing and takes seconds to shut down: SIGKILL).
            stop = signal.SIGINT if name == "postgres" else (signal.SIGKILL if self.cluster else signal.SIGTERM)
            harness.send(process, stop)
            harness.reap(process, 20, group=True)

    def drop(self, schema: str, prefix: str) -> None:
        """Remove one point's schema and keys (stores this run did not start)."""
        if self.owned:
            return
        harness.drop_production_state(self.redis_url, self.postgres_dsn, schema, prefix)


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


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return f"({path}: unreadable)"


def _orchestrate(args: argparse.Namespace) -> int:
    workers = [int(part) for part in args.workers.split(",") if part.strip()]
    modes = [part.strip() for part in args.modes.split(",") if part.strip()]
    if not workers or min(workers) < 1 or not modes or set(modes) - set(MODES):
        raise SystemExit(f"--workers: positive integers; --modes: from {', '.join(MODES)}")
    if args.duration <= 0 or args.warmup < 0:
        raise SystemExit("--duration must be positive and --warmup not negative")
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="switch-scaling-"))
    folder.chmod(0o755)  # PostgreSQL runs as nobody when this runs as root
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    stores = Stores(args, folder)
    points: list[Point] = []
    notes: list[str] = []
    failed = False
    try:
        stores.start()
        for mode in sorted(modes, key=MODES.index):  # batch first: the primary table
            for count in workers:
                if args.max_seconds and time.monotonic() - started > args.max_seconds:
                    notes.append(f"{mode} x{count} workers: skipped, past --max-seconds {args.max_seconds:g}")
                    print(f"# {notes[-1]}", flush=True)
                    continue
                measured = any(not point.error for point in points)
                points += _run_workers(args, folder, stores, count, mode, measured=measured)
    except BaseException as error:
        failed = True
        notes.append(f"aborted: {error!r}")
        print(f"# ABORTED: {error}", file=sys.stderr, flush=True)
        raise
    finally:
        stores.stop()
        report = _report(args, points, notes, time.monotonic() - started, stores)
        table = render_table(report)
        if out:
            (out / "scaling.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
            (out / "scaling.txt").write_text(table)
            _pack_logs(folder, out / "logs.tar.gz")
        print()
        print(table, flush=True)
        if failed:
            print(f"# logs kept in {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    bad = any(p.error or p.failed_calls or p.item_errors for p in points)
    return 1 if bad else 0


def _run_workers(
    args: argparse.Namespace, folder: Path, stores: Stores, count: int, mode: str, *, measured: bool
) -> list[Point]:
    """Echo then switch at `count` workers. A failure before anything was measured
    (`measured` False) aborts the run; a later one is recorded and the run goes on."""
    results = []
    for target in ("echo", "switch"):
        unique = secrets.token_hex(4)
        schema, prefix = f"scale_{unique}", f"scale:{unique}"
        began = time.monotonic()
        if target == "echo":
            server = _start_echo(folder, count, mode)
        else:
            server = _start_switch(folder, stores, count, mode, schema=schema, prefix=prefix, extra=args.extra_config)
        try:
            _wait_serving(server, count)
            ready_s = time.monotonic() - began
            point = _drive(args, server, stores, workers=count, mode=mode)
            results.append(point)
            print(_progress(point, ready_s), flush=True)
            if point.error:
                raise RuntimeError(f"{target} x{count} {mode}: {point.error}")
            measured = True
        except Exception as error:
            for log in server.logs:
                print(f"--- {log.name} (tail) ---\n{_tail(log)}", file=sys.stderr)
            if not measured:
                raise
            print(f"# FAILED {target} x{count} {mode}: {error}", file=sys.stderr, flush=True)
            if not results or results[-1].target != target:
                results.append(Point(count, target, mode, 0, 0, 0, error=repr(error)[:2000]))
        finally:
            _stop(server)
            if target == "switch":
                with contextlib.suppress(Exception):
                    stores.drop(schema, prefix)
    return results


def _python_env() -> dict[str, str]:
    env = harness.clean_env()
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _start_echo(folder: Path, count: int, mode: str) -> Server:
    port = harness.free_port()
    processes, logs = [], []
    for index in range(count):
        log = folder / f"echo-{mode}-{count}w-{index}.log"
        command = [sys.executable, str(HERE), "--role", "echo", "--port", str(port)]
        processes.append(harness.spawn(command, log=log, cwd=folder, env=_python_env()))
        logs.append(log)
    return Server("echo", port, processes, logs)


def _text_of(path: str) -> str:
    if not path:  # the default: nothing added (argparse passes a string default through type too)
        return ""
    try:
        return Path(path).read_text()
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {error.strerror}") from error


def _start_switch(
    folder: Path, stores: Stores, count: int, mode: str, *, schema: str, prefix: str, extra: str = ""
) -> Server:
    config = folder / "switch.toml"
    config.write_text(SWITCH_CONFIG + "\n" + extra)
    keys = harness.write_tokenization_keys(folder / "tokenization.json")
    env = dict(
        _python_env(),
        **harness.production_env(stores.redis_url, stores.postgres_dsn, schema, prefix),
        SWITCH_TOKENIZATION_KEY_FILE=str(keys),
        SWITCH_LOG_LEVEL="INFO",  # one "serving on" line per worker tells it is up
    )
    if stores.cluster:
        env["SWITCH_REDIS_CLUSTER"] = "true"
    port = harness.free_port()
    log = folder / f"switch-{mode}-{count}w.log"
    command = [sys.executable, "-m", "switch", "serve", "--config", str(config)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(count)]
    # cwd is not the repository: `-m` puts cwd first on sys.path, and the switch must
    # come from PYTHONPATH / the installed package (where its compiled cext lives).
    process = harness.spawn(command, log=log, cwd=folder, env=env)
    return Server("switch", port, [process], [log])


def _wait_serving(server: Server, count: int) -> None:
    """Every process (echo) or every worker (switch) has said it serves."""
    deadline = time.monotonic() + READY_TIMEOUT
    marker = b"echo ready" if server.name == "echo" else b"serving on"
    while time.monotonic() < deadline:
        for process in server.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{server.name} exited with {process.returncode} before serving")
        seen = 0
        for log in server.logs:
            with contextlib.suppress(OSError):
                seen += log.read_bytes().count(marker)
        if seen >= count:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{server.name}: not all {count} processes serving after {READY_TIMEOUT:.0f} s")


def _stop(server: Server) -> None:
    for process in server.processes:
        harness.send(process, signal.SIGTERM, group=True)
    for process in server.processes:
        harness.reap(process, 20, group=True)


def _client_count(args: argparse.Namespace, workers: int) -> int:
    if args.clients > 0:
        return int(args.clients)
    return max(2, math.ceil(workers * float(args.clients_per_worker)))


def _spread(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def _drive(args: argparse.Namespace, server: Server, stores: Stores, *, workers: int, mode: str) -> Point:
    clients = _client_count(args, workers)
    channels = max(clients, args.channels_per_worker * workers)
    in_flight = (args.batch_in_flight if mode == "batch" else args.unary_in_flight) * workers
    in_flight = max(in_flight, channels)
    point = Point(workers, server.name, mode, clients, channels, in_flight)
    run_id = secrets.token_hex(3)
    procs = [
        _spawn_client(
            args, server, mode, channels=share_channels, in_flight=share_flight, run_id=f"{run_id}{index:02d}"
        )
        for index, (share_channels, share_flight) in enumerate(
            zip(_spread(channels, clients), _spread(in_flight, clients), strict=True)
        )
    ]
    try:
        _await_lines(procs, b"ready", 60.0)
        start_at = time.time() + 0.2
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"go {start_at!r}\n".encode())
            proc.stdin.flush()
        window_open = start_at + args.warmup
        server_pids = [p.pid for p in server.processes]
        time.sleep(max(0.0, window_open - time.time()))
        redis = stores.pids("redis")  # then each primary of a cluster alone
        groups = [server_pids, stores.pids("postgres"), redis, *([pid] for pid in redis)]
        server_cpu, postgres_cpu, redis_cpu, *each_redis = _cpu_spent(groups, until=window_open + args.duration)
        reports = []
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=args.duration + CALL_TIMEOUT + 30)
            if proc.returncode != 0:
                raise RuntimeError(f"load generator exited {proc.returncode}: {stderr.decode()[-2000:]}")
            reports.append(orjson.loads(stdout.splitlines()[-1]))
    except BaseException as error:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
        if isinstance(error, Exception):
            point.error = repr(error)[:2000]
            return point
        raise
    histogram: Counter[int] = Counter()
    for report in reports:
        histogram.update({int(bucket): n for bucket, n in report["histogram"].items()})
        point.calls += report["calls"]
        point.item_errors += report["item_errors"]
        point.sampled_approved += report["approved"]
        point.sampled_declined += report["declined"]
        for code, n in report["failed_calls"].items():
            point.failed_calls[code] = point.failed_calls.get(code, 0) + n
    per_call = BATCH_ITEMS if mode == "batch" else 1
    point.authorizations_per_s = point.calls * per_call / args.duration
    point.p50_ms, point.p90_ms, point.p99_ms = (_histogram_ms(histogram, f) for f in (0.50, 0.90, 0.99))
    point.server_cores = server_cpu / args.duration
    point.postgres_cores = postgres_cpu / args.duration
    point.redis_cores = redis_cpu / args.duration
    point.redis_busiest_cores = max(each_redis, default=0.0) / args.duration
    loads = [report["client_cpu_s"] / args.duration for report in reports]
    point.client_cpu_max, point.client_cpu_mean = max(loads), sum(loads) / len(loads)
    return point


def _cpu_spent(groups: list[list[int]], *, until: float) -> list[float]:
    """CPU seconds each group of processes spends from now until the wall-clock time `until`."""
    before = [harness.tree_cpu_seconds(*pids) for pids in groups]
    time.sleep(max(0.0, until - time.time()))
    return [harness.tree_cpu_seconds(*pids) - spent for pids, spent in zip(groups, before, strict=True)]


def _spawn_client(
    args: argparse.Namespace, server: Server, mode: str, *, channels: int, in_flight: int, run_id: str
) -> subprocess.Popen[bytes]:
    command = [sys.executable, str(HERE), "--role", "drive", "--target", f"127.0.0.1:{server.port}", "--mode", mode]
    command += ["--duration", str(args.duration), "--warmup", str(args.warmup)]
    command += ["--channels", str(channels), "--in-flight", str(in_flight), "--run-id", run_id]
    if server.name == "switch":
        command.append("--fresh-keys")
    return subprocess.Popen(
        command,
        cwd=server.logs[0].parent,
        env=_python_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _await_lines(procs: Sequence[subprocess.Popen[bytes]], line: bytes, timeout: float) -> None:
    """Wait for each process to print `line` on stdout."""
    waiting = {proc.stdout.fileno(): proc for proc in procs if proc.stdout is not None}
    deadline = time.monotonic() + timeout
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"{len(waiting)} load generator(s) not ready after {timeout:.0f} s")
        readable, _, _ = select.select(list(waiting), [], [], left)
        for fd in readable:
            proc = waiting[fd]
            assert proc.stdout is not None
            got = proc.stdout.readline()
            if not got:
                proc.wait(timeout=5)
                assert proc.stderr is not None
                raise RuntimeError(f"load generator exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
            if got.strip() == line:
                del waiting[fd]


def _histogram_ms(histogram: Counter[int], fraction: float) -> float:
    total = sum(histogram.values())
    if not total:
        return 0.0
    rank, seen = fraction * total, 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return math.exp((bucket + 0.5) / HISTOGRAM_STEPS) / 1000.0  # microseconds -> ms
    return 0.0


def _progress(point: Point, ready_s: float) -> str:
    text = (
        f"# {point.mode:5} {point.target:6} x{point.workers:<2} {point.authorizations_per_s:11,.0f} auth/s  "
        f"p50 {point.p50_ms:7.2f} ms  p99 {point.p99_ms:7.2f} ms  server {point.server_cores:5.2f} cores  "
        f"pg {point.postgres_cores:4.2f} redis {point.redis_cores:4.2f}  "
        f"clients {point.clients} (max {point.client_cpu_max:4.0%})  "
        f"ready in {ready_s:.1f} s"
    )
    if point.failed_calls:
        text += f"  FAILED {point.failed_calls}"
    if point.item_errors:
        text += f"  item errors {point.item_errors}"
    return text


def _report(
    args: argparse.Namespace, points: Sequence[Point], notes: Sequence[str], total: float, stores: Stores
) -> dict[str, Any]:
    import grpc

    return {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": platform.node(),
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "grpcio": grpc.__version__,
            "cext": _cext_active(),
            "stores": "started by this run" if stores.owned else "given",
            "redis_cluster": stores.cluster,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "batch_items": BATCH_ITEMS,
            "command": " ".join(sys.argv),
            "extra_config": args.extra_config,
            "total_s": round(total, 1),
        },
        "points": [asdict(point) for point in points],
        "notes": list(notes),
    }


def _cext_active() -> bool:
    try:
        from switch import native
    except ImportError:
        return False
    return native.active()


def render_table(report: dict[str, Any]) -> str:
    meta = report["meta"]
    points = report["points"]
    lines = [
        f"scaling: {meta['cpus']} CPUs, kernel {meta['kernel']}, Python {meta['python']}, grpcio {meta['grpcio']}, "
        f"cext {'on' if meta['cext'] else 'OFF'}, stores {meta['stores']}{_cluster_note(meta)}; "
        f"{meta['duration_s']:g} s per point "
        f"after {meta['warmup_s']:g} s warm-up; {meta['total_s']:.0f} s in all",
    ]
    extra = " ".join(line.strip() for line in meta.get("extra_config", "").splitlines() if line.strip())
    if extra:
        lines.append(f"switch configuration, added: {extra}")
    header = (
        "workers",
        "echo auth/s",
        "switch auth/s",
        "ratio",
        "switch p50 ms",
        "switch p99 ms",
        "echo p50/p99 ms",
        "sw x/1w",
        "echo x/1w",
        "sw cores",
        "pg/redis cores",
        "clients (max cpu)",
    )
    owned = meta["stores"] == "started by this run"  # else their CPU is not measured
    for mode in MODES:
        rows: list[tuple[str, ...]] = []
        base: dict[str, float] = {}
        for count in sorted({p["workers"] for p in points if p["mode"] == mode}):
            here = [p for p in points if p["mode"] == mode and p["workers"] == count and not p["error"]]
            echo = next((p for p in here if p["target"] == "echo"), None)
            sw = next((p for p in here if p["target"] == "switch"), None)
            for name, point in (("echo", echo), ("switch", sw)):
                if point and count == 1:
                    base[name] = point["authorizations_per_s"]
            echo_rate = echo["authorizations_per_s"] if echo else 0.0
            sw_rate = sw["authorizations_per_s"] if sw else 0.0
            rows.append(
                (
                    str(count),
                    f"{echo_rate:,.0f}" if echo else "-",
                    f"{sw_rate:,.0f}" if sw else "-",
                    f"{sw_rate / echo_rate:.3f}" if echo_rate and sw else "-",
                    f"{sw['p50_ms']:.2f}" if sw else "-",
                    f"{sw['p99_ms']:.2f}" if sw else "-",
                    f"{echo['p50_ms']:.2f}/{echo['p99_ms']:.2f}" if echo else "-",
                    f"{sw_rate / base['switch']:.2f}" if sw and base.get("switch") else "-",
                    f"{echo_rate / base['echo']:.2f}" if echo and base.get("echo") else "-",
                    f"{sw['server_cores']:.2f}" if sw else "-",
                    _store_cores(sw, cluster=bool(meta.get("redis_cluster"))) if sw and owned else "-",
                    f"{sw['clients']} ({max(sw['client_cpu_max'], echo['client_cpu_max'] if echo else 0.0):.0%})"
                    if sw
                    else "-",
                )
            )
        if not rows:
            continue
        lines.append("")
        lines.append(f"{mode} x{BATCH_ITEMS}" if mode == "batch" else "unary Authorize")
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
        lines.append("  ".join(cell.rjust(widths[i]) for i, cell in enumerate(header)))
        lines.append("  ".join("-" * width for width in widths))
        lines += ["  ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    for point in points:
        problems = []
        if point["failed_calls"]:
            problems.append(f"failed calls {point['failed_calls']}")
        if point["item_errors"]:
            problems.append(f"{point['item_errors']} item errors")
        if point["error"]:
            problems.append(point["error"][:300])
        if point["client_cpu_max"] > 0.9:
            problems.append(f"a client process at {point['client_cpu_max']:.0%} CPU: may be client-bound")
        if problems:
            lines.append(f"note: {point['mode']} {point['target']} x{point['workers']}: " + "; ".join(problems))
    lines += [f"note: {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def _cluster_note(meta: dict[str, Any]) -> str:
    primaries = meta.get("redis_cluster", 0)
    return f" (Redis: a cluster of {primaries} primaries; redis cores: all, then the busiest)" if primaries else ""


def _store_cores(point: dict[str, Any], *, cluster: bool) -> str:
    cores = f"{point['postgres_cores']:.2f}/{point['redis_cores']:.2f}"
    return f"{cores} ({point['redis_busiest_cores']:.2f})" if cluster else cores


def _pack_logs(folder: Path, path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for log in sorted(folder.glob("*.log")):
            with contextlib.suppress(OSError):
                archive.add(log, arcname=log.name)
    path.write_bytes(buffer.getvalue())


# --- the load generator --------------------------------------------------------------------------


class Payloads:
    """Serialized requests, each authorization with its own idempotency key."""

    def __init__(self, mode: str, run_id: str) -> None:
        self.mode = mode
        self.templates = payloads.templates("bench-merchant")
        # A batch item: AuthorizeBatchRequest.requests tag + length, then the key, then the rest.
        self.item_heads = [
            b"\x0a" + payloads.varint(len(KEY_TAG) + KEY_LENGTH + len(t)) + KEY_TAG for t in self.templates
        ]
        self.key_head = f"b{run_id}-".encode()
        self.width = KEY_LENGTH - len(self.key_head)
        self.next = 0

    def key(self, n: int) -> bytes:
        return self.key_head + b"%0*d" % (self.width, n)

    def build(self) -> bytes:
        count = len(self.templates)
        if self.mode == "unary":
            n = self.next
            self.next += 1
            return KEY_TAG + self.key(n) + self.templates[n % count]
        first = self.next
        self.next += BATCH_ITEMS
        parts: list[bytes] = []
        for n in range(first, first + BATCH_ITEMS):
            parts += (self.item_heads[n % count], self.key(n), self.templates[n % count])
        return b"".join(parts)


def _drive_main(args: argparse.Namespace) -> int:
    import uvloop

    built = Payloads(args.mode, args.run_id)
    if args.fresh_keys:
        source: Callable[[], bytes] = built.build
    else:
        ring = [built.build() for _ in range(RING_CALLS[args.mode])]
        cycle = _cycle(ring)
        source = cycle.__next__
    payloads.check_payload(args.mode, Payloads(args.mode, args.run_id).build(), args.run_id, BATCH_ITEMS)
    report = uvloop.run(Driver(args, source).run())
    sys.stdout.buffer.write(orjson.dumps(report) + b"\n")
    sys.stdout.flush()
    return 0


def _cycle(ring: Sequence[bytes]) -> Iterator[bytes]:
    while True:
        yield from ring


class Driver:
    """In-flight slots spread over the channels; each sends its next call when its last returns."""

    def __init__(self, args: argparse.Namespace, source: Callable[[], bytes]) -> None:
        self.args = args
        self.source = source
        self.histogram: Counter[int] = Counter()
        self.failed: dict[str, int] = {}
        self.counts = {"calls": 0, "approved": 0, "declined": 0, "item_errors": 0}
        self.window = (0.0, 0.0)

    async def run(self) -> dict[str, Any]:
        import grpc

        args = self.args
        method = f"/{SERVICE}/{'Authorize' if args.mode == 'unary' else 'AuthorizeBatch'}"
        opened = [grpc.aio.insecure_channel(args.target, options=harness.CHANNEL_OPTIONS) for _ in range(args.channels)]
        try:
            await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in opened)), 30)
            calls = [c.unary_unary(method, request_serializer=None, response_deserializer=None) for c in opened]
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            go_wall = float(line.split()[1])
            go = time.perf_counter() + (go_wall - time.time())
            self.window = (go + args.warmup, go + args.warmup + args.duration)
            await asyncio.sleep(max(0.0, go - time.perf_counter()))
            cpu = asyncio.ensure_future(self._window_cpu())
            await asyncio.gather(*(self._slot(calls[n % len(calls)]) for n in range(args.in_flight)))
            client_cpu = await cpu
        finally:
            await asyncio.gather(*(c.close(None) for c in opened))
        return {
            "calls": self.counts["calls"],
            "approved": self.counts["approved"],
            "declined": self.counts["declined"],
            "item_errors": self.counts["item_errors"],
            "failed_calls": self.failed,
            "histogram": {str(bucket): n for bucket, n in self.histogram.items()},
            "client_cpu_s": client_cpu,
        }

    async def _window_cpu(self) -> float:
        start, end = self.window
        await asyncio.sleep(max(0.0, start - time.perf_counter()))
        before = harness.own_cpu_seconds()
        await asyncio.sleep(max(0.0, end - time.perf_counter()))
        return harness.own_cpu_seconds() - before

    async def _slot(self, call: Any) -> None:
        import grpc

        start, end = self.window
        clock, source, log, histogram, counts = time.perf_counter, self.source, math.log, self.histogram, self.counts
        while True:
            began = clock()
            if began >= end:
                return
            try:
                raw = await call(source(), timeout=CALL_TIMEOUT)
            except grpc.aio.AioRpcError as error:
                if start <= clock() <= end:
                    name = error.code().name
                    self.failed[name] = self.failed.get(name, 0) + 1
                continue
            ended = clock()
            if ended < start or ended > end:
                continue
            counts["calls"] += 1
            histogram[int(log(max(ended - began, 1e-6) * 1e6) * HISTOGRAM_STEPS)] += 1
            if counts["calls"] % SAMPLE_EVERY == 0:
                self._count(raw)

    def _count(self, raw: bytes) -> None:
        from switch.v1 import switch_pb2 as pb

        if self.args.mode == "unary":
            answers = [pb.AuthorizeResponse.FromString(raw)]
        else:
            answers = list(pb.AuthorizeBatchResponse.FromString(raw).responses)
            if len(answers) != BATCH_ITEMS:
                self.counts["item_errors"] += BATCH_ITEMS - len(answers)
        for answer in answers:
            payloads.tally(self.counts, answer)


if __name__ == "__main__":
    sys.exit(main())
