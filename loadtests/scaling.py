"""Scaling: `switch serve --workers N` on Redis + PostgreSQL against a bare gRPC echo of N processes.

    .venv/bin/python loadtests/scaling.py [--workers 1,2,4,8,12] [--modes batch,unary]
        [--duration 5] [--warmup 1] [--clients 0] [--redis-url URL] [--postgres-dsn DSN]
        [--start-stores DIR] [--redis-cluster N] [--out DIR] [--max-seconds 0] [--extra-config PATH]
        [--tls-dir DIR]

For each worker count N it starts, one after the other (never side by side):

    echo     N processes of a grpc.aio server under uvloop on one port (SO_REUSEPORT, the
             switch's own server options; loadtests/echo.py): Authorize answers one fixed
             response, AuthorizeBatch one per item. Requests and answers are still
             protobuf-parsed and serialized, so only the switch's logic is missing. The ceiling.
    switch   `python -m switch serve --workers N` on Redis + PostgreSQL (a fresh schema and
             key prefix for every N), everything on (loadtests/scaling.toml): durable
             journal, idempotency, velocity limits set far above what a run reaches, fees,
             tokenization.

Both are driven by the same load generator (loadtests/loadgen.py, running the load
driver, loadtests/driver.py): C client processes (--clients; 0: max(2, ceil(N x
--clients-per-worker 0.75)), about what the echo needs), each with its share of 4
channels (TCP connections) per worker, so SO_REUSEPORT's per-connection spreading
reaches every worker, and its share of 8 AuthorizeBatch calls of 100 items (or 64
unary calls) per worker in flight. Clients connect, say "ready", and start together
on one wall-clock instant; calls sent inside the measured window count, after --warmup
seconds. Requests to the switch carry fresh idempotency keys (built per call, so no
call is a replay); the echo gets a pre-built ring of the same requests (its keys mean
nothing). Every 8th answer is parsed item by item (approved / declined / error).

Passes run batch first for every N, then unary, so with --max-seconds the primary
table is complete before the optional one. --start-stores DIR starts PostgreSQL
(initdb + postgres found under DIR, fsync on, jit off) and redis-server on free
loopback ports, as user nobody when run as root, and stops them at the end; DIR/lib,
when present, is the LD_LIBRARY_PATH of those two alone (loadtests/stores.py). --out DIR
receives scaling.json, scaling.txt (the table) and logs.tar.gz (every server's log).
--redis-cluster N keeps the state in a Redis Cluster of N primaries that this run
starts on loopback (redis-server from DIR with --start-stores, else from PATH)
instead of one Redis; the table adds the busiest primary's cores, the one that
bounds a cluster.
--extra-config PATH adds a TOML file to the switch's configuration (a [batcher]
table, say), to measure a tuning knob at every worker count; the table names it.
--tls-dir DIR (a folder made by `switch tls init`) runs every point over mutual TLS, the
echo's too: both serve DIR's server certificate and require client certificates from DIR's
CA, the switch grants DIR's client identity what the load calls ([[security.callers]]),
and every client channel presents DIR's client certificate; the table says so.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import secrets
import shutil
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import orjson

if not __package__:  # run as a script: loadtests/ is sys.path[0], the repository is not on it
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from loadtests import generators, harness, servers, stores
from loadtests.driver import Plan, histogram_ms
from loadtests.scaling_report import BATCH_ITEMS, MODES, Point, progress, render_table, report

CONFIG = Path(__file__).resolve().parent / "scaling.toml"
SAMPLE_EVERY = 8  # parse every 8th answer item by item
RING_CALLS = {"batch": 256, "unary": 8192}  # the echo's pre-built requests, cycled
READY_TIMEOUT = 90.0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run(args)


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
    parser.add_argument("--redis-url", default=harness.DEFAULT_REDIS_URL)
    parser.add_argument("--postgres-dsn", default=harness.DEFAULT_POSTGRES_DSN)
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
    parser.add_argument(
        "--tls-dir", type=Path, help="a `switch tls init` folder: every point over mutual TLS with its files"
    )
    return parser


def _text_of(path: str) -> str:
    if not path:  # the default: nothing added (argparse passes a string default through type too)
        return ""
    try:
        return Path(path).read_text()
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {error.strerror}") from error


def run(args: argparse.Namespace) -> int:
    workers = [int(part) for part in args.workers.split(",") if part.strip()]
    modes = [part.strip() for part in args.modes.split(",") if part.strip()]
    if not workers or min(workers) < 1 or not modes or set(modes) - set(MODES):
        raise SystemExit(f"--workers: positive integers; --modes: from {', '.join(MODES)}")
    if args.duration <= 0 or args.warmup < 0:
        raise SystemExit("--duration must be positive and --warmup not negative")
    args.tls_dir = servers.tls_folder(args.tls_dir)
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="switch-scaling-"))
    folder.chmod(0o755)  # PostgreSQL runs as nobody when this runs as root
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    binaries = Path(args.start_stores) if args.start_stores else None
    running = stores.Stores(args.redis_url, args.postgres_dsn, folder, binaries=binaries, cluster=args.redis_cluster)
    points: list[Point] = []
    notes: list[str] = []
    failed = False
    try:
        running.start()
        for mode in sorted(modes, key=MODES.index):  # batch first: the primary table
            for count in workers:
                if args.max_seconds and time.monotonic() - started > args.max_seconds:
                    notes.append(f"{mode} x{count} workers: skipped, past --max-seconds {args.max_seconds:g}")
                    print(f"# {notes[-1]}", flush=True)
                    continue
                measured = any(not point.error for point in points)
                points += _run_workers(args, folder, running, count, mode, measured=measured)
    except BaseException as error:
        failed = True
        notes.append(f"aborted: {error!r}")
        print(f"# ABORTED: {error}", file=sys.stderr, flush=True)
        raise
    finally:
        running.stop()
        made = report(args, points, notes, time.monotonic() - started, owned=running.owned, cluster=running.cluster)
        table = render_table(made)
        if out:
            (out / "scaling.json").write_bytes(orjson.dumps(made, option=orjson.OPT_INDENT_2))
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
    args: argparse.Namespace, folder: Path, running: stores.Stores, count: int, mode: str, *, measured: bool
) -> list[Point]:
    """Echo then switch at `count` workers. A failure before anything was measured
    (`measured` False) aborts the run; a later one is recorded and the run goes on."""
    results = []
    for target in ("echo", "switch"):
        unique = secrets.token_hex(4)
        schema, prefix = f"scale_{unique}", f"scale:{unique}"
        began = time.monotonic()
        if target == "echo":
            server = servers.echo(folder, copies=count, name=f"echo-{mode}-{count}w", tls_dir=args.tls_dir)
            server.start()
        else:
            server = _start_switch(args, folder, running, count, mode, schema=schema, prefix=prefix)
        try:
            marker = b"echo ready" if target == "echo" else b"serving on"
            servers.wait_logged(server, marker, count, READY_TIMEOUT)
            ready_s = time.monotonic() - began
            point = _drive(args, folder, server, running, target=target, workers=count, mode=mode)
            results.append(point)
            print(progress(point, ready_s), flush=True)
            if point.error:
                raise RuntimeError(f"{target} x{count} {mode}: {point.error}")
            measured = True
        except Exception as error:
            server.print_log_tails()
            if not measured:
                raise
            print(f"# FAILED {target} x{count} {mode}: {error}", file=sys.stderr, flush=True)
            if not results or results[-1].target != target:
                results.append(Point(count, target, mode, 0, 0, 0, error=repr(error)[:2000]))
        finally:
            server.stop()
            if target == "switch" and not running.owned:
                with contextlib.suppress(Exception):
                    stores.drop_state(running.redis_url, running.postgres_dsn, schema, prefix)
    return results


def _start_switch(
    args: argparse.Namespace, folder: Path, running: stores.Stores, count: int, mode: str, *, schema: str, prefix: str
) -> servers.Server:
    config = folder / "switch.toml"
    tls_config = ""
    if args.tls_dir is not None:
        from switch.cli.demo.tls import TlsFolder

        tls_config = TlsFolder.open(args.tls_dir).server_toml()
    config.write_text(CONFIG.read_text() + "\n" + args.extra_config + tls_config)
    keys = harness.write_tokenization_keys(folder / "tokenization.json")
    env = dict(
        harness.clean_env(),
        **harness.production_env(running.redis_url, running.postgres_dsn, schema, prefix, folder),
        PYTHONUNBUFFERED="1",
        SWITCH_TOKENIZATION_KEY_FILE=str(keys),
        SWITCH_LOG_LEVEL="INFO",  # one "serving on" line per worker tells it is up
    )
    if running.cluster:
        env["SWITCH_REDIS_CLUSTER"] = "true"
    if tls_config:
        del env["SWITCH_PLAINTEXT"]  # [server.tls] instead
    log = folder / f"switch-{mode}-{count}w.log"
    extra = ["--host", "127.0.0.1", "--workers", str(count)]
    # cwd is not the repository: `-m` puts cwd first on sys.path, and the switch must
    # come from PYTHONPATH / the installed package (where its compiled modules live).
    server = servers.switch(config, env, log, extra=extra, cwd=folder, tls_dir=args.tls_dir)
    server.start()
    return server


def _client_count(args: argparse.Namespace, workers: int) -> int:
    if args.clients > 0:
        return int(args.clients)
    return max(2, math.ceil(workers * float(args.clients_per_worker)))


def _spread(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def _drive(
    args: argparse.Namespace,
    folder: Path,
    server: servers.Server,
    running: stores.Stores,
    *,
    target: str,
    workers: int,
    mode: str,
) -> Point:
    clients = _client_count(args, workers)
    channels = max(clients, args.channels_per_worker * workers)
    in_flight = (args.batch_in_flight if mode == "batch" else args.unary_in_flight) * workers
    in_flight = max(in_flight, channels)
    point = Point(workers, target, mode, clients, channels, in_flight)
    run_id = secrets.token_hex(3)
    plans = [
        Plan(
            target=server.target,
            mode=mode,
            duration=args.duration,
            warmup=args.warmup,
            concurrency=share_flight,
            channels=share_channels,
            batch_items=BATCH_ITEMS,
            requests="fresh" if target == "switch" else "ring",
            pool=RING_CALLS[mode],
            run_id=f"{run_id}{index:02d}",
            sample_every=SAMPLE_EVERY,
            tls_dir=str(args.tls_dir or ""),
        )
        for index, (share_channels, share_flight) in enumerate(
            zip(_spread(channels, clients), _spread(in_flight, clients), strict=True)
        )
    ]
    redis = running.pids("redis")  # then each primary of a cluster alone
    watch = {"server": server.pids(), "postgres": running.pids("postgres"), "redis": redis}
    watch |= {f"redis {pid}": [pid] for pid in redis}
    started: list[generators.LoadGenerator] = []
    try:
        for index in range(clients):
            started.append(generators.LoadGenerator(folder / f"loadgen-{mode}-{workers}w-{index}.log", cwd=folder))
        together = generators.run_together(started, plans, watch=watch)
    except Exception as error:
        point.error = repr(error)[:2000]
        return point
    finally:
        for generator in started:
            generator.close()
    latencies: Counter[int] = Counter()
    for answer in together.reports:
        latencies.update({int(bucket): n for bucket, n in answer["histogram"].items()})
        point.calls += answer["calls"]
        point.item_errors += answer["item_errors"]
        point.sampled_approved += answer["approved"]
        point.sampled_declined += answer["declined"]
        for code, n in answer["failed_calls"].items():
            point.failed_calls[code] = point.failed_calls.get(code, 0) + n
    per_call = BATCH_ITEMS if mode == "batch" else 1
    point.authorizations_per_s = point.calls * per_call / args.duration
    point.p50_ms, point.p90_ms, point.p99_ms = (histogram_ms(latencies, f) for f in (0.50, 0.90, 0.99))
    cpu, window = together.cpu_s, together.window_s
    point.server_cores = cpu["server"] / window
    point.postgres_cores = cpu["postgres"] / window
    point.redis_cores = cpu["redis"] / window
    point.redis_busiest_cores = max((cpu[f"redis {pid}"] for pid in redis), default=0.0) / window
    loads = [answer["client_cpu_s"] / answer["elapsed"] for answer in together.reports]
    point.client_cpu_max, point.client_cpu_mean = max(loads), sum(loads) / len(loads)
    return point


def _pack_logs(folder: Path, path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for log in sorted(folder.glob("*.log")):
            with contextlib.suppress(OSError):
                archive.add(log, arcname=log.name)
    path.write_bytes(buffer.getvalue())


if __name__ == "__main__":
    sys.exit(main())
