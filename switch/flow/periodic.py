"""A background pass that runs every few tenths of a second until closed.

The reversal queue and the pending operations are durable in the journal, so a
pass that fails (a store hiccup) is logged and simply tried again on the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Periodic:
    """Subclasses implement run_once(); start() runs it every `interval` seconds."""

    name = "periodic"

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run_forever(), name=self.name)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # durable work: the next pass tries again
                log.exception("%s pass failed", self.name)
            await asyncio.sleep(self._interval)


class Every(Periodic):
    """Runs work every interval seconds (a task with no state of its own)."""

    def __init__(self, interval: float, name: str, work: Callable[[], Awaitable[object]]) -> None:
        super().__init__(interval)
        self.name = name
        self._work = work

    async def run_once(self) -> int:
        await self._work()
        return 1
