"""Where a list's index lives and never-seen names are screened: off the event loop.

In a thread the screening holds the interpreter lock while it runs, so the event loop
of a worker stalls for a few milliseconds while a batch of new names is screened. In
its own process it does not: the index is built there (the process is spawned, never
forked from a worker that runs gRPC), names go in and matches come back by pickling,
and the event loop only waits on a future. A new list gets a new process; the old one
finishes what it was given and goes.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from .matching import Match, Screener

Entries = Sequence[tuple[str, Sequence[str]]]  # (uid, names) of each listed party

log = logging.getLogger(__name__)


class Index(Protocol):
    async def best_many(self, names: Sequence[str]) -> list[Match | None]: ...

    def close(self) -> None: ...


class ThreadIndex:
    """The index in this process; names screened on executor's threads (None: asyncio's default)."""

    def __init__(self, screener: Screener, executor: Executor | None) -> None:
        self.screener = screener
        self._executor = executor

    @classmethod
    async def build(cls, entries: Entries, executor: Executor | None = None) -> ThreadIndex:
        screener = await asyncio.get_running_loop().run_in_executor(executor, Screener, entries)
        return cls(screener, executor)

    async def best_many(self, names: Sequence[str]) -> list[Match | None]:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.screener.best_many, names)

    def close(self) -> None:
        return None


class ProcessIndex:
    """The index in a process of its own; a process that dies is spawned again."""

    def __init__(self, pool: ProcessPoolExecutor, entries: list[tuple[str, Sequence[str]]]) -> None:
        self._pool = pool
        self._entries = entries

    @classmethod
    async def build(cls, entries: Entries) -> ProcessIndex:
        """Spawns the process and waits until its index is built, so the first batch that uses it
        does not wait for that."""
        listed = list(entries)
        return cls(await _spawned(listed), listed)

    async def best_many(self, names: Sequence[str]) -> list[Match | None]:
        loop = asyncio.get_running_loop()
        pool = self._pool
        try:
            return await loop.run_in_executor(pool, _best_many, list(names))
        except BrokenProcessPool:
            log.error("the sanctions index process died; spawning it again")
            if self._pool is pool:  # one batch respawns it; the others use the new one
                self._pool = await _spawned(self._entries)
            return await loop.run_in_executor(self._pool, _best_many, list(names))

    def close(self) -> None:
        self._pool.shutdown(wait=False)  # what a batch gave it still runs to its end


async def _spawned(entries: list[tuple[str, Sequence[str]]]) -> ProcessPoolExecutor:
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(1, mp_context=context, initializer=_load, initargs=(entries,))
    try:
        await asyncio.get_running_loop().run_in_executor(pool, _best_many, [])
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    return pool


_screener: Screener | None = None  # in the index's process: its list's index


def _load(entries: Entries) -> None:
    global _screener  # noqa: PLW0603  # the process's one index, set once by its initializer
    _screener = Screener(entries)


def _best_many(names: list[str]) -> list[Match | None]:
    assert _screener is not None, "the index process starts with its list"
    return _screener.best_many(names)
