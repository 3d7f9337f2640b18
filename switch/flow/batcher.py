"""Micro-batching: concurrent authorizations are coalesced into pipeline batches.

Group commit, sized by the load itself: when no batch is running, what is queued
leaves at once, so a lone call never waits. While batches run, arrivals gather
until a running batch finishes, the queue holds max_items, or the oldest has
waited max_delay (then a further batch starts, up to max_concurrent_batches, so
slow I/O does not hold everything up). The busier the switch, the larger its
batches, and per-batch costs (store round trips, commits) are shared by more items.

The queue is bounded: past max_pending a call is refused at once with
Overloaded, before anything is claimed, journaled or sent; max_pending bounds
every admitted item not yet answered, wherever it waits. An item whose key is
in flight elsewhere is queued again with backoff until that caller finishes.
Each call waits on one future, however many items it holds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from switch.domain.errors import Overloaded, SwitchError, Unavailable
from switch.domain.models import Authorization, AuthorizationResult
from switch.flow.pipeline import InFlight, Outcome
from switch.telemetry.metrics import SwitchMetrics

log = logging.getLogger(__name__)

RunBatch = Callable[[Sequence[Authorization]], Awaitable[list[Outcome]]]
Answer = AuthorizationResult | SwitchError

_FIRST_RETRY_SECONDS = 0.002
_MAX_RETRY_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class BatcherSettings:
    max_items: int = 256
    max_delay_ms: float = 5.0  # only a busy pipeline makes arrivals wait (see switch.flow.batcher)
    max_concurrent_batches: int = 4
    max_pending: int = 20_000  # queued items beyond this are shed with RESOURCE_EXHAUSTED


class _Call:
    """One caller's items and the future it waits on, settled when the last item is."""

    __slots__ = ("answers", "future", "unanswered")

    def __init__(self, future: asyncio.Future[list[Answer]], size: int) -> None:
        self.future = future
        self.answers: list[Answer | None] = [None] * size
        self.unanswered = size


class _Waiter:
    """One item in the queue: which call and place it answers."""

    __slots__ = ("attempts", "authorization", "call", "first_seen", "index", "queued_at")

    def __init__(self, authorization: Authorization, call: _Call, index: int, now: float) -> None:
        self.authorization = authorization
        self.call = call
        self.index = index
        self.attempts = 0
        self.first_seen = now
        self.queued_at = now


class MicroBatcher:
    def __init__(
        self,
        run: RunBatch,
        settings: BatcherSettings,
        in_flight_wait_seconds: float,
        metrics: SwitchMetrics | None = None,
    ) -> None:
        self._run = run
        self._metrics = metrics or SwitchMetrics()
        self._max_items = settings.max_items
        self._max_delay = settings.max_delay_ms / 1000.0
        self._max_pending = settings.max_pending
        self._max_batches = settings.max_concurrent_batches
        self._in_flight_wait = in_flight_wait_seconds
        self._pending: deque[_Waiter] = deque()
        self._has_items = asyncio.Event()
        self._wake: asyncio.Future[None] | None = None  # the flusher's, while it sleeps
        self._running: set[asyncio.Task[None]] = set()
        self._admitted = 0  # items owed an answer: queued, in a running batch, or waiting to retry
        self._retrying = 0
        self._closing = False
        self._flusher: asyncio.Task[None] | None = None

    @property
    def owed(self) -> int:
        """Items admitted and not yet answered: never more than max_pending."""
        return self._admitted

    def start(self) -> None:
        self._flusher = asyncio.get_running_loop().create_task(self._flush_forever(), name="batcher-flush")

    async def submit(self, authorization: Authorization) -> AuthorizationResult:
        (answer,) = await self.submit_many([authorization])
        if isinstance(answer, SwitchError):
            raise answer
        return answer

    async def submit_many(self, authorizations: Sequence[Authorization]) -> list[Answer]:
        """Answers in order. Refuses the whole call, before any side effect, when full."""
        return await self.enqueue_many(authorizations)

    def enqueue_many(self, authorizations: Sequence[Authorization]) -> asyncio.Future[list[Answer]]:
        """submit_many without the wait: the future of the answers, for a caller that
        keeps many calls open (a stream) and would otherwise need a task for each.
        Cancelling the future withdraws the items that no batch has taken yet."""
        if self._closing:
            raise Unavailable("the switch is shutting down; retry on another instance")
        if self._admitted + len(authorizations) > self._max_pending:
            self._metrics.shed.inc((), len(authorizations))
            raise Overloaded("the switch is at capacity; retry with backoff")
        loop = asyncio.get_running_loop()
        call = _Call(loop.create_future(), len(authorizations))
        if not authorizations:
            call.future.set_result([])
            return call.future
        now = loop.time()
        self._admitted += len(authorizations)
        self._enqueue([_Waiter(a, call, index, now) for index, a in enumerate(authorizations)])
        return call.future  # every slot is filled before it resolves

    async def close(self) -> None:
        """Stops taking calls, answers everything queued, then stops the flusher."""
        self._closing = True
        while self._pending or self._running or self._retrying:  # noqa: ASYNC110 - three sources of work
            await asyncio.sleep(0.005)
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)

    def _enqueue(self, waiters: Sequence[_Waiter]) -> None:
        self._pending.extend(waiters)
        self._has_items.set()
        if len(self._pending) >= self._max_items:
            self._wake_up()

    async def _flush_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._has_items.wait()
            if len(self._running) >= self._max_batches:
                await self._sleep_until_woken(None)  # every slot busy: wait for a batch to finish
                continue
            if self._running and len(self._pending) < self._max_items:
                waited = loop.time() - self._pending[0].queued_at
                if waited < self._max_delay:  # gather more while the running batches work
                    await self._sleep_until_woken(self._max_delay - waited)
                    continue
            self._dispatch(loop)

    async def _sleep_until_woken(self, seconds: float | None) -> None:
        """Until a batch finishes or the queue fills, or for at most seconds. A bare
        future and a timer: wait_for would start a task for every sleep."""
        loop = asyncio.get_running_loop()
        self._wake = wake = loop.create_future()
        timer = None if seconds is None else loop.call_later(seconds, self._wake_up)
        try:
            await wake
        finally:
            self._wake = None
            if timer is not None:
                timer.cancel()

    def _wake_up(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        batch: list[_Waiter] = []
        while self._pending and len(batch) < self._max_items:
            waiter = self._pending.popleft()
            if waiter.call.future.done():  # the caller went away: nothing to do for it
                self._admitted -= 1
            else:
                batch.append(waiter)
        if not self._pending:
            self._has_items.clear()
        if not batch:
            return
        task = loop.create_task(self._run_batch(batch))
        self._running.add(task)
        task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._wake_up()

    async def _run_batch(self, batch: list[_Waiter]) -> None:
        started = time.perf_counter()
        try:
            outcomes = await self._run([w.authorization for w in batch])
        except Exception as exc:  # a store failed before anything was decided
            log.exception("a batch of %d failed", len(batch))
            error = exc if isinstance(exc, SwitchError) else Unavailable(f"a store failed: {type(exc).__name__}")
            outcomes = [error] * len(batch)
        self._metrics.batch_items.observe(len(batch))
        self._metrics.batch_seconds.observe(time.perf_counter() - started)
        for waiter, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, InFlight):
                self._retry_later(waiter)
            else:
                self._settle(waiter, outcome)

    def _settle(self, waiter: _Waiter, answer: Answer) -> None:
        self._admitted -= 1
        call = waiter.call
        call.answers[waiter.index] = answer
        call.unanswered -= 1
        if not call.unanswered and not call.future.done():
            call.future.set_result(call.answers)  # type: ignore[arg-type]

    def _retry_later(self, waiter: _Waiter) -> None:
        if waiter.call.future.done():  # the caller went away
            self._admitted -= 1
            return
        loop = asyncio.get_running_loop()
        if loop.time() - waiter.first_seen > self._in_flight_wait:
            self._settle(
                waiter, Unavailable("a request with this idempotency key is still in flight; retry with the same key")
            )
            return
        delay = min(_FIRST_RETRY_SECONDS * 2**waiter.attempts, _MAX_RETRY_SECONDS)
        waiter.attempts += 1
        self._retrying += 1
        loop.call_later(delay, self._requeue, waiter)

    def _requeue(self, waiter: _Waiter) -> None:
        self._retrying -= 1
        waiter.queued_at = asyncio.get_running_loop().time()
        self._enqueue([waiter])
