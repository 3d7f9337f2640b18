"""Micro-batching: concurrent authorizations are coalesced into pipeline batches.

A batch leaves when it holds max_items, or max_delay after its first item, or,
when every pipeline slot is busy, as soon as a slot frees up: under load batches
grow by themselves (group commit) while a lone call waits at most max_delay.

The queue is bounded: past max_pending a call is refused at once with
Overloaded, before anything is claimed, journaled or sent; max_pending bounds
every admitted call not yet answered, wherever it waits. An item whose key is
in flight elsewhere is queued again with backoff until that caller finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from switch.config import BatcherSettings
from switch.errors import ConcurrentUpdate, Overloaded, SwitchError, Unavailable
from switch.models import Authorization, AuthorizationResult
from switch.pipeline import InFlight, Outcome

log = logging.getLogger(__name__)

RunBatch = Callable[[Sequence[Authorization]], Awaitable[list[Outcome]]]
Answer = AuthorizationResult | SwitchError

_FIRST_RETRY_SECONDS = 0.002
_MAX_RETRY_SECONDS = 0.1


@dataclass(slots=True)
class _Waiter:
    authorization: Authorization
    future: asyncio.Future[Answer]
    attempts: int = 0
    first_seen: float = field(default=0.0)


class MicroBatcher:
    def __init__(self, run: RunBatch, settings: BatcherSettings, in_flight_wait_seconds: float) -> None:
        self._run = run
        self._max_items = settings.max_items
        self._max_delay = settings.max_delay_ms / 1000.0
        self._max_pending = settings.max_pending
        self._slots = asyncio.Semaphore(settings.max_concurrent_batches)
        self._in_flight_wait = in_flight_wait_seconds
        self._pending: deque[_Waiter] = deque()
        self._has_items = asyncio.Event()
        self._full = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._admitted = 0  # answers owed: queued, in a running batch, or waiting to retry
        self._retrying = 0
        self._closing = False
        self._flusher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._flusher = asyncio.get_running_loop().create_task(self._flush_forever(), name="batcher-flush")

    async def submit(self, authorization: Authorization) -> AuthorizationResult:
        (answer,) = await self.submit_many([authorization])
        if isinstance(answer, SwitchError):
            raise answer
        return answer

    async def submit_many(self, authorizations: Sequence[Authorization]) -> list[Answer]:
        """Answers in order. Refuses the whole call, before any side effect, when full."""
        if self._closing:
            raise Unavailable("the switch is shutting down; retry on another instance")
        if self._admitted + len(authorizations) > self._max_pending:
            raise Overloaded("the switch is at capacity; retry with backoff")
        loop = asyncio.get_running_loop()
        waiters = [_Waiter(a, loop.create_future(), first_seen=loop.time()) for a in authorizations]
        self._admitted += len(waiters)
        for waiter in waiters:
            waiter.future.add_done_callback(self._answered)
        self._enqueue(waiters)
        return list(await asyncio.gather(*(w.future for w in waiters)))

    async def close(self) -> None:
        """Stops taking calls, answers everything queued, then stops the flusher."""
        self._closing = True
        while self._pending or self._running or self._retrying:  # noqa: ASYNC110 - three sources of work
            await asyncio.sleep(0.005)
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)

    def _answered(self, _: asyncio.Future[Answer]) -> None:
        self._admitted -= 1

    def _enqueue(self, waiters: Sequence[_Waiter]) -> None:
        self._pending.extend(waiters)
        self._has_items.set()
        if len(self._pending) >= self._max_items:
            self._full.set()

    async def _flush_forever(self) -> None:
        while True:
            await self._has_items.wait()
            if len(self._pending) < self._max_items and self._max_delay > 0:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._max_delay)
            await self._slots.acquire()
            count = min(self._max_items, len(self._pending))
            batch = [self._pending.popleft() for _ in range(count)]
            if not self._pending:
                self._has_items.clear()
            if not batch:
                self._slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._run_batch(batch))
            self._running.add(task)
            task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slots.release()

    async def _run_batch(self, batch: list[_Waiter]) -> None:
        try:
            outcomes = await self._run([w.authorization for w in batch])
        except Exception as exc:  # a store failed before anything was decided
            log.exception("a batch of %d failed", len(batch))
            error = exc if isinstance(exc, SwitchError) else Unavailable(f"a store failed: {type(exc).__name__}")
            outcomes = [error] * len(batch)
        for waiter, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, InFlight):
                self._retry_later(waiter)
            elif not waiter.future.done():
                waiter.future.set_result(outcome)

    def _retry_later(self, waiter: _Waiter) -> None:
        if waiter.future.done():  # the caller went away
            return
        loop = asyncio.get_running_loop()
        if loop.time() - waiter.first_seen > self._in_flight_wait:
            waiter.future.set_result(
                ConcurrentUpdate("a request with this idempotency key is still in flight; retry later")
            )
            return
        delay = min(_FIRST_RETRY_SECONDS * 2**waiter.attempts, _MAX_RETRY_SECONDS)
        waiter.attempts += 1
        self._retrying += 1
        loop.call_later(delay, self._requeue, waiter)

    def _requeue(self, waiter: _Waiter) -> None:
        self._retrying -= 1
        self._enqueue([waiter])
