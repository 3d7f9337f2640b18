"""The micro-batcher: coalescing, bounds, load shedding, in-flight retries, draining."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from switch.domain.errors import Overloaded, Unavailable
from switch.domain.models import Account, Authorization, AuthorizationResult, Money
from switch.flow.batcher import BatcherSettings, MicroBatcher
from switch.flow.pipeline import InFlight, Outcome


def item(key: str) -> Authorization:
    return Authorization(key, "m", Money(1, "USD"), Account("instant", "a"))


def answer(authorization: Authorization) -> AuthorizationResult:
    return AuthorizationResult(authorization.idempotency_key, "tx", "00", "approved")


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, batch: Sequence[Authorization]) -> list[Outcome]:
        self.batches.append([a.idempotency_key for a in batch])
        await self.gate.wait()
        return [answer(a) for a in batch]


def settings(**changes: float) -> BatcherSettings:
    values: dict[str, float] = {"max_items": 10, "max_delay_ms": 5, "max_concurrent_batches": 2, "max_pending": 1000}
    values.update(changes)
    return BatcherSettings(**values)  # type: ignore[arg-type]


async def started(run: object, **changes: float) -> MicroBatcher:
    batcher = MicroBatcher(run, settings(**changes), in_flight_wait_seconds=0.3)  # type: ignore[arg-type]
    batcher.start()
    return batcher


async def held_by(key: str, **changes: float) -> tuple[Recorder, MicroBatcher, asyncio.Future[AuthorizationResult]]:
    """A batcher whose pipeline is stuck (its gate shut) on one call of `key`."""
    run = Recorder()
    run.gate.clear()
    batcher = await started(run, **changes)
    call = asyncio.ensure_future(batcher.submit(item(key)))
    await asyncio.sleep(0.01)
    return run, batcher, call


async def test_concurrent_calls_share_batches_no_larger_than_max_items() -> None:
    run = Recorder()
    batcher = await started(run)
    answers = await asyncio.gather(*(batcher.submit(item(f"k{i}")) for i in range(35)))
    assert [a.idempotency_key for a in answers] == [f"k{i}" for i in range(35)]
    assert sorted(k for batch in run.batches for k in batch) == sorted(f"k{i}" for i in range(35))
    assert max(len(b) for b in run.batches) <= 10
    assert len(run.batches) <= 6  # coalesced: far fewer batches than calls
    await batcher.close()


async def test_submit_many_answers_in_order() -> None:
    batcher = await started(Recorder())
    answers = await batcher.submit_many([item(f"b{i}") for i in range(25)])
    assert [a.idempotency_key for a in answers if isinstance(a, AuthorizationResult)] == [f"b{i}" for i in range(25)]
    await batcher.close()


async def test_overload_is_refused_before_the_pipeline_sees_it() -> None:
    run = Recorder()
    run.gate.clear()  # the pipeline is stuck: nothing drains
    batcher = await started(run, max_pending=5, max_concurrent_batches=1)
    admitted = [asyncio.ensure_future(batcher.submit(item(f"ok{i}"))) for i in range(5)]
    await asyncio.sleep(0.02)
    with pytest.raises(Overloaded):
        await batcher.submit(item("too-many"))
    with pytest.raises(Overloaded):
        await batcher.submit_many([item("x"), item("y")])
    run.gate.set()
    assert len(await asyncio.gather(*admitted)) == 5
    assert all("too-many" not in batch and "x" not in batch for batch in run.batches)
    await batcher.close()


async def test_an_in_flight_key_is_asked_again_until_answered() -> None:
    calls = 0

    async def run(batch: Sequence[Authorization]) -> list[Outcome]:
        nonlocal calls
        calls += 1
        return [InFlight() if calls < 3 else answer(a) for a in batch]

    batcher = await started(run)
    assert (await batcher.submit(item("busy"))).idempotency_key == "busy"
    assert calls == 3
    await batcher.close()


async def test_an_in_flight_key_gives_up_after_the_wait() -> None:
    async def run(batch: Sequence[Authorization]) -> list[Outcome]:
        return [InFlight() for _ in batch]

    batcher = await started(run)
    with pytest.raises(Unavailable, match="still in flight"):  # retryable with the same key, like a store fault
        await batcher.submit(item("stuck"))
    await batcher.close()


async def test_a_failing_pipeline_fails_its_batch_as_unavailable() -> None:
    async def run(batch: Sequence[Authorization]) -> list[Outcome]:
        raise ConnectionError("redis went away")

    batcher = await started(run)
    with pytest.raises(Unavailable):
        await batcher.submit(item("a"))
    await batcher.close()


async def test_close_answers_what_is_queued_then_refuses() -> None:
    run, batcher, queued = await held_by("queued")
    closing = asyncio.ensure_future(batcher.close())
    await asyncio.sleep(0.01)
    with pytest.raises(Unavailable):
        await batcher.submit(item("late"))
    run.gate.set()
    await closing
    assert (await queued).idempotency_key == "queued"


async def test_a_lone_call_leaves_at_once_whatever_max_delay() -> None:
    batcher = await started(Recorder(), max_delay_ms=10_000)
    answered = await asyncio.wait_for(batcher.submit(item("alone")), timeout=1.0)
    assert answered.idempotency_key == "alone"
    await batcher.close()


async def test_arrivals_gather_while_a_batch_runs_and_leave_together_when_it_ends() -> None:
    run, batcher, first = await held_by("first", max_delay_ms=10_000)
    later = [asyncio.ensure_future(batcher.submit(item(f"later{i}"))) for i in range(5)]
    await asyncio.sleep(0.05)
    assert run.batches == [["first"]]  # the others wait for the running batch, not for a slot
    run.gate.set()
    await asyncio.gather(first, *later)
    assert run.batches == [["first"], [f"later{i}" for i in range(5)]]
    await batcher.close()


async def test_a_second_batch_starts_once_the_oldest_has_waited_max_delay() -> None:
    run, batcher, first = await held_by("first", max_delay_ms=20)
    second = asyncio.ensure_future(batcher.submit(item("second")))
    await asyncio.sleep(0.1)
    assert run.batches == [["first"], ["second"]]  # slow I/O does not hold everything up
    run.gate.set()
    await asyncio.gather(first, second)
    await batcher.close()


async def test_items_of_a_caller_that_went_away_are_not_sent_and_free_their_room() -> None:
    run, batcher, first = await held_by("first", max_delay_ms=10_000, max_pending=3)
    gone = asyncio.ensure_future(batcher.submit_many([item("gone1"), item("gone2")]))
    await asyncio.sleep(0.01)
    gone.cancel()
    run.gate.set()
    await first
    assert await batcher.submit(item("after")) is not None
    assert all("gone1" not in batch for batch in run.batches)
    await batcher.close()


async def test_a_withdrawn_enqueued_call_is_not_sent_and_frees_its_room() -> None:
    # A stream keeps its requests as enqueued futures; cancelling one withdraws it.
    run, batcher, first = await held_by("first", max_delay_ms=10_000, max_pending=4)
    withdrawn = batcher.enqueue_many([item("gone1"), item("gone2")])
    kept = batcher.enqueue_many([item("kept")])
    assert batcher.owed == 4
    withdrawn.cancel()
    run.gate.set()
    await first
    assert [answer.idempotency_key for answer in await kept] == ["kept"]  # type: ignore[union-attr]
    assert all("gone1" not in batch and "gone2" not in batch for batch in run.batches)
    assert batcher.owed == 0
    await batcher.close()


async def test_an_empty_enqueue_is_answered_at_once() -> None:
    batcher = await started(Recorder())
    assert await batcher.enqueue_many([]) == []
    await batcher.close()
