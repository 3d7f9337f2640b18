"""The capacity benchmark: the switch against a bare gRPC echo of the same service.

    .venv/bin/python loadtests/capacity.py [--quick] [--duration 5] [--repeats 3]
        [--stores embedded,production] [--rows a,b] [--modes unary,batch,stream]
        [--concurrency 64] [--batch-concurrency 8] [--batch-items 100]
        [--streams 4] [--stream-window 256] [--channels 4] [--load 0.8]
        [--tls-dir DIR] [--json PATH] [--strict] [--keep-logs]

It starts everything it drives, each in its own process, and so is the load
generator, so client and servers never share a GIL:

    echo            a grpc.aio server under uvloop implementing switch.v1.Switch with no
                    logic (loadtests/echo.py): the ceiling for this machine and this load
                    generator.
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

--tls-dir DIR (a folder made by `switch tls init`) adds every row again over mutual TLS,
the echo included: the servers serve DIR's server certificate and require client
certificates from DIR's CA, the switch grants DIR's client identity what the load calls
([[security.callers]]), and the load generator presents DIR's client certificate. An
mTLS row's "vs echo" is against the echo over mTLS, so it shows the switch's cost on a
TLS transport; the plaintext rows beside it show what TLS costs.

capacity.toml turns everything on: durable journal, idempotency, velocity limits
(set far above what a run reaches, so they count without declining), fees with
tiers and revenue shares, and tokenization (a key file written per run).

One load generator process (loadtests/loadgen.py, running the load driver,
loadtests/driver.py) drives every target the same way: several channels (one TCP
connection each), pre-built serialized requests with a unique idempotency key
spliced into each (so no call is a replay) and varied cards, accounts, merchants
and amounts. Modes: unary Authorize (N calls in flight), AuthorizeBatch (N calls of
--batch-items in flight) and AuthorizeStream (bidirectional: --streams streams, each
with --stream-window requests in flight, answers matched to requests by
idempotency_key).

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
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import orjson

if not __package__:  # run as a script: loadtests/ is sys.path[0], the repository is not on it
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from loadtests import capacity_targets, generators, harness, servers, stores
from loadtests.capacity_report import Measured, RunResult, build_report, median_rate, meta, render_markdown, run_result
from loadtests.capacity_targets import Target
from loadtests.driver import Plan

CONFIG = Path(__file__).resolve().parent / "capacity.toml"
MODES = ("unary", "batch", "stream")
STORE_SETS = ("embedded", "production")
ROWS = ("a", "b")
# Pre-built authorizations per second of a target's first closed-loop run of a mode:
# more than a run sends on this kind of machine. Later runs size their pool from the
# fastest earlier run; a run that still uses it all says so ("count-bound").
FIRST_POOL_PER_S = {"unary": 30_000, "batch": 200_000, "stream": 100_000}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run(args, list(sys.argv[1:] if argv is None else argv))


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
    parser.add_argument("--redis-url", default=os.environ.get("SWITCH_REDIS_URL") or harness.DEFAULT_REDIS_URL)
    parser.add_argument("--postgres-dsn", default=os.environ.get("SWITCH_POSTGRES_DSN") or harness.DEFAULT_POSTGRES_DSN)
    parser.add_argument(
        "--tls-dir", type=Path, help="a `switch tls init` folder: every row again over mutual TLS with its files"
    )
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 2 when a target of the issue does not hold")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs (printed path)")
    return parser


def _split(value: str, allowed: Sequence[str], flag: str) -> list[str]:
    chosen = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [part for part in chosen if part not in allowed]
    if unknown or not chosen:
        raise SystemExit(f"{flag}: choose from {', '.join(allowed)} (got {value!r})")
    return [part for part in allowed if part in chosen]


def settle_defaults(args: argparse.Namespace) -> None:
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


def run(args: argparse.Namespace, argv: list[str]) -> int:
    settle_defaults(args)
    modes = _split(args.modes, MODES, "--modes")
    store_sets = _split(args.stores, STORE_SETS, "--stores")
    rows = _split(args.rows, ROWS, "--rows")
    args.tls_dir = servers.tls_folder(args.tls_dir)
    heading = meta(args, argv)
    folder = Path(tempfile.mkdtemp(prefix="switch-capacity-"))
    unique = secrets.token_hex(4)
    schema, prefix = f"capacity_{unique}", f"capacity:{unique}"
    production_env = harness.production_env(args.redis_url, args.postgres_dsn, schema, prefix, folder)
    targets = capacity_targets.targets(
        folder, config=args.config, stores=store_sets, rows=rows, production_env=production_env, tls_dir=args.tls_dir
    )
    results: list[RunResult] = []
    started = time.monotonic()
    failed = False
    generator: generators.LoadGenerator | None = None
    try:
        capacity_targets.start_all(targets)
        generator = generators.LoadGenerator(folder / "loadgen.log", cwd=folder)
        print(
            f"# {len(targets)} target(s) ready; {len(modes)} mode(s) x {args.repeats} repeat(s) x 2 phases, "
            f"{args.duration:g} s each (+{args.warmup:g} s warm-up)",
            flush=True,
        )
        for mode in modes:
            _run_mode(args, generator, mode, targets, results, schema=schema, prefix=prefix)
    except BaseException:
        failed = True
        capacity_targets.print_log_tails(targets)
        if generator is not None:
            print(f"--- load generator log (tail) ---\n{harness.log_tail(generator.log)}", file=sys.stderr)
        raise
    finally:
        if generator is not None:
            generator.close()
        capacity_targets.stop_all(targets)
        if "production" in store_sets:
            stores.drop_state(args.redis_url, args.postgres_dsn, schema, prefix)
        if args.keep_logs or failed:
            print(f"# logs kept in {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    heading["total_s"] = round(time.monotonic() - started, 1)
    measured = [Measured(t.key, t.label, t.sim is not None, t.baseline) for t in targets]
    report = build_report(heading, modes, measured, results)
    print()
    print(render_markdown(report))
    if args.json:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    if any(r.failed_calls or r.item_errors for r in results):
        return 1
    if args.strict and any(t["holds"] is False for t in report["targets"]):
        return 2
    return 0


def _run_mode(
    args: argparse.Namespace,
    generator: generators.LoadGenerator,
    mode: str,
    targets: Sequence[Target],
    results: list[RunResult],
    *,
    schema: str,
    prefix: str,
) -> None:
    """The max-rate runs of every target, interleaved, then the open-loop runs at --load
    of each target's median max rate."""
    for phase in ("max", "load"):
        for repeat in range(args.repeats):
            for target in targets:
                rate = 0.0
                if phase == "load":
                    best = median_rate(results, target.key, mode)
                    if best <= 0:
                        continue
                    rate = best * args.load
                if target.key.startswith("production"):
                    # Every run starts on empty tables: what came before (another
                    # row, mode or repeat) must not change what this run measures.
                    stores.empty_state(args.redis_url, args.postgres_dsn, schema, prefix)
                pool = _pool(args, results, target, mode, rate)
                result = _one_run(args, generator, target, mode=mode, phase=phase, rate=rate, pool=pool)
                results.append(result)
                _print_progress(result, repeat)


def _one_run(
    args: argparse.Namespace,
    generator: generators.LoadGenerator,
    target: Target,
    *,
    mode: str,
    phase: str,
    rate: float,
    pool: int,
) -> RunResult:
    exited = target.exited()
    if exited:
        raise RuntimeError(f"{target.label}: {exited}")
    concurrency = {"unary": args.concurrency, "batch": args.batch_concurrency, "stream": args.streams}[mode]
    plan = Plan(
        target=target.server.target,
        mode=mode,
        phase=phase,
        rate=rate,
        duration=args.duration,
        warmup=args.warmup,
        concurrency=concurrency,
        window=args.stream_window,
        channels=args.channels,
        batch_items=args.batch_items,
        requests="pool",
        pool=pool,
        run_id=secrets.token_hex(4),
        tls_dir=str(target.server.tls_dir or ""),
    )
    watch = {
        "server": target.server.pids(),
        "sim": target.sim.pids() if target.sim else [],
        "stores": list(harness.store_pids()),
    }
    try:
        together = generators.run_together([generator], [plan], watch=watch)
    except RuntimeError as error:
        raise RuntimeError(f"{target.label}/{mode}/{phase}: {error}") from error
    report = dict(together.reports[0], cpu_s=together.cpu_s, window_s=together.window_s)
    return run_result(target.key, mode, phase, rate, report)


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


if __name__ == "__main__":
    sys.exit(main())
