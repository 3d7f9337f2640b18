"""The faults, each injected into a running World while the load goes on.

    postgres-cut    every PostgreSQL connection reset, new ones refused, for 1-2 s
    postgres-hold   no byte to or from PostgreSQL for 2-4 s (connections stay open)
    postgres-delay  0.2 s added to every chunk to and from PostgreSQL, for 1.5-3 s
    redis-kill      kill -9 of the test's redis-server (its keys are lost), started
                    again on the same port after 0.5-1.5 s
    worker-kill     kill -9 of one `switch serve` worker, mid-batch; the survivor carries
                    the load while the parent forks a replacement, which must serve
                    within REPLACED_WITHIN seconds

Durations are drawn from the injector's seeded random generator.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.faults.harness import World

POSTGRES_CUT = "postgres-cut"
POSTGRES_HOLD = "postgres-hold"
POSTGRES_DELAY = "postgres-delay"
REDIS_KILL = "redis-kill"
WORKER_KILL = "worker-kill"
FAULT_KINDS = (POSTGRES_CUT, POSTGRES_HOLD, POSTGRES_DELAY, REDIS_KILL, WORKER_KILL)
DELAY_SECONDS = 0.2  # per chunk, each way
REPLACED_WITHIN = 15.0  # seconds for the parent to fork a replacement that serves


@dataclass(frozen=True)
class FaultEvent:
    kind: str
    started: float  # wall clock
    ended: float  # healed (for a worker kill: the replacement serves)
    note: str


class Injector:
    def __init__(self, world: World, rng: random.Random) -> None:
        self.world = world
        self.rng = rng

    async def inject(self, kind: str) -> FaultEvent:
        started = time.time()
        note = await {
            POSTGRES_CUT: self.postgres_cut,
            POSTGRES_HOLD: self.postgres_hold,
            POSTGRES_DELAY: self.postgres_delay,
            REDIS_KILL: self.redis_kill,
            WORKER_KILL: self.worker_kill,
        }[kind]()
        return FaultEvent(kind, started, time.time(), note)

    async def postgres_cut(self) -> str:
        seconds = self.rng.uniform(1.0, 2.0)
        await self._postgres_fault(self.world.pg_proxy.cut, seconds)
        return f"{seconds:.1f} s"

    async def postgres_hold(self) -> str:
        seconds = self.rng.uniform(2.0, 4.0)
        await self._postgres_fault(lambda: self.world.pg_proxy.hold(seconds), seconds)
        return f"{seconds:.1f} s"

    async def postgres_delay(self) -> str:
        seconds = self.rng.uniform(1.5, 3.0)
        await self._postgres_fault(lambda: self.world.pg_proxy.delay(DELAY_SECONDS), seconds)
        return f"{DELAY_SECONDS} s per chunk for {seconds:.1f} s"

    async def _postgres_fault(self, start: Callable[[], None], seconds: float) -> None:
        """start() on the proxy in front of PostgreSQL, then heal it after seconds."""
        start()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.world.pg_proxy.heal()

    async def redis_kill(self) -> str:
        down = self.rng.uniform(0.5, 1.5)
        await self.world.redis.kill()
        await asyncio.sleep(down)
        await self.world.redis.start()
        return f"down {down:.1f} s"

    async def worker_kill(self) -> str:
        serve = self.world.switch
        assert serve is not None
        workers = serve.children()
        if not workers:
            raise RuntimeError("no switch worker to kill")
        victim = self.rng.choice(workers)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + REPLACED_WITHIN
        while True:
            replacements = set(serve.children()) - set(workers)
            if replacements and serve.serves(replacements.pop()):
                took = REPLACED_WITHIN - (deadline - time.monotonic())
                return f"pid {victim} of {len(workers)}: replaced, serving after {took:.1f} s"
            if time.monotonic() > deadline:
                raise RuntimeError(f"the parent did not replace worker {victim} within {REPLACED_WITHIN:.0f} s")
            await asyncio.sleep(0.1)


__all__ = ["FAULT_KINDS", "FaultEvent", "Injector"]
