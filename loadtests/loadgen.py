"""A load generator process: `python -m loadtests.loadgen`, started by loadtests/generators.py.

It runs the load driver (loadtests/driver.py) in a process of its own, so the client
never shares a GIL with the orchestrator or with the servers it measures. One JSON
object a line on stdin and stdout, per run:

    in  {"plan": {...driver.Plan...}}     it builds the requests and connects
    out {"ready": true}                   (or {"error": "..."})
    in  {"go": <time.time() instant>}     every generator of a run gets the same instant
    out {...the driver's report...}       (or {"error": "..."})

It exits when stdin closes.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from typing import Any

import orjson

from loadtests import payloads
from loadtests.driver import Driver, Plan


def main() -> int:
    import uvloop  # the switch's own event loop: the client pays what the server pays

    return uvloop.run(_serve())


async def _serve() -> int:
    while (message := await _read()) is not None:
        try:
            plan = Plan(**message["plan"])
        except (KeyError, TypeError) as error:
            _write({"error": f"not a plan: {error!r}"})
            continue
        if not await _one_run(plan):
            return 0
    return 0


async def _one_run(plan: Plan) -> bool:
    """One run, from its plan to its report; False when stdin closed before "go"."""
    try:
        source = payloads.source(plan.requests, plan.mode, plan.run_id, plan.batch_items, plan.pool)
        sample = payloads.Requests(plan.mode, plan.run_id, plan.batch_items).build()
        payloads.check_payload(plan.mode, sample, plan.run_id, plan.batch_items)
        driver = Driver(plan, source)
        await driver.open()
    except Exception as error:  # the orchestrator prints it and stops
        _write({"error": f"{type(error).__name__}: {error}"})
        return True
    # The pre-built requests live through the run: keep the collector from walking them.
    gc.collect()
    gc.freeze()
    try:
        _write({"ready": True})
        go = await _read()
        if go is None:
            return False
        start = time.perf_counter() + (float(go["go"]) - time.time())
        try:
            report = await driver.run(start)
        except Exception as error:
            report = {"error": f"{type(error).__name__}: {error}"}
        _write(report)
        return True
    finally:
        await driver.close()
        del source, driver
        gc.unfreeze()
        gc.collect()


async def _read() -> Any:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.readline)
    return orjson.loads(line) if line.strip() else None


def _write(message: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(message) + b"\n")
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    sys.exit(main())
