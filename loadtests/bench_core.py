"""The core benchmark: the switch against a bare gRPC echo of the same service.

    .venv/bin/python loadtests/bench_core.py [--duration 5] [--repeats 3]
        [--concurrency 64] [--batch-concurrency 8] [--channels 4]
        [--stores embedded,production] [--modes unary,batch]

Every target runs in its own process, and so does the load generator, so client
and server never share a GIL:

    echo        a grpc.aio server under uvloop implementing switch.v1.Switch with no
                logic: Authorize returns one fixed AuthorizeResponse, AuthorizeBatch
                one fixed response per item. It is the ceiling for this machine.
    embedded    `python -m switch serve` on memory + SQLite (a temporary file).
    production  `python -m switch serve` on this machine's Redis and PostgreSQL, in a
                fresh schema and key prefix that are removed at the end.

Both switches run with an instrument count limit and a merchant amount limit set
far above what the benchmark reaches, so every authorization moves real velocity
counters without being declined by them.

One load generator drives every target the same way: several channels (one TCP
connection each), N calls in flight, pre-built serialized requests with unique
idempotency keys and varied cards, accounts and merchants, bounded by a call count
and by time, after a short warm-up. Modes: unary Authorize, and AuthorizeBatch
with 100 items per call. Runs are interleaved (echo, embedded, production, then
again) so drift on a shared machine hits every target alike; the table shows the
median of --repeats runs and the ratio to the echo of the same mode.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
SERVICE = "switch.v1.Switch"
MODES = ("unary", "batch")
STORE_SETS = ("embedded", "production")
BATCH_ITEMS = 100
KEY_LENGTH = 24  # every idempotency key has this length, so templates can be spliced
CARD_POOL = 512
MERCHANTS = 16
READY_TIMEOUT = 60.0
CALL_TIMEOUT = 30.0
# Pre-built calls per run: far more than a run can send on this kind of machine; a
# run that still uses them all stops early and says so ("count-bound").
# Later runs of the same target and mode size their pool from the first run's rate.
DEFAULT_MAX_CALLS = {"unary": 200_000, "batch": 12_000}

SWITCH_CONFIG = """
log_level = "WARNING"

# The switch's own work: the in-process simulated issuer answers, so no simulator's
# CPU is counted (the embedded default would route cards through ISO 8583 instead).
[routes.card]
adapter = "simulated"

[routes.instant]
adapter = "simulated"

[[limits]]
scope = "instrument"
window_seconds = 3600
max_count = 100000000

[[limits]]
scope = "merchant"
window_seconds = 3600
max_amount = 1000000000000000
"""


# --- the orchestrator ----------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    port: int
    process: subprocess.Popen[bytes] | None = None


@dataclass(frozen=True)
class RunResult:
    target: str
    mode: str
    authorizations_per_s: float
    p50_ms: float
    p99_ms: float
    calls: int
    failed_calls: int
    item_errors: int
    count_bound: bool
    server_cpu_us: float  # server CPU time per authorization
    client_cpu: float  # the load generator's CPU time / wall time (1.0 = one core busy)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.role == "echo":
        return _echo_main(args.port)
    if args.role == "drive":
        return _drive_main(args)
    if args.role == "probe":
        return _probe_main(args.target, args.timeout)
    return _orchestrate(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="switch vs bare gRPC echo throughput benchmark")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds before each run")
    parser.add_argument("--concurrency", type=int, default=64, help="unary calls in flight")
    parser.add_argument("--batch-concurrency", type=int, default=8, help="AuthorizeBatch calls in flight")
    parser.add_argument("--channels", type=int, default=4, help="client channels (one connection each)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stores", default=",".join(STORE_SETS), help="embedded,production")
    parser.add_argument("--modes", default=",".join(MODES), help="unary,batch")
    parser.add_argument("--max-calls", type=int, default=0, help="pre-built calls per run (0: per-mode default)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs (printed path)")
    # Internal roles: the same file runs the echo server, the load generator and the probe.
    parser.add_argument("--role", choices=("bench", "echo", "drive", "probe"), default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--target", default="", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="unary", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", default="", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=READY_TIMEOUT, help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def _split(value: str, allowed: Sequence[str], flag: str) -> list[str]:
    chosen = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [part for part in chosen if part not in allowed]
    if unknown or (not chosen and flag == "--modes"):
        raise SystemExit(f"{flag}: choose from {', '.join(allowed)} (got {value!r})")
    return chosen


def _orchestrate(args: argparse.Namespace) -> int:
    modes = _split(args.modes, MODES, "--modes")
    stores = _split(args.stores, STORE_SETS, "--stores")
    if args.duration <= 0 or args.repeats < 1 or args.concurrency < 1 or args.batch_concurrency < 1:
        raise SystemExit("--duration, --repeats and the concurrencies must be positive")
    folder = Path(tempfile.mkdtemp(prefix="switch-bench-"))
    unique = secrets.token_hex(4)
    schema, prefix = f"bench_{unique}", f"bench:{unique}"
    targets = _targets(folder, stores, schema, prefix)
    results: list[RunResult] = []
    started = time.monotonic()
    failed = False
    try:
        for target in targets:
            _start(target)
        for target in targets:
            _wait_ready(target)
        print(
            f"# targets ready; {len(modes)} mode(s) x {args.repeats} repeat(s) x {len(targets)} target(s), "
            f"{args.duration:g} s each (+{args.warmup:g} s warm-up)",
            flush=True,
        )
        for mode in modes:
            for repeat in range(args.repeats):
                for target in targets:
                    result = _run_once(args, target, mode, _pool_size(args, results, target.name, mode))
                    results.append(result)
                    print(
                        f"#   {mode:5} run {repeat + 1}: {target.name:10} {result.authorizations_per_s:10.0f} auth/s "
                        f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
                        f"server CPU {result.server_cpu_us:6.1f} us/auth  client CPU {result.client_cpu:4.0%}"
                        + (f"  failed calls {result.failed_calls}" if result.failed_calls else "")
                        + (f"  item errors {result.item_errors}" if result.item_errors else "")
                        + ("  (count-bound)" if result.count_bound else ""),
                        flush=True,
                    )
    except BaseException:
        failed = True
        for target in targets:
            _print_log_tail(target)
        raise
    finally:
        for target in targets:
            _stop(target)
        if "production" in stores:
            _drop_production_state(schema, prefix)
        if args.keep_logs or failed:
            print(f"# server logs kept in {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    _print_table(args, modes, targets, results, time.monotonic() - started)
    return 1 if any(r.failed_calls or r.item_errors for r in results) else 0


def _targets(folder: Path, stores: Sequence[str], schema: str, prefix: str) -> list[Target]:
    base_env = {key: value for key, value in os.environ.items() if not key.startswith("SWITCH_")}
    config_path = folder / "switch.toml"
    # Tokenization keys for this run only (production requires them; embedded reads them too).
    config_path.write_text(
        SWITCH_CONFIG + f'\n[tokenization]\nactive_key = "k1"\nkeys = {{ k1 = "{secrets.token_hex(32)}" }}\n'
    )
    targets = [
        Target(
            "echo",
            [sys.executable, str(Path(__file__).resolve()), "--role", "echo", "--port", "{port}"],
            dict(base_env),
            folder / "echo.log",
            _free_port(),
        )
    ]
    serve = [sys.executable, "-m", "switch", "serve", "--config", str(config_path), "--port", "{port}"]
    if "embedded" in stores:
        env = dict(base_env, SWITCH_SQLITE_PATH=str(folder / "embedded" / "journal.sqlite3"))
        targets.append(Target("embedded", serve, env, folder / "embedded.log", _free_port()))
    if "production" in stores:
        env = dict(
            base_env,
            SWITCH_REDIS_URL=REDIS_URL,
            SWITCH_POSTGRES_DSN=POSTGRES_DSN,
            SWITCH_POSTGRES_SCHEMA=schema,
            SWITCH_KEY_PREFIX=prefix,
            SWITCH_FINGERPRINT_KEY=secrets.token_hex(32),
        )
        targets.append(Target("production", serve, env, folder / "production.log", _free_port()))
    return targets


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start(target: Target) -> None:
    command = [part.replace("{port}", str(target.port)) for part in target.command]
    with target.log.open("wb") as log:
        target.process = subprocess.Popen(
            command, cwd=ROOT, env=target.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait_ready(target: Target) -> None:
    assert target.process is not None
    probe = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--role", "probe", "--target", f"127.0.0.1:{target.port}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=READY_TIMEOUT + 15,
        check=False,
    )
    if probe.returncode != 0 or target.process.poll() is not None:
        raise RuntimeError(f"{target.name} did not become ready: {probe.stdout.strip()} {probe.stderr.strip()}")


def _pool_size(args: argparse.Namespace, results: Sequence[RunResult], target: str, mode: str) -> int:
    """How many calls to pre-build: --max-calls, else three times what an earlier run sent."""
    if args.max_calls:
        return int(args.max_calls)
    earlier = [r for r in results if r.target == target and r.mode == mode and not r.count_bound]
    if not earlier:
        return DEFAULT_MAX_CALLS[mode]
    per_call = BATCH_ITEMS if mode == "batch" else 1
    calls_per_s = max(r.authorizations_per_s for r in earlier) / per_call
    return max(1_000, int(3 * calls_per_s * (args.duration + args.warmup)))


def _run_once(args: argparse.Namespace, target: Target, mode: str, max_calls: int) -> RunResult:
    assert target.process is not None
    if target.process.poll() is not None:
        raise RuntimeError(f"{target.name} exited with {target.process.returncode}")
    concurrency = args.concurrency if mode == "unary" else args.batch_concurrency
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--role",
        "drive",
        "--target",
        f"127.0.0.1:{target.port}",
        "--mode",
        mode,
        "--duration",
        str(args.duration),
        "--warmup",
        str(args.warmup),
        "--concurrency",
        str(concurrency),
        "--channels",
        str(args.channels),
        "--max-calls",
        str(max_calls),
        "--run-id",
        secrets.token_hex(4),
        "--server-pid",
        str(target.process.pid),
    ]
    budget = args.duration + args.warmup + 120  # building requests and connecting included
    done = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=budget, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed on {target.name}/{mode}: {done.stderr.decode()[-2000:]}")
    report = orjson.loads(done.stdout.splitlines()[-1])
    return RunResult(
        target=target.name,
        mode=mode,
        authorizations_per_s=report["authorizations"] / report["elapsed"] if report["elapsed"] else 0.0,
        p50_ms=report["p50_ms"],
        p99_ms=report["p99_ms"],
        calls=report["calls"],
        failed_calls=sum(report["failed_calls"].values()),
        item_errors=report["item_errors"],
        count_bound=report["count_bound"],
        server_cpu_us=report["server_cpu_s"] * 1e6 / max(report["authorizations"], 1),
        client_cpu=report["client_cpu_s"] / report["elapsed"] if report["elapsed"] else 0.0,
    )


def _stop(target: Target) -> None:
    process = target.process
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout=5)


def _print_log_tail(target: Target) -> None:
    with contextlib.suppress(OSError):
        tail = target.log.read_text(errors="replace")[-3000:]
        if tail.strip():
            print(f"--- {target.name} log (tail) ---\n{tail}", file=sys.stderr)


def _drop_production_state(schema: str, prefix: str) -> None:
    import asyncpg
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()

    async def drop() -> None:
        connection = await asyncpg.connect(POSTGRES_DSN)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()

    asyncio.run(drop())


def _print_table(
    args: argparse.Namespace,
    modes: Sequence[str],
    targets: Sequence[Target],
    results: Sequence[RunResult],
    total: float,
) -> None:
    header = ("target", "mode", "auth/s", "p50 ms/call", "p99 ms/call", "vs echo", "srv CPU us/auth", "runs (auth/s)")
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    for mode in modes:
        echo_rate = 0.0
        for target in targets:
            runs = [r for r in results if r.target == target.name and r.mode == mode]
            if not runs:
                continue
            rate = statistics.median(r.authorizations_per_s for r in runs)
            if target.name == "echo":
                echo_rate = rate
            ratio = f"{rate / echo_rate:.3f}" if echo_rate else "-"
            spread = ", ".join(f"{r.authorizations_per_s:.0f}" for r in runs)
            rows.append(
                (
                    target.name,
                    f"{mode} x{BATCH_ITEMS}" if mode == "batch" else mode,
                    f"{rate:,.0f}",
                    f"{statistics.median(r.p50_ms for r in runs):.2f}",
                    f"{statistics.median(r.p99_ms for r in runs):.2f}",
                    ratio,
                    f"{statistics.median(r.server_cpu_us for r in runs):.1f}",
                    spread,
                )
            )
            if any(r.count_bound for r in runs):
                notes.append(f"{target.name}/{mode}: used up its pre-built calls before the time ran out")
            failed = sum(r.failed_calls for r in runs)
            if failed:
                notes.append(f"{target.name}/{mode}: {failed} failed calls")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    print()
    print(
        f"bench_core: {args.duration:g} s per run, median of {args.repeats}; unary {args.concurrency} in flight, "
        f"batch {args.batch_concurrency} x {BATCH_ITEMS} items in flight; {args.channels} channels; "
        f"{os.cpu_count()} CPUs; {total:.0f} s in all"
    )
    for index, row in enumerate((header, *rows)):
        print("  ".join(cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row)))
        if index == 0:
            print("  ".join("-" * w for w in widths))
    for note in notes:
        print(f"note: {note}")


# --- the bare echo server --------------------------------------------------------------------------


def _echo_main(port: int) -> int:
    import uvloop

    uvloop.run(_echo_serve(port))
    return 0


async def _echo_serve(port: int) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_health.v1._async import HealthServicer

    from switch.v1 import switch_pb2 as pb
    from switch.v1 import switch_pb2_grpc

    fixed = pb.AuthorizeResponse(
        idempotency_key="echo",
        transaction_id="tx_" + "0" * 26,
        decision=pb.DECISION_APPROVED,
        response_code="00",
        message="approved",
        route="card",
        authorization_code="ECHO00",
    )

    class Echo(switch_pb2_grpc.SwitchServicer):
        async def Authorize(self, request: pb.AuthorizeRequest, context: Any) -> pb.AuthorizeResponse:
            return fixed

        async def AuthorizeBatch(self, request: pb.AuthorizeBatchRequest, context: Any) -> pb.AuthorizeBatchResponse:
            return pb.AuthorizeBatchResponse(responses=[fixed] * len(request.requests))

        async def AuthorizeStream(self, request_iterator: Any, context: Any) -> AsyncIterator[pb.AuthorizeResponse]:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "echo: not benchmarked")
            yield fixed  # never reached; makes this a stream handler

        async def Capture(self, request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "echo: not benchmarked")

        async def Void(self, request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "echo: not benchmarked")

        async def Refund(self, request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "echo: not benchmarked")

        async def GetTransaction(self, request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "echo: not benchmarked")

        async def QuoteFee(self, request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "echo: not benchmarked")

    # The same server options as switch.server.build, so only the service logic differs.
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ("grpc.max_send_message_length", 16 * 1024 * 1024),
        ]
    )
    switch_pb2_grpc.add_SwitchServicer_to_server(Echo(), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    for service in ("", SERVICE):
        await health.set(service, health_pb2.HealthCheckResponse.SERVING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(1.0)


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


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _luhn_pan(serial: int) -> str:
    from switch import cards

    body = f"52{serial:013d}"
    return next(body + d for d in "0123456789" if cards.reference_luhn_valid(body + d))


def _templates() -> list[bytes]:
    """Serialized AuthorizeRequests without their idempotency key (field 1), varied in
    card, account, merchant and amount. A key is spliced in front of each one."""
    from switch.v1 import switch_pb2 as pb

    templates: list[bytes] = []
    for serial in range(CARD_POOL * 2):
        request = pb.AuthorizeRequest(
            merchant_id=f"bench-merchant-{serial % MERCHANTS:02d}",
            amount=pb.Money(minor_units=100 + (serial * 7919) % 99_900, currency="USD"),
        )
        if serial % 20 == 7:
            request.card.CopyFrom(pb.Card(pan="4000000000000002", expiry_month=12, expiry_year=2031))
        elif serial % 40 == 13:
            request.card.CopyFrom(pb.Card(pan="4000000000009995", expiry_month=12, expiry_year=2031))
        elif serial % 10 == 3:
            suffix = "-insufficient" if serial % 30 == 3 else ""
            request.account.CopyFrom(pb.Account(rail="instant", id=f"acct-{serial % CARD_POOL:05d}{suffix}"))
        else:
            request.card.CopyFrom(
                pb.Card(pan=_luhn_pan(serial % CARD_POOL), expiry_month=1 + serial % 12, expiry_year=2030)
            )
        templates.append(request.SerializeToString())
    return templates


def _keys(run_id: str, count: int) -> Iterator[bytes]:
    head = f"b{run_id}-".encode()
    width = KEY_LENGTH - len(head)
    for index in range(count):
        yield head + str(index).zfill(width).encode()


def build_payloads(mode: str, run_id: str, calls: int) -> list[bytes]:
    """Serialized requests, each authorization with its own idempotency key."""
    templates = _templates()
    key_tag = b"\x0a" + _varint(KEY_LENGTH)  # field 1, length-delimited
    items = (key_tag + key + templates[n % len(templates)] for n, key in enumerate(_keys(run_id, calls * 100)))
    if mode == "unary":
        return [next(items) for _ in range(calls)]
    payloads = []
    for _ in range(calls):
        parts = []
        for _ in range(BATCH_ITEMS):
            item = next(items)
            parts.append(b"\x0a" + _varint(len(item)) + item)  # AuthorizeBatchRequest.requests
        payloads.append(b"".join(parts))
    return payloads


def _drive_main(args: argparse.Namespace) -> int:
    import uvloop

    payloads = build_payloads(args.mode, args.run_id, args.max_calls)
    _check_payload(args.mode, payloads[0], args.run_id)
    plan = DrivePlan(
        args.target, args.mode, args.duration, args.warmup, args.concurrency, args.channels, args.server_pid
    )
    report = uvloop.run(Driver(plan, payloads).run())
    sys.stdout.buffer.write(orjson.dumps(report) + b"\n")
    return 0


def _check_payload(mode: str, payload: bytes, run_id: str) -> None:
    from switch.v1 import switch_pb2 as pb

    if mode == "unary":
        requests = [pb.AuthorizeRequest.FromString(payload)]
    else:
        requests = list(pb.AuthorizeBatchRequest.FromString(payload).requests)
        assert len(requests) == BATCH_ITEMS
    for request in requests:
        assert request.idempotency_key.startswith(f"b{run_id}-"), request.idempotency_key
        assert request.merchant_id and request.amount.minor_units > 0
        assert request.WhichOneof("source") in ("card", "account")


@dataclass(frozen=True)
class DrivePlan:
    target: str
    mode: str
    duration: float
    warmup: float
    concurrency: int
    channels: int
    server_pid: int


def _process_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process and all its threads, from /proc (Linux)."""
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Driver:
    """N workers share the pre-built payloads; each sends its next one when its last returns."""

    def __init__(self, plan: DrivePlan, payloads: list[bytes]) -> None:
        self.plan = plan
        self.payloads = payloads
        self.next_index = 0
        self.latencies: list[float] = []
        self.failed: dict[str, int] = {}
        self.counts = {"approved": 0, "declined": 0, "item_errors": 0, "calls": 0}
        self.measure_from = 0.0
        self.deadline = 0.0
        self.last_done = 0.0

    async def run(self) -> dict[str, Any]:
        import grpc

        plan = self.plan
        method = f"/{SERVICE}/{'Authorize' if plan.mode == 'unary' else 'AuthorizeBatch'}"
        options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", 16 * 1024 * 1024)]
        opened = [grpc.aio.insecure_channel(plan.target, options=options) for _ in range(plan.channels)]
        try:
            await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in opened)), 30)
            callables = [c.unary_unary(method, request_serializer=None, response_deserializer=None) for c in opened]
            self.measure_from = time.perf_counter() + plan.warmup
            self.deadline = self.measure_from + plan.duration
            self.last_done = self.measure_from
            workers = asyncio.gather(*(self._worker(callables[n % len(callables)]) for n in range(plan.concurrency)))
            await asyncio.sleep(max(0.0, self.measure_from - time.perf_counter()))
            server_cpu, own_cpu = _process_cpu_seconds(plan.server_pid), _own_cpu_seconds()
            await workers
            server_cpu = _process_cpu_seconds(plan.server_pid) - server_cpu
            own_cpu = _own_cpu_seconds() - own_cpu
            count_bound = self.next_index >= len(self.payloads) and time.perf_counter() < self.deadline
        finally:
            await asyncio.gather(*(c.close(None) for c in opened))
        self.latencies.sort()
        per_call = BATCH_ITEMS if plan.mode == "batch" else 1
        return {
            "calls": self.counts["calls"],
            "authorizations": self.counts["calls"] * per_call,
            "approved": self.counts["approved"],
            "declined": self.counts["declined"],
            "item_errors": self.counts["item_errors"],
            "failed_calls": self.failed,
            "elapsed": max(self.last_done - self.measure_from, 1e-9),
            "p50_ms": _percentile(self.latencies, 0.50) * 1000.0,
            "p99_ms": _percentile(self.latencies, 0.99) * 1000.0,
            "count_bound": count_bound,
            "server_cpu_s": server_cpu,
            "client_cpu_s": own_cpu,
        }

    async def _worker(self, call: Any) -> None:
        import grpc

        payloads, clock = self.payloads, time.perf_counter
        while self.next_index < len(payloads):
            began = clock()
            if began >= self.deadline:
                return
            payload = payloads[self.next_index]
            self.next_index += 1
            try:
                raw = await call(payload, timeout=CALL_TIMEOUT)
            except grpc.aio.AioRpcError as error:
                name = error.code().name
                self.failed[name] = self.failed.get(name, 0) + 1
                continue
            ended = clock()
            if began < self.measure_from:
                continue  # warm-up
            self.latencies.append(ended - began)
            self.last_done = max(self.last_done, ended)
            self.counts["calls"] += 1
            self._count(raw)

    def _count(self, raw: bytes) -> None:
        from switch.v1 import switch_pb2 as pb

        if self.plan.mode == "unary":
            answers = [pb.AuthorizeResponse.FromString(raw)]
        else:
            answers = list(pb.AuthorizeBatchResponse.FromString(raw).responses)
        counts = self.counts
        for answer in answers:
            if answer.decision == pb.DECISION_APPROVED:
                counts["approved"] += 1
            elif answer.decision == pb.DECISION_DECLINED:
                counts["declined"] += 1
            else:
                counts["item_errors"] += 1


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


if __name__ == "__main__":
    sys.exit(main())
