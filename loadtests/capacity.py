"""The capacity benchmark: the switch against a bare gRPC echo of the same service.

    .venv/bin/python loadtests/capacity.py [--quick] [--duration 5] [--repeats 3]
        [--stores embedded,production] [--rows a,b] [--modes unary,batch,stream]
        [--concurrency 64] [--batch-concurrency 8] [--batch-items 100]
        [--streams 4] [--stream-window 256] [--channels 4] [--load 0.8]
        [--json PATH] [--strict] [--keep-logs]

It starts everything it drives, each in its own process, and so is the load
generator, so client and servers never share a GIL:

    echo            a grpc.aio server under uvloop implementing switch.v1.Switch with no
                    logic: Authorize returns one fixed response, AuthorizeBatch one per
                    item, AuthorizeStream one per request carrying its idempotency_key.
                    The ceiling for this machine and this load generator.
    embedded (a)    `python -m switch serve --config loadtests/capacity.toml` on memory +
                    SQLite (a temporary file): the switch's own work, cards and accounts
                    answered by the in-process simulated issuer.
    embedded (b)    the same with the `card` route on the real ISO 8583 adapter, talking
                    to `python -m switch sim card` in a process of its own (accounts stay
                    on the simulated `instant` route). The simulator's CPU is reported
                    apart and not counted as the switch's.
    production (a)  row (a) on this machine's Redis and PostgreSQL (SWITCH_REDIS_URL /
    production (b)  SWITCH_POSTGRES_DSN), in a fresh schema and key prefix per run that
                    are removed at the end.

capacity.toml turns everything on: durable journal, idempotency, velocity limits
(set far above what a run reaches, so they count without declining), fees with
tiers and revenue shares, and tokenization (a key file written per run).

One load generator process drives every target the same way: several channels
(one TCP connection each), pre-built serialized requests with a unique
idempotency key spliced into each (so no call is a replay) and varied cards,
accounts, merchants and amounts. Modes: unary Authorize (N calls in flight),
AuthorizeBatch (N calls of --batch-items in flight) and AuthorizeStream
(bidirectional: --streams streams, each with --stream-window requests in flight,
answers matched to requests by idempotency_key).

Each target and mode gets two phases:

    max rate    closed loop: every in-flight slot sends its next request when its
                last answer arrives. auth/s, p50 and p99 (per call; per request on a
                stream), and the server's CPU come from this phase.
    @80%        open loop at --load (0.8) of that target's median max rate: requests
                are sent on a fixed schedule whatever the answers do, and latency runs
                from each request's scheduled send time, so a stalled server is not
                hidden by a client that waits for it (coordinated omission).

Every production run starts on empty journal tables and Redis keys (truncated,
not dropped, so the running switch keeps its connections): otherwise what the rows,
modes and repeats before it wrote (a million rows and more) and PostgreSQL's
background work on it would change what a later run measures. Runs are interleaved
(echo, embedded, production, then again) so drift on a shared machine hits every
target alike; the table shows medians of --repeats runs and
the ratio to the echo of the same mode. It prints a markdown table (date,
machine, versions and command included), the targets of the capacity issue and
whether each holds ("not measured" when runs are shorter than 3 s, as --quick's are),
and with --json PATH writes the same as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import gc
import os
import platform
import re
import secrets
import select
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING or __package__:
    from loadtests import echo, harness, payloads
else:  # run as a script (python loadtests/capacity.py): loadtests/ is sys.path[0]
    import echo
    import harness
    import payloads

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve()
CONFIG = HERE.parent / "capacity.toml"
DEFAULT_REDIS_URL = harness.DEFAULT_REDIS_URL
DEFAULT_POSTGRES_DSN = harness.DEFAULT_POSTGRES_DSN
SERVICE = harness.SERVICE
MODES = ("unary", "batch", "stream")
STORE_SETS = ("embedded", "production")
ROWS = ("a", "b")
KEY_LENGTH = payloads.KEY_LENGTH  # every idempotency key has this length, so templates can be spliced
KEY_TAG = payloads.KEY_TAG
READY_TIMEOUT = 60.0
CALL_TIMEOUT = 30.0
OPEN_SENDERS_PER_SLOT = 4  # open loop: senders per closed-loop slot, so calls can pile up 4x deep
# Pre-built authorizations per second of a target's first closed-loop run of a mode:
# more than a run sends on this kind of machine. Later runs size their pool from the
# fastest earlier run; a run that still uses it all says so ("count-bound").
FIRST_POOL_PER_S = {"unary": 30_000, "batch": 200_000, "stream": 100_000}

# The capacity issue's targets for row (a) on Redis + PostgreSQL.
TARGET_UNARY_RATIO = 0.6
TARGET_BULK_RATE = 50_000.0
TARGET_P99_MS = 50.0
# Shorter runs are not judged against the targets: a --quick run (1.5 s) measured the
# echo at half its rate and the switch at 1.3x it, warm-up and ramp-down dominating.
MIN_TARGET_RUN_S = 3.0


# --- the orchestrator ----------------------------------------------------------------------------


@dataclass
class Target:
    key: str  # "echo", "embedded-a", ...
    label: str  # "embedded (a) simulated"
    command: list[str]
    env: dict[str, str]
    log: Path
    port: int
    sim: Target | None = None  # (b): the ISO 8583 simulator this switch talks to
    process: subprocess.Popen[bytes] | None = None


@dataclass(frozen=True)
class RunResult:
    target: str
    mode: str
    phase: str  # "max" (closed loop) or "load" (open loop at --load of the max)
    offered_per_s: float  # open loop: the scheduled rate; closed loop: 0
    authorizations_per_s: float
    p50_ms: float
    p99_ms: float
    calls: int
    authorizations: int
    failed_calls: int
    item_errors: int
    declined: int
    count_bound: bool
    server_cpu_us: float  # server CPU time per authorization (the switch's process tree)
    server_cores: float  # server CPU time / wall time (1.0 = one core busy)
    sim_cores: float  # the ISO 8583 simulator's CPU time / wall time
    store_cores: float  # PostgreSQL's and Redis's CPU time / wall time (this machine's, all of it)
    client_cores: float  # the load generator's CPU time / wall time
    failures: dict[str, int] = field(default_factory=dict)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.role == "echo":
        return echo.main(args.port)
    if args.role == "drive":
        return _drive_main()
    if args.role == "probe":
        return _probe_main(args.target, args.timeout)
    return _orchestrate(args, list(sys.argv[1:] if argv is None else argv))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="switch capacity vs a bare gRPC echo server")
    parser.add_argument("--quick", action="store_true", help="CI-sized: 1.5 s runs, one repeat, smaller pools")
    parser.add_argument("--duration", type=float, help="measured seconds per run (default 5; --quick 1.5)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds before each run (default 0.5; --quick 0.3)")
    parser.add_argument("--repeats", type=int, help="runs per target, mode and phase (default 3; --quick 1)")
    parser.add_argument("--concurrency", type=int, default=64, help="unary calls in flight")
    parser.add_argument("--batch-concurrency", type=int, default=8, help="AuthorizeBatch calls in flight")
    parser.add_argument("--batch-items", type=int, default=100, help="authorizations per AuthorizeBatch call")
    parser.add_argument("--streams", type=int, default=4, help="AuthorizeStream streams")
    parser.add_argument("--stream-window", type=int, default=256, help="requests in flight per stream")
    parser.add_argument("--channels", type=int, default=4, help="client channels (one connection each)")
    parser.add_argument("--load", type=float, default=0.8, help="open-loop rate as a share of the max rate")
    parser.add_argument("--stores", default=",".join(STORE_SETS), help="embedded,production")
    parser.add_argument("--rows", default=",".join(ROWS), help="a (simulated issuer), b (ISO 8583 + simulator)")
    parser.add_argument("--modes", default=",".join(MODES), help="unary,batch,stream")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the switch's configuration for row (a)")
    parser.add_argument("--redis-url", default=os.environ.get("SWITCH_REDIS_URL") or DEFAULT_REDIS_URL)
    parser.add_argument("--postgres-dsn", default=os.environ.get("SWITCH_POSTGRES_DSN") or DEFAULT_POSTGRES_DSN)
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 2 when a target of the issue does not hold")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs (printed path)")
    # Internal roles: the same file runs the echo server, the load generator and the probe.
    parser.add_argument("--role", choices=("bench", "echo", "drive", "probe"), default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--target", default="", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=READY_TIMEOUT, help=argparse.SUPPRESS)
    return parser


def _split(value: str, allowed: Sequence[str], flag: str) -> list[str]:
    chosen = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [part for part in chosen if part not in allowed]
    if unknown or not chosen:
        raise SystemExit(f"{flag}: choose from {', '.join(allowed)} (got {value!r})")
    return [part for part in allowed if part in chosen]


def _settle_defaults(args: argparse.Namespace) -> None:
    quick = args.quick
    if args.duration is None:
        args.duration = 1.5 if quick else 5.0
    if args.warmup is None:
        args.warmup = 0.3 if quick else 0.5
    if args.repeats is None:
        args.repeats = 1 if quick else 3
    positive = (args.duration, args.repeats, args.concurrency, args.batch_concurrency, args.batch_items)
    if min(positive) <= 0 or min(args.streams, args.stream_window, args.channels) < 1 or args.warmup < 0:
        raise SystemExit("durations, repeats, concurrencies, streams, windows and channels must be positive")
    if not 0 < args.load <= 1:
        raise SystemExit("--load: a share of the max rate, in (0, 1]")


def _orchestrate(args: argparse.Namespace, argv: list[str]) -> int:
    _settle_defaults(args)
    modes = _split(args.modes, MODES, "--modes")
    stores = _split(args.stores, STORE_SETS, "--stores")
    rows = _split(args.rows, ROWS, "--rows")
    meta = _meta(args, argv)
    folder = Path(tempfile.mkdtemp(prefix="switch-capacity-"))
    unique = secrets.token_hex(4)
    schema, prefix = f"capacity_{unique}", f"capacity:{unique}"
    targets = _targets(args, folder, stores=stores, rows=rows, schema=schema, prefix=prefix)
    results: list[RunResult] = []
    started = time.monotonic()
    failed = False
    driver: Generator | None = None
    try:
        _start_all(targets)
        driver = Generator(folder / "loadgen.log")
        print(
            f"# {len(targets)} target(s) ready; {len(modes)} mode(s) x {args.repeats} repeat(s) x 2 phases, "
            f"{args.duration:g} s each (+{args.warmup:g} s warm-up)",
            flush=True,
        )
        _run_all(args, driver, modes, targets, results, schema=schema, prefix=prefix)
    except BaseException:
        failed = True
        for target in targets:
            _print_log_tail(target)
            if target.sim is not None:
                _print_log_tail(target.sim)
        if driver is not None:
            _print_tail("load generator", driver.log)
        raise
    finally:
        if driver is not None:
            driver.close()
        for target in targets:
            _stop(target)
            if target.sim is not None:
                _stop(target.sim)
        if "production" in stores:
            _drop_production_state(args, schema, prefix)
        if args.keep_logs or failed:
            print(f"# logs kept in {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    meta["total_s"] = round(time.monotonic() - started, 1)
    report = build_report(args, meta, modes, targets, results)
    print()
    print(render_markdown(report))
    if args.json:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    if any(r.failed_calls or r.item_errors for r in results):
        return 1
    if args.strict and any(t["holds"] is False for t in report["targets"]):
        return 2
    return 0


def _start_all(targets: Sequence[Target]) -> None:
    """The simulators first (the (b) switches connect to them as they start), then the servers."""
    sims = [target.sim for target in targets if target.sim is not None]
    for sim in sims:
        _start(sim)
    for sim in sims:
        _wait_listening(sim)
    for target in targets:
        _start(target)
    for target in targets:
        _wait_ready(target)


def _run_all(
    args: argparse.Namespace,
    driver: Generator,
    modes: Sequence[str],
    targets: Sequence[Target],
    results: list[RunResult],
    *,
    schema: str,
    prefix: str,
) -> None:
    """For each mode: the max-rate runs of every target, interleaved, then the open-loop runs
    at --load of each target's median max rate."""
    for mode in modes:
        for phase in ("max", "load"):
            for repeat in range(args.repeats):
                for target in targets:
                    rate = 0.0
                    if phase == "load":
                        best = _median_rate(results, target.key, mode)
                        if best <= 0:
                            continue
                        rate = best * args.load
                    pool = _pool(args, results, target, mode, rate)
                    if target.key.startswith("production"):
                        # Every run starts on empty tables: what came before (another
                        # row, mode or repeat) must not change what this run measures.
                        harness.empty_production_state(args.redis_url, args.postgres_dsn, schema, prefix)
                    result = driver.run(args, target, mode=mode, phase=phase, rate=rate, pool=pool)
                    results.append(result)
                    _print_progress(result, repeat)


def _meta(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    import google.protobuf
    import grpc

    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    from importlib.metadata import PackageNotFoundError, version

    try:
        uvloop_version = version("uvloop")
    except PackageNotFoundError:  # pragma: no cover - uvloop is a dependency
        uvloop_version = "-"
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "protobuf": google.protobuf.__version__,
        "uvloop": uvloop_version,
        "command": "python loadtests/capacity.py" + (" " + shlex.join(argv) if argv else ""),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "repeats": args.repeats,
        "concurrency": {
            "unary_calls": args.concurrency,
            "batch_calls": args.batch_concurrency,
            "batch_items": args.batch_items,
            "streams": args.streams,
            "stream_window": args.stream_window,
            "channels": args.channels,
        },
        "load_share": args.load,
    }


def _targets(
    args: argparse.Namespace, folder: Path, *, stores: Sequence[str], rows: Sequence[str], schema: str, prefix: str
) -> list[Target]:
    base_env = harness.clean_env()
    key_file = harness.write_tokenization_keys(folder / "tokenization-keys.json")
    key_file.chmod(0o600)
    base_env["SWITCH_TOKENIZATION_KEY_FILE"] = str(key_file)
    config_a = args.config.read_text()
    targets = [
        Target(
            "echo",
            "echo",
            [sys.executable, str(HERE), "--role", "echo", "--port", "{port}"],
            {k: v for k, v in base_env.items() if k != "SWITCH_TOKENIZATION_KEY_FILE"},
            folder / "echo.log",
            harness.free_port(),
        )
    ]
    for store in stores:
        store_env = dict(base_env)
        if store == "production":
            store_env.update(harness.production_env(args.redis_url, args.postgres_dsn, schema, prefix))
        for row in rows:
            key = f"{store}-{row}"
            env = dict(store_env)
            if store == "embedded":  # a journal file each: SQLite's is one process's
                env["SWITCH_SQLITE_PATH"] = str(folder / "embedded" / f"{key}.sqlite3")
            sim: Target | None = None
            if row == "a":
                text = config_a
            else:
                sim_port = harness.free_port()
                sim = Target(
                    f"{key}-sim",
                    f"ISO 8583 simulator for {store} (b)",
                    [sys.executable, "-m", "switch", "sim", "card", "--port", "{port}"],
                    dict(base_env),
                    folder / f"{key}-sim.log",
                    sim_port,
                )
                text = config_b(config_a, sim_port)
            config_path = folder / f"{key}.toml"
            config_path.write_text(text)
            serve = [sys.executable, "-m", "switch", "serve", "--config", str(config_path), "--port", "{port}"]
            label = f"{store} (a) simulated" if row == "a" else f"{store} (b) ISO 8583"
            targets.append(Target(key, label, serve, dict(env), folder / f"{key}.log", harness.free_port(), sim))
    return targets


_CARD_ROUTE = re.compile(r"^\[routes\.card\]\n(?:(?!\[).*\n?)*", re.MULTILINE)


def config_b(config_a: str, sim_port: int) -> str:
    """Row (b)'s configuration: row (a)'s with the `card` route on the ISO 8583 adapter."""
    block = (
        "[routes.card]\n"
        'adapter = "card_iso8583"\n'
        'rail = "card"\n'
        f'options = {{ host = "127.0.0.1", port = {sim_port} }}\n\n'
    )
    text, replaced = _CARD_ROUTE.subn(block, config_a, count=1)
    parsed = tomllib.loads(text)
    card = parsed.get("routes", {}).get("card", {})
    if replaced != 1 or card.get("adapter") != "card_iso8583":
        raise SystemExit("the configuration of row (a) has no [routes.card] table to put the ISO 8583 adapter on")
    return text


def _start(target: Target) -> None:
    command = [part.replace("{port}", str(target.port)) for part in target.command]
    target.log.parent.mkdir(parents=True, exist_ok=True)
    target.process = harness.spawn(command, log=target.log, cwd=ROOT, env=target.env)


def _wait_listening(target: Target) -> None:
    assert target.process is not None
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if target.process.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", target.port), timeout=1.0):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{target.label} did not start listening on port {target.port}")


def _wait_ready(target: Target) -> None:
    """Waits for the target's health service to say SERVING; fails at once if it exits."""
    assert target.process is not None
    probe = subprocess.Popen(
        [sys.executable, str(HERE), "--role", "probe", "--target", f"127.0.0.1:{target.port}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + READY_TIMEOUT + 15
    while probe.poll() is None and target.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if probe.poll() is None:
        probe.kill()
    said = probe.communicate()[0].strip()
    if probe.returncode != 0 or target.process.poll() is not None:
        raise RuntimeError(f"{target.label} did not become ready (see its log {target.log}): {said}")


def _median_rate(results: Sequence[RunResult], target: str, mode: str) -> float:
    runs = [r.authorizations_per_s for r in results if r.target == target and r.mode == mode and r.phase == "max"]
    return statistics.median(runs) if runs else 0.0


def _pool(args: argparse.Namespace, results: Sequence[RunResult], target: Target, mode: str, rate: float) -> int:
    """Calls (stream: requests) to pre-build for one run."""
    per_call = args.batch_items if mode == "batch" else 1
    seconds = args.duration + args.warmup
    if rate:  # open loop: exactly the schedule, plus a margin
        return int(rate / per_call * seconds * 1.05) + 16
    earlier = [r for r in results if r.target == target.key and r.mode == mode and not r.count_bound]
    if not earlier:
        return max(200, int(FIRST_POOL_PER_S[mode] * seconds / per_call))
    calls_per_s = max(r.authorizations_per_s for r in earlier) / per_call
    return max(200, int(3 * calls_per_s * seconds))


def _print_progress(result: RunResult, repeat: int) -> None:
    phase = "max" if result.phase == "max" else f"@{result.offered_per_s:,.0f}/s"
    print(
        f"#   {result.mode:6} {phase:>12} run {repeat + 1}: {result.target:13} "
        f"{result.authorizations_per_s:9.0f} auth/s  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
        f"server {result.server_cpu_us:6.1f} us/auth {result.server_cores:4.2f} cores  "
        f"client {result.client_cores:4.2f} cores"
        + (f"  sim {result.sim_cores:4.2f} cores" if result.sim_cores else "")
        + (f"  stores {result.store_cores:4.2f} cores" if result.store_cores > 0.01 else "")
        + (f"  failed calls {result.failures}" if result.failed_calls else "")
        + (f"  item errors {result.item_errors}" if result.item_errors else "")
        + ("  (count-bound)" if result.count_bound else ""),
        flush=True,
    )


class Generator:
    """The load generator: one process for the whole benchmark, one JSON command a run."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, str(HERE), "--role", "drive"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            start_new_session=True,
        )

    def run(
        self, args: argparse.Namespace, target: Target, *, mode: str, phase: str, rate: float, pool: int
    ) -> RunResult:
        assert target.process is not None
        for process in (target.process, target.sim.process if target.sim else None):
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{target.label}: a process exited with {process.returncode}")
        concurrency = {"unary": args.concurrency, "batch": args.batch_concurrency, "stream": args.streams}[mode]
        command = {
            "target": f"127.0.0.1:{target.port}",
            "mode": mode,
            "phase": phase,
            "rate": rate,
            "duration": args.duration,
            "warmup": args.warmup,
            "concurrency": concurrency,
            "window": args.stream_window,
            "channels": args.channels,
            "batch_items": args.batch_items,
            "pool": pool,
            "run_id": secrets.token_hex(4),
            "server_pid": target.process.pid,
            "sim_pid": target.sim.process.pid if target.sim and target.sim.process else 0,
            "store_pids": list(harness.store_pids()),
        }
        report = self._ask(command, args.duration + args.warmup + CALL_TIMEOUT + 120)
        if "error" in report:
            raise RuntimeError(f"load generator failed on {target.label}/{mode}/{phase}: {report['error']}")
        return run_result(target.key, mode, phase, rate, report)

    def _ask(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(orjson.dumps(command) + b"\n")
        stdin.flush()
        ready, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if ready else b""
        if not line:
            raise RuntimeError(f"the load generator gave no answer (exit code {self.process.poll()})")
        answer: dict[str, Any] = orjson.loads(line)
        return answer

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        harness.reap(self.process, 10)
        self._log_file.close()


def run_result(target: str, mode: str, phase: str, rate: float, report: dict[str, Any]) -> RunResult:
    """One run's figures from the load generator's report."""
    elapsed = report["elapsed"] or 1e-9
    authorizations = report["authorizations"]

    def spent(name: str) -> float:
        # CPU read from /proc twice: a process outside the trees' reach (one that
        # exited unreaped) can make the second reading smaller. Never below zero.
        return max(0.0, float(report[name]))

    return RunResult(
        target=target,
        mode=mode,
        phase=phase,
        offered_per_s=rate,
        authorizations_per_s=authorizations / elapsed,
        p50_ms=report["p50_ms"],
        p99_ms=report["p99_ms"],
        calls=report["calls"],
        authorizations=authorizations,
        failed_calls=sum(report["failed_calls"].values()),
        item_errors=report["item_errors"],
        declined=report["declined"],
        count_bound=report["count_bound"],
        server_cpu_us=spent("server_cpu_s") * 1e6 / max(authorizations, 1),
        server_cores=spent("server_cpu_s") / elapsed,
        sim_cores=spent("sim_cpu_s") / elapsed,
        store_cores=spent("store_cpu_s") / elapsed,
        client_cores=spent("client_cpu_s") / elapsed,
        failures=dict(report["failed_calls"]),
    )


def _stop(target: Target) -> None:
    harness.stop(target.process, timeout=15)


def _print_log_tail(target: Target) -> None:
    _print_tail(target.label, target.log)


def _print_tail(name: str, path: Path) -> None:
    with contextlib.suppress(OSError):
        tail = path.read_text(errors="replace")[-3000:]
        if tail.strip():
            print(f"--- {name} log (tail) ---\n{tail}", file=sys.stderr)


def _drop_production_state(args: argparse.Namespace, schema: str, prefix: str) -> None:
    harness.drop_production_state(args.redis_url, args.postgres_dsn, schema, prefix)


# --- the report ------------------------------------------------------------------------------------


def _mode_label(mode: str, batch_items: int) -> str:
    return f"batch x{batch_items}" if mode == "batch" else mode


def build_report(
    args: argparse.Namespace,
    meta: dict[str, Any],
    modes: Sequence[str],
    targets: Sequence[Target],
    results: Sequence[RunResult],
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for mode in modes:
        echo_rate = 0.0
        for target in targets:
            runs = [r for r in results if r.target == target.key and r.mode == mode and r.phase == "max"]
            loaded = [r for r in results if r.target == target.key and r.mode == mode and r.phase == "load"]
            if not runs:
                continue
            rate = statistics.median(r.authorizations_per_s for r in runs)
            if target.key == "echo":
                echo_rate = rate
            row: dict[str, Any] = {
                "target": target.key,
                "label": target.label,
                "mode": mode,
                "authorizations_per_s": round(rate, 1),
                "p50_ms": round(statistics.median(r.p50_ms for r in runs), 3),
                "p99_ms": round(statistics.median(r.p99_ms for r in runs), 3),
                "p99_at_load_ms": round(statistics.median(r.p99_ms for r in loaded), 3) if loaded else None,
                "p50_at_load_ms": round(statistics.median(r.p50_ms for r in loaded), 3) if loaded else None,
                "offered_at_load_per_s": round(statistics.median(r.offered_per_s for r in loaded), 1)
                if loaded
                else None,
                "achieved_at_load_per_s": round(statistics.median(r.authorizations_per_s for r in loaded), 1)
                if loaded
                else None,
                "vs_echo": round(rate / echo_rate, 4) if echo_rate else None,
                "server_cpu_us_per_auth": round(statistics.median(r.server_cpu_us for r in runs), 1),
                "server_cores": round(statistics.median(r.server_cores for r in runs), 3),
                "sim_cores": round(statistics.median(r.sim_cores for r in runs), 3) if target.sim else None,
                "store_cores": round(statistics.median(r.store_cores for r in runs), 3),
                "client_cores": round(statistics.median(r.client_cores for r in runs), 3),
                "runs_per_s": [round(r.authorizations_per_s, 1) for r in runs],
                "calls": sum(r.calls for r in runs),  # of the max-rate runs (stream: requests)
                "authorizations": sum(r.authorizations for r in runs),
                "failed_calls": sum(r.failed_calls for r in (*runs, *loaded)),
                "item_errors": sum(r.item_errors for r in (*runs, *loaded)),
            }
            rows.append(row)
            name = f"{target.label} / {_mode_label(mode, args.batch_items)}"
            if any(r.count_bound for r in runs):
                notes.append(f"{name}: used up its pre-built requests before the time ran out")
            failures: dict[str, int] = {}
            for r in (*runs, *loaded):
                for code, count in r.failures.items():
                    failures[code] = failures.get(code, 0) + count
            if failures:
                notes.append(f"{name}: failed calls {failures}")
            if row["item_errors"]:
                notes.append(f"{name}: {row['item_errors']} authorizations answered with an error")
            answered = sum(r.authorizations for r in (*runs, *loaded))
            declined = sum(r.declined for r in (*runs, *loaded))
            row["declined_share"] = round(declined / answered, 4) if answered else None
            if target.key != "echo" and answered and declined > 0.25 * answered:
                notes.append(f"{name}: {declined / answered:.0%} declined (the load's mix declines about 10%)")
            for r in loaded:
                if r.authorizations_per_s < 0.95 * r.offered_per_s:
                    notes.append(
                        f"{name}: open loop fell behind its schedule "
                        f"({r.authorizations_per_s:,.0f} of {r.offered_per_s:,.0f} auth/s offered)"
                    )
            if row["client_cores"] >= 0.9:
                notes.append(f"{name}: the load generator was near one full core ({row['client_cores']:.2f})")
    return {"meta": meta, "rows": rows, "targets": _check_targets(rows, args.duration), "notes": notes}


def _check_targets(rows: Sequence[dict[str, Any]], duration_s: float) -> list[dict[str, Any]]:
    """The capacity issue's targets, for row (a) on Redis + PostgreSQL; none is judged
    (holds None, with the reason) when the runs were shorter than MIN_TARGET_RUN_S."""
    found = {(row["target"], row["mode"]): row for row in rows}
    checks: list[dict[str, Any]] = []
    too_short = duration_s < MIN_TARGET_RUN_S
    reason = f"run too short ({duration_s:g} s per run; at least {MIN_TARGET_RUN_S:g} s)" if too_short else None

    def add(what: str, goal: str, value: float | None, holds: bool | None, shown: str) -> None:
        if too_short:
            holds = None
        checks.append(
            {"what": what, "target": goal, "value": value, "holds": holds, "shown": shown, "not_measured": reason}
        )

    prod = "production-a"
    unary = found.get((prod, "unary"))
    if unary is not None:
        ratio = unary["vs_echo"]
        add(
            "unary Authorize, production (a), vs bare echo",
            f">= {TARGET_UNARY_RATIO}x",
            ratio,
            None if ratio is None else ratio >= TARGET_UNARY_RATIO,
            "-" if ratio is None else f"{ratio:.3f}x",
        )
    for mode, rpc in (("batch", "AuthorizeBatch"), ("stream", "AuthorizeStream")):
        row = found.get((prod, mode))
        if row is not None:
            rate = row["authorizations_per_s"]
            add(
                f"{rpc}, production (a), authorizations/s",
                f">= {TARGET_BULK_RATE:,.0f}",
                rate,
                rate >= TARGET_BULK_RATE,
                f"{rate:,.0f}",
            )
    for mode in ("unary", "batch", "stream"):
        row = found.get((prod, mode))
        if row is not None and row["p99_at_load_ms"] is not None:
            p99 = row["p99_at_load_ms"]
            add(
                f"p99 at 80% of max, production (a), {mode}",
                f"< {TARGET_P99_MS:g} ms",
                p99,
                p99 < TARGET_P99_MS,
                f"{p99:.1f} ms{_echo_p99(found.get(('echo', mode)))}",
            )
    return checks


def _echo_p99(echo: dict[str, Any] | None) -> str:
    """The bare echo's own p99 at 80% of its max in the same run: what this machine
    and load generator allow a server that does nothing."""
    if echo is None or echo["p99_at_load_ms"] is None:
        return ""
    return f" (bare echo in this run: {echo['p99_at_load_ms']:.1f} ms)"


def _number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def render_markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    c = meta["concurrency"]
    lines = [
        f"### Capacity, {meta['date']}",
        "",
        f"- machine: {meta['cpus']} CPUs, {meta['cpu_model']} (load average at start "
        f"{', '.join(str(x) for x in meta['load_average'])})",
        f"- Python {meta['python']}, grpcio {meta['grpcio']}, protobuf {meta['protobuf']}, uvloop {meta['uvloop']}",
        f"- command: `{meta['command']}`",
        f"- {meta['duration_s']:g} s per run (+{meta['warmup_s']:g} s warm-up), median of {meta['repeats']}; "
        f"unary {c['unary_calls']} calls in flight; batch {c['batch_calls']} calls x {c['batch_items']} items; "
        f"stream {c['streams']} streams x {c['stream_window']} requests in flight; {c['channels']} channels; "
        f"open loop at {meta['load_share']:.0%} of each row's max rate; {meta.get('total_s', 0):g} s in all",
        "",
        "| row | mode | auth/s | p50 ms | p99 ms | p99 @80% ms | vs echo | server CPU µs/auth "
        "| server cores | sim cores | stores cores | runs (auth/s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    batch_items = c["batch_items"]
    for row in report["rows"]:
        cells = [
            row["label"],
            _mode_label(row["mode"], batch_items),
            _number(row["authorizations_per_s"]),
            _number(row["p50_ms"], 2),
            _number(row["p99_ms"], 2),
            _number(row["p99_at_load_ms"], 2),
            "-" if row["vs_echo"] is None else f"{row['vs_echo']:.3f}",
            _number(row["server_cpu_us_per_auth"], 1),
            _number(row["server_cores"], 2),
            _number(row["sim_cores"], 2),
            _number(row.get("store_cores"), 2),
            ", ".join(f"{x:,.0f}" for x in row["runs_per_s"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Latency is per call (batch: per call of all its items; stream: per request, write to answer); "
        "p99 @80% is an open-loop run at 80% of the row's max rate, timed from each scheduled send. "
        "Server CPU is the switch's process tree (the echo server's on echo rows); sim cores is the "
        "ISO 8583 simulator's process, not counted in the switch's; stores cores is PostgreSQL's and "
        "Redis's on this machine while the row ran (the embedded rows' SQLite is inside the switch).",
        "",
        "Targets (row (a) on Redis + PostgreSQL):",
        "",
    ]
    if not report["targets"]:
        lines.append("- none measured (run with --stores production and --rows a)")
    for check in report["targets"]:
        verdict = {True: "holds", False: "MISSED", None: "not measured"}[check["holds"]]
        if check.get("not_measured"):
            verdict = f"not measured: {check['not_measured']}"
        lines.append(f"- {check['what']}: {check['shown']} (target {check['target']}): **{verdict}**")
    if report["notes"]:
        lines += ["", "Notes:", ""]
        lines += [f"- {note}" for note in report["notes"]]
    return "\n".join(lines)


# --- readiness --------------------------------------------------------------------------------------


def _probe_main(target: str, timeout: float) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        with grpc.insecure_channel(target) as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=SERVICE), timeout=2.0
                )
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return 0
                last = f"health {answer.status}"
            except grpc.RpcError as error:
                last = f"{error.code().name}"
        time.sleep(0.1)
    print(f"{target}: not serving after {timeout:.0f} s ({last})")
    return 1


# --- the load generator -----------------------------------------------------------------------------


def _keys(run_id: str, count: int) -> Iterator[bytes]:
    head = f"b{run_id}-".encode()
    width = KEY_LENGTH - len(head)
    for index in range(count):
        yield head + str(index).zfill(width).encode()


def build_payloads(mode: str, run_id: str, calls: int, batch_items: int = 100) -> list[bytes]:
    """Serialized requests (unary and stream: AuthorizeRequest; batch: AuthorizeBatchRequest
    of batch_items), each authorization with its own idempotency key."""
    # merchant ids "cap-merchant-NN" fit ISO 8583 field 42 (15 characters)
    templates = payloads.templates("cap-merchant")
    per_call = batch_items if mode == "batch" else 1
    count = len(templates)
    items = (KEY_TAG + key + templates[n % count] for n, key in enumerate(_keys(run_id, calls * per_call)))
    if mode != "batch":
        return list(items)
    batches = []
    for _ in range(calls):
        parts = []
        for _ in range(batch_items):
            item = next(items)
            parts.append(b"\x0a" + payloads.varint(len(item)) + item)  # AuthorizeBatchRequest.requests
        batches.append(b"".join(parts))
    return batches


def _drive_main() -> int:
    import uvloop

    return uvloop.run(_drive_loop())


async def _drive_loop() -> int:
    """Reads one JSON command a line from stdin, answers one JSON report a line."""
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.buffer.readline)
        if not line.strip():
            return 0
        command = orjson.loads(line)
        try:
            report = await drive(command)
        except Exception as error:  # the orchestrator prints it and stops
            report = {"error": f"{type(error).__name__}: {error}"}
        sys.stdout.buffer.write(orjson.dumps(report) + b"\n")
        sys.stdout.buffer.flush()


@dataclass(frozen=True)
class DrivePlan:
    target: str
    mode: str
    phase: str
    rate: float  # open loop: authorizations/s
    duration: float
    warmup: float
    concurrency: int  # unary and batch: calls in flight; stream: streams
    window: int  # stream, closed loop: requests in flight per stream
    channels: int
    batch_items: int
    pool: int
    run_id: str
    server_pid: int
    sim_pid: int
    store_pids: list[int]


async def drive(command: dict[str, Any]) -> dict[str, Any]:
    plan = DrivePlan(**command)
    built = build_payloads(plan.mode, plan.run_id, plan.pool, plan.batch_items)
    payloads.check_payload(plan.mode, built[0], plan.run_id, plan.batch_items)
    gc.collect()
    gc.freeze()
    try:
        return await Driver(plan, built).run()
    finally:
        del built
        gc.unfreeze()
        gc.collect()


class Driver:
    """One run against one target: closed loop (max rate) or open loop (a fixed rate)."""

    def __init__(self, plan: DrivePlan, payloads: list[bytes]) -> None:
        self.plan = plan
        self.payloads = payloads
        self.next_index = 0
        self.latencies: list[float] = []
        self.failed: dict[str, int] = {}
        self.counts = {"approved": 0, "declined": 0, "item_errors": 0, "calls": 0, "authorizations": 0}
        self.start = 0.0
        self.measure_from = 0.0
        self.deadline = 0.0
        self.last_done = 0.0
        self.per_call = plan.batch_items if plan.mode == "batch" else 1

    async def run(self) -> dict[str, Any]:
        import grpc

        plan = self.plan
        opened = [grpc.aio.insecure_channel(plan.target, options=harness.CHANNEL_OPTIONS) for _ in range(plan.channels)]
        try:
            await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in opened)), 30)
            self.start = time.perf_counter() + 0.01
            self.measure_from = self.start + plan.warmup
            self.deadline = self.measure_from + plan.duration
            self.last_done = self.measure_from
            work = asyncio.ensure_future(self._work(opened))
            await asyncio.sleep(max(0.0, self.measure_from - time.perf_counter()))
            server_cpu, sim_cpu = harness.tree_cpu_seconds(plan.server_pid), harness.tree_cpu_seconds(plan.sim_pid)
            store_cpu = harness.tree_cpu_seconds(*plan.store_pids)
            own_cpu = harness.own_cpu_seconds()
            await work
            server_cpu = harness.tree_cpu_seconds(plan.server_pid) - server_cpu
            sim_cpu = harness.tree_cpu_seconds(plan.sim_pid) - sim_cpu
            store_cpu = harness.tree_cpu_seconds(*plan.store_pids) - store_cpu
            own_cpu = harness.own_cpu_seconds() - own_cpu
            count_bound = self.next_index >= len(self.payloads) and self.last_done < self.deadline
        finally:
            await asyncio.gather(*(c.close(None) for c in opened))
        self.latencies.sort()
        return {
            "calls": self.counts["calls"],
            "authorizations": self.counts["authorizations"],
            "approved": self.counts["approved"],
            "declined": self.counts["declined"],
            "item_errors": self.counts["item_errors"],
            "failed_calls": self.failed,
            "elapsed": max(self.last_done - self.measure_from, 1e-9),
            "p50_ms": percentile(self.latencies, 0.50) * 1000.0,
            "p99_ms": percentile(self.latencies, 0.99) * 1000.0,
            "count_bound": count_bound and self.plan.phase == "max",
            "server_cpu_s": server_cpu,
            "sim_cpu_s": sim_cpu,
            "store_cpu_s": store_cpu,
            "client_cpu_s": own_cpu,
        }

    async def _work(self, opened: Sequence[Any]) -> None:
        plan = self.plan
        if plan.mode == "stream":
            method = f"/{SERVICE}/AuthorizeStream"
            streams = [c.stream_stream(method, request_serializer=None, response_deserializer=None) for c in opened]
            count = plan.concurrency
            if plan.phase == "max":
                await asyncio.gather(*(self._closed_stream(streams[n % len(streams)]) for n in range(count)))
            else:
                await asyncio.gather(*(self._open_stream(streams[n % len(streams)], n, count) for n in range(count)))
            return
        method = f"/{SERVICE}/{'Authorize' if plan.mode == 'unary' else 'AuthorizeBatch'}"
        calls = [c.unary_unary(method, request_serializer=None, response_deserializer=None) for c in opened]
        if plan.phase == "max":
            await asyncio.gather(*(self._closed_worker(calls[n % len(calls)]) for n in range(plan.concurrency)))
        else:
            await self._open_dispatch(calls)

    def _fail(self, error: Exception) -> None:
        import grpc

        name = error.code().name if isinstance(error, grpc.aio.AioRpcError) else type(error).__name__
        self.failed[name] = self.failed.get(name, 0) + 1

    # unary and batch

    async def _closed_worker(self, call: Any) -> None:
        payloads, clock = self.payloads, time.perf_counter
        while self.next_index < len(payloads):
            began = clock()
            if began >= self.deadline:
                return
            payload = payloads[self.next_index]
            self.next_index += 1
            await self._send(call, payload, began)

    async def _open_dispatch(self, calls: Sequence[Any]) -> None:
        """Call i is due at start + i / rate, whatever the earlier calls are doing.

        A pool of senders (OPEN_SENDERS_PER_SLOT for each closed-loop slot) takes the
        calls in order: each sleeps until its call is due, sends it and waits for the
        answer. The latency runs from the due time, so a call that found every sender
        busy (the server stalled) counts its wait (no coordinated omission), while the
        generator pays about what the closed loop pays per call: no task per call.
        """
        plan = self.plan
        interval = self.per_call / plan.rate
        total = min(len(self.payloads), int((self.deadline - self.start) / interval))
        senders = max(1, plan.concurrency * OPEN_SENDERS_PER_SLOT)
        await asyncio.gather(*(self._open_sender(calls[n % len(calls)], interval, total) for n in range(senders)))

    async def _open_sender(self, call: Any, interval: float, total: int) -> None:
        payloads, clock = self.payloads, time.perf_counter
        while self.next_index < total:
            index = self.next_index
            self.next_index += 1
            due = self.start + index * interval
            wait = due - clock()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._send(call, payloads[index], due)

    async def _send(self, call: Any, payload: bytes, began: float) -> None:
        """One unary or batch call; its latency runs from began."""
        import grpc

        try:
            raw = await call(payload, timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as error:
            self._fail(error)
            return
        self._answered(raw, began, time.perf_counter())

    def _answered(self, raw: bytes, began: float, ended: float) -> None:
        if began < self.measure_from:
            return  # warm-up
        from switch.v1 import switch_pb2 as pb

        self.latencies.append(ended - began)
        self.last_done = max(self.last_done, ended)
        self.counts["calls"] += 1
        if self.plan.mode == "unary":
            self._count(pb.AuthorizeResponse.FromString(raw))
        else:
            for answer in pb.AuthorizeBatchResponse.FromString(raw).responses:
                self._count(answer)

    def _count(self, answer: Any) -> None:
        self.counts["authorizations"] += 1
        payloads.tally(self.counts, answer)

    # stream

    async def _closed_stream(self, open_stream: Any) -> None:
        """One stream with up to `window` requests in flight; a slot frees when its answer arrives."""
        window = asyncio.Semaphore(self.plan.window)
        sent: dict[bytes, float] = {}
        call = open_stream(timeout=self.plan.warmup + self.plan.duration + CALL_TIMEOUT)
        clock, payloads = time.perf_counter, self.payloads
        reader = asyncio.ensure_future(self._read_stream(call, sent, window))
        try:
            while self.next_index < len(payloads) and not reader.done():
                await window.acquire()
                if clock() >= self.deadline or self.next_index >= len(payloads) or reader.done():
                    break
                payload = payloads[self.next_index]
                self.next_index += 1
                sent[payload[2 : 2 + KEY_LENGTH]] = clock()
                await call.write(payload)
            if not reader.done():
                await call.done_writing()
        except Exception as error:  # the stream failed: the reader reports it
            if not reader.done():
                self._fail(error)
                call.cancel()
        await reader

    async def _open_stream(self, open_stream: Any, offset: int, streams: int) -> None:
        """One of `streams` streams; request i (offset, offset + streams, ...) is sent at start + i / rate."""
        interval = 1.0 / self.plan.rate
        total = min(len(self.payloads), int((self.deadline - self.start) / interval))
        sent: dict[bytes, float] = {}
        call = open_stream(timeout=self.plan.warmup + self.plan.duration + CALL_TIMEOUT)
        clock, payloads = time.perf_counter, self.payloads
        reader = asyncio.ensure_future(self._read_stream(call, sent, None))
        try:
            for index in range(offset, total, streams):
                if reader.done():
                    break
                scheduled = self.start + index * interval
                wait = scheduled - clock()
                if wait > 0.0005:
                    await asyncio.sleep(wait)
                payload = payloads[index]
                sent[payload[2 : 2 + KEY_LENGTH]] = max(scheduled, clock())  # never earlier than sent
                await call.write(payload)
                self.next_index = max(self.next_index, index + 1)
            if not reader.done():
                await call.done_writing()
        except Exception as error:
            if not reader.done():
                self._fail(error)
                call.cancel()
        await reader

    async def _read_stream(self, call: Any, sent: dict[bytes, float], window: asyncio.Semaphore | None) -> None:
        import grpc
        from grpc.aio import EOF  # type: ignore[attr-defined]  # missing from grpc-stubs

        from switch.v1 import switch_pb2 as pb

        clock = time.perf_counter
        try:
            while True:
                raw = await call.read()
                if raw is EOF:
                    break
                ended = clock()
                if raw[:2] == KEY_TAG:
                    key = raw[2 : 2 + KEY_LENGTH]
                    answer = pb.AuthorizeResponse.FromString(raw)
                else:
                    answer = pb.AuthorizeResponse.FromString(raw)
                    key = answer.idempotency_key.encode()
                began = sent.pop(key, None)
                if window is not None:
                    window.release()
                if began is None:
                    self.failed["unknown key"] = self.failed.get("unknown key", 0) + 1
                    continue
                if began < self.measure_from:
                    continue
                self.latencies.append(ended - began)
                self.last_done = max(self.last_done, ended)
                self.counts["calls"] += 1
                self._count(answer)
        except grpc.aio.AioRpcError as error:
            self._fail(error)
        finally:
            if sent:
                self.failed["unanswered"] = self.failed.get("unanswered", 0) + len(sent)
            if window is not None:
                for _ in range(self.plan.window):
                    window.release()


def percentile(ordered: Sequence[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


if __name__ == "__main__":
    sys.exit(main())
