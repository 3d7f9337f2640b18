"""`switch serve | demo | migrate`: the command line.

Nothing here imports gRPC at module level: `serve --workers N` forks its worker
processes first, as gRPC Python requires, and each worker builds its own server
on the shared port (SO_REUSEPORT).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from switch import config, logs

log = logging.getLogger("switch")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        flags = {key: getattr(args, key, None) for key in ("host", "port", "workers")}
        overrides = {"server": {key: value for key, value in flags.items() if value is not None}}
        settings = config.load(args.config, os.environ, overrides)
    except config.ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    if args.command == "serve":
        return serve(settings)
    if args.command == "demo":
        from switch import demo

        return demo.main(settings, calls=args.calls)
    if args.command == "migrate":
        return migrate(settings)
    raise AssertionError(args.command)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switch", description="gRPC transaction switch")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the switch")
    serve_cmd.add_argument("--host")
    serve_cmd.add_argument("--port", type=int)
    serve_cmd.add_argument("--workers", type=int, help="processes sharing the port (SO_REUSEPORT)")
    demo_cmd = commands.add_parser("demo", help="start the switch on the embedded default and drive it")
    demo_cmd.add_argument("--calls", type=int, default=300, help="how many calls the demo sends")
    commands.add_parser("migrate", help="apply the journal's schema migrations")
    for command in (serve_cmd, demo_cmd, commands.choices["migrate"]):
        command.add_argument("--config", help="a TOML configuration file")
    return parser


def serve(settings: config.Settings) -> int:
    workers = settings.server.workers
    if workers == 1:
        return _run_worker(settings)
    if settings.server.port == 0:
        print("configuration error: server.port: name a port when running several workers", file=sys.stderr)
        return 2
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # the worker: gRPC is imported only now, after the fork
            os._exit(_run_worker(settings))
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    for child in children:
        _, code = os.waitpid(child, 0)
        status = status or os.waitstatus_to_exitcode(code)
    return status


def _run_worker(settings: config.Settings) -> int:
    import uvloop

    from switch import server

    async def run() -> None:
        running = await server.build(settings)
        log.info("serving on %s:%d (pid %d)", settings.server.host, running.port, os.getpid())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("draining (up to %.0f s)", settings.server.drain_seconds)
        await running.stop(settings.server.drain_seconds)
        log.info("stopped")

    uvloop.run(run())
    return 0


def migrate(settings: config.Settings) -> int:
    if settings.stores.embedded:
        import sqlite3
        from pathlib import Path

        from switch.stores import sqlite

        path = Path(settings.stores.sqlite_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        applied = sqlite.migrate(sqlite3.connect(path, isolation_level=None))
    else:
        from switch.stores import postgres

        schema = settings.stores.postgres_schema or None
        applied = asyncio.run(postgres.migrate(settings.stores.postgres_dsn, schema=schema))
    log.info("applied %d migration(s)", applied)
    return 0
