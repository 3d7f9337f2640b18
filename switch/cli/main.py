"""`switch serve | demo | migrate | keys | audit | policy | risk | tls | sim`: the command line.

Nothing here imports gRPC at module level: `serve --workers N` forks its worker
processes first, as gRPC Python requires, and each worker builds its own server
on the shared port (SO_REUSEPORT).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from switch import config
from switch.telemetry import logs

log = logging.getLogger("switch")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "keys":
        from switch.cli import keys

        return _refusing_cleanly(lambda: keys.run(args))
    if args.command == "policy":
        from switch.cli import policy

        return _refusing_cleanly(lambda: policy.run(args))
    if args.command == "risk":
        from switch.cli import risk

        return _refusing_cleanly(lambda: risk.main(args.options))
    if args.command == "tls":
        from switch.cli import tls_init

        return _refusing_cleanly(lambda: tls_init.init(Path(args.dir), args.client, args.name))
    try:
        flags = {key: getattr(args, key, None) for key in ("host", "port", "workers")}
        overrides = {"server": {key: value for key, value in flags.items() if value is not None}}
        settings = config.load(args.config, os.environ, overrides)
    except config.ConfigError as exc:
        return _refused(exc)
    logs.configure(settings.log_level)
    if args.command == "serve":
        return serve(settings)
    if args.command == "demo":
        from switch.cli import demo

        tls_dir = Path(args.tls_dir) if args.tls_dir else None
        return _refusing_cleanly(lambda: demo.main(settings, calls=args.calls, tls_dir=tls_dir))
    if args.command == "migrate":
        return _refusing_cleanly(lambda: migrate(settings))
    if args.command == "sim":
        return simulate(args)
    if args.command == "audit":
        from switch.cli import audit

        return _refusing_cleanly(lambda: audit.run(settings, args))
    raise AssertionError(args.command)


def _refused(exc: config.ConfigError | config.StartupError) -> int:
    """A configuration or start-up error: one line naming the setting, exit status 2."""
    kind = "configuration error" if isinstance(exc, config.ConfigError) else "start-up error"
    print(f"{kind}: {exc}", file=sys.stderr)
    return 2


def _refusing_cleanly(command: Callable[[], int]) -> int:
    try:
        return command()
    except (config.ConfigError, config.StartupError) as exc:
        return _refused(exc)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switch", description="gRPC transaction switch")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the switch")
    serve_cmd.add_argument("--host")
    serve_cmd.add_argument("--port", type=int)
    serve_cmd.add_argument("--workers", type=int, help="processes sharing the port (SO_REUSEPORT)")
    demo_cmd = commands.add_parser("demo", help="start the switch on the embedded default and drive it")
    demo_cmd.add_argument("--calls", type=int, default=300, help="how many calls the demo sends")
    demo_cmd.add_argument(
        "--tls-dir", help="a folder made by `switch tls init`: the demo's switch serves mutual TLS with it"
    )
    commands.add_parser("migrate", help="apply the journal's schema migrations")
    from switch.cli import keys

    keys.add_parser(commands)
    from switch.cli import audit, policy

    audit.add_parser(commands)
    policy.add_parser(commands)
    risk = commands.add_parser("risk", help="the fraud model: `switch risk train` trains it (dev extras)")
    risk.add_argument("risk_command", choices=["train"])
    risk.add_argument("options", nargs=argparse.REMAINDER, help="--out, --seed, --days: see `switch risk train -h`")
    tls = commands.add_parser("tls", help="certificates for trying mutual TLS (a throwaway CA)")
    tls_commands = tls.add_subparsers(dest="tls_command", required=True)
    tls_init = tls_commands.add_parser(
        "init", help="write a test CA, a server certificate and a client certificate (keys 0600)"
    )
    tls_init.add_argument(
        "--dir", required=True, help="the folder to write them in (created 0700; never replaces a file)"
    )
    tls_init.add_argument(
        "--client", default="spiffe://switch.local/client", help="the client certificate's identity (a SPIFFE id)"
    )
    tls_init.add_argument(
        "--name", action="append", default=None, help="a DNS name or IP the server certificate holds (repeatable)"
    )
    sim = commands.add_parser("sim", help="run a network simulator an adapter can talk to (e.g. card)")
    sim.add_argument("kind", help="a simulator installed under the 'switch.simulators' entry points, e.g. card")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=9583)
    sim.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    sim.add_argument("--drop-rate", type=float, default=0.0, help="share of requests never answered")
    sim.add_argument("--slow-rate", type=float, default=0.0, help="share of requests answered too late")
    sim.add_argument("--late-delay", type=float, default=5.0, help="seconds a late answer takes")
    for command in (serve_cmd, demo_cmd, commands.choices["migrate"], sim):
        command.add_argument("--config", help="a TOML configuration file")
    return parser


def serve(settings: config.Settings) -> int:
    workers = settings.server.workers
    if workers == 1:
        return _run_worker(settings)
    if settings.server.port == 0:
        return _refused(config.ConfigError("server.port: name a port when running several workers"))
    from switch.cli.supervisor import Supervisor

    return Supervisor(settings, functools.partial(_run_worker, supervisor=os.getpid())).run()


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
# What a worker handles: the stops, and SIGHUP, which reads the TLS files and the policy again.
WORKER_SIGNALS = {*STOP_SIGNALS, signal.SIGHUP}
ORPHAN_CHECK_SECONDS = 1.0


def _run_worker(settings: config.Settings, ready: int | None = None, supervisor: int | None = None) -> int:
    """Serves until SIGTERM or SIGINT, or until its supervisor (that pid) is gone. ready:
    a pipe to write b"1" to once serving."""
    import uvloop

    from switch import server

    async def run() -> None:
        # Handled from here on; a signal sent earlier (the supervisor blocks them in a
        # worker until now) is delivered at the unblock, so a worker stopped while it
        # starts still drains and exits cleanly.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stop.set)
        built: list[server.RunningSwitch] = []
        reloads: set[asyncio.Task[None]] = set()
        loop.add_signal_handler(signal.SIGHUP, _reload, built, reloads)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)
        running = await server.build(settings, spread=_spread(supervisor))
        built.append(running)
        tune_garbage_collector()
        log.info("serving on %s:%d (pid %d)", settings.server.host, running.port, os.getpid())
        if ready is not None:
            os.write(ready, b"1")
            os.close(ready)
        watch = asyncio.create_task(_stop_when_orphaned(supervisor, stop)) if supervisor else None
        await stop.wait()
        if watch is not None:
            watch.cancel()
        log.info("draining (up to %.0f s)", settings.server.drain_seconds)
        await running.stop(settings.server.drain_seconds)
        log.info("stopped")

    return _refusing_cleanly(lambda: uvloop.run(run()) or 0)


async def _stop_when_orphaned(supervisor: int, stop: asyncio.Event) -> None:
    """A supervisor killed outright (SIGKILL, the OOM killer) cannot stop its workers, and
    nothing would replace them: a worker whose parent is no longer it drains and stops."""
    while os.getppid() == supervisor:  # noqa: ASYNC110  (no event tells Python its parent died)
        await asyncio.sleep(ORPHAN_CHECK_SECONDS)
    log.error("the supervisor (pid %d) is gone: draining and stopping", supervisor)
    stop.set()


def _reload(built: list[Any], reloads: set[asyncio.Task[None]]) -> None:
    """SIGHUP: the TLS files and the risk policy bundle (with its latest promotion), read
    again; the policy's reload reads the journal, so it runs as a task, kept in reloads
    until it ends (the loop holds tasks weakly)."""
    certificates = built[0].certificates if built else None
    if certificates is None:
        log.info("SIGHUP: no [server.tls] to read again")
    else:
        certificates.reload()
    reload_policy = built[0].reload_policy if built else None
    if reload_policy is not None:
        task = asyncio.get_running_loop().create_task(_reload_policy(reload_policy))
        reloads.add(task)
        task.add_done_callback(reloads.discard)


async def _reload_policy(reload_policy: Callable[[], Awaitable[bool]]) -> None:
    """One policy reload; whatever it raises is logged: a reload never stops the worker."""
    try:
        await reload_policy()
    except Exception:
        log.exception("policy reload failed; the policy in force goes on serving")


def _spread(supervisor: int | None) -> Callable[[], None]:
    """What tells every worker to read its policy again (PromoteModel): SIGHUP to the
    supervisor, which relays it to them all; nothing for a switch of one process."""

    def spread() -> None:
        if supervisor is None:
            return
        try:
            os.kill(supervisor, signal.SIGHUP)
        except ProcessLookupError:  # it is gone: this worker stops too (_stop_when_orphaned)
            log.error("the supervisor (pid %d) is gone: the other workers were not told to reload", supervisor)

    return spread


# Objects made per request (protobufs, results, rows) hold no reference cycles, so
# the young generation only needs collecting now and then; at the default
# threshold (700) it would run every few batches, looking for cycles that are not there.
YOUNG_GENERATION_THRESHOLD = 50_000


def tune_garbage_collector() -> None:
    """Moves everything built at start-up (modules, settings, key rings, pools) out of
    the collector's sight, and collects the young generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, oldest)


def migrate(settings: config.Settings) -> int:
    from switch import server

    applied = asyncio.run(server.migrate(settings))
    log.info("applied %d migration(s)", applied)
    return 0


SIMULATORS = "switch.simulators"


def simulate(args: argparse.Namespace) -> int:
    """Runs one simulator until SIGTERM; found by entry point, like adapters."""
    from importlib.metadata import entry_points

    found = {ep.name: ep for ep in entry_points(group=SIMULATORS)}
    if args.kind not in found:
        print(f"no simulator named {args.kind!r}; installed: {', '.join(sorted(found)) or 'none'}", file=sys.stderr)
        return 2
    start = found[args.kind].load()
    options = {
        "latency": args.latency,
        "drop_rate": args.drop_rate,
        "slow_rate": args.slow_rate,
        "late_delay": args.late_delay,
    }

    async def run() -> None:
        simulator, port = await start(args.host, args.port, **options)
        log.info("%s simulator listening on %s:%d", args.kind, args.host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await simulator.close()

    asyncio.run(run())
    return 0
