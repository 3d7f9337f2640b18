"""`switch demo`: start the switch in this process on the embedded default and drive it.

The demo forces the embedded stores (memory + a fresh SQLite file in a temporary
folder), listens on 127.0.0.1 with a free port, adds an instrument velocity limit
so that a "65" decline can be shown, uses its own fee schedule (switch.cli.demo.fees)
when none is configured (so fees and revenue shares show), and sends a fixed script
of calls followed by a deterministic mix of filler calls up to `calls` RPCs in all
(switch.cli.demo.script). Every call has an expected outcome; the summary table on
stdout (switch.cli.demo.report) lists, per RPC and outcome, the count and the median
latency, then a few example lines. Instruments are printed masked only, never in
clear (switch.cli.demo.cards).

Returns 0 when every expectation held, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import grpc
import uvloop

from switch.cli.demo.fees import DEMO_FEES
from switch.cli.demo.report import Report
from switch.cli.demo.script import VELOCITY, Script
from switch.config import Settings, StoreSettings, from_mapping
from switch.v1 import switch_pb2_grpc

DEMO_TIMEOUT = 60.0


def main(settings: Settings, calls: int = 300) -> int:
    """Runs the demo on a private embedded switch; 0 when every expectation held."""
    with tempfile.TemporaryDirectory(prefix="switch-demo-") as folder:
        fees = settings if settings.fee_schedules else from_mapping(DEMO_FEES)
        demo_settings = replace(
            settings,
            server=replace(settings.server, host="127.0.0.1", port=0, workers=1),
            stores=StoreSettings(sqlite_path=str(Path(folder) / "journal.sqlite3")),
            limits=(*settings.limits, VELOCITY),
            tokenization=None,  # the embedded default makes its own key ring in the folder
            fee_schedules=fees.fee_schedules,
            fx=fees.fx,
        )
        return uvloop.run(_run(demo_settings, calls))


async def _run(settings: Settings, calls: int) -> int:
    from switch import server

    running = await server.build(settings)
    report = Report()
    started = time.perf_counter()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = switch_pb2_grpc.SwitchStub(channel)
            tokens = switch_pb2_grpc.TokensStub(channel)
            async with asyncio.timeout(DEMO_TIMEOUT):
                await Script(stub, tokens, report).run(calls)
    except TimeoutError:
        report.fail(f"the demo did not finish within {DEMO_TIMEOUT:.0f} s")
    finally:
        await running.stop(1.0)
    report.print_summary(calls, time.perf_counter() - started)
    return 1 if report.failures else 0
