"""The pipeline on a batch, with the embedded stores and a mock adapter.

The paths end-to-end tests cannot reach easily: an adapter that times out or is
down, a journal that fails, and a duplicate only the journal's unique guard sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from switch.adapters.contract import AdapterResult
from switch.adapters.mock import MockAdapter
from switch.cards.tokenizer import Tokenizer
from switch.config.routing import parse_routing
from switch.domain.errors import DeadlineExceeded, IdempotencyConflict, InvalidRequest, Unavailable, Violation
from switch.domain.models import Account, Authorization, AuthorizationResult, Card, Money, TransactionStatus
from switch.flow.pipeline import AuthorizationPipeline, InFlight
from switch.flow.reversals import ReversalWorker
from switch.money.fees import FeeEngine
from switch.risk.velocity import RiskRules
from switch.routing.breaker import Breakers, BreakerSettings
from switch.routing.router import Router
from switch.stores.memory import MemoryStateStore
from switch.stores.sqlite import SqliteJournal

CARD = Card("4111111111111111", 12, 2030)


def authorization(key: str, amount: int = 1000, source: Card | Account = CARD) -> Authorization:
    return Authorization(key, "m-1", Money(amount, "EUR"), source)


@dataclass
class Rig:
    pipeline: AuthorizationPipeline
    state: MemoryStateStore
    journal: SqliteJournal
    adapter: MockAdapter


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    state = MemoryStateStore(retention_seconds=3600, lease_seconds=30)
    journal = await SqliteJournal.open(tmp_path / "j.sqlite3")
    adapter = MockAdapter()
    pipeline = AuthorizationPipeline(
        tokenizer=Tokenizer(b"k" * 32),
        state=state,
        journal=journal,
        router=Router(
            {"card": adapter, "instant": adapter},
            {"card": "card", "instant": "instant"},
            parse_routing({}, None),
            Breakers(BreakerSettings(), time.monotonic),
        ),
        risk=RiskRules(()),
        fees=FeeEngine(),
        adapter_timeout=0.2,
    )
    yield Rig(pipeline, state, journal, adapter)
    await journal.close()


def result(outcome: object) -> AuthorizationResult:
    assert isinstance(outcome, AuthorizationResult), outcome
    return outcome


async def test_one_adapter_call_per_route_per_batch(rig: Rig) -> None:
    batch = [authorization(f"k{i}") for i in range(5)] + [authorization("a", source=Account("instant", "+55"))]
    outcomes = await rig.pipeline.run(batch)
    assert [result(o).response_code for o in outcomes] == ["00"] * 6
    assert sorted(rig.adapter.batches) == [1, 5]  # one call per route, each with its whole group
    assert all(o.idempotency_key == b.idempotency_key for o, b in zip(outcomes, batch, strict=True))  # type: ignore[union-attr]


async def test_same_key_twice_in_a_batch_runs_once(rig: Rig) -> None:
    first, second = await rig.pipeline.run([authorization("dup"), authorization("dup")])
    assert result(first).response_code == "00"
    assert isinstance(second, InFlight)
    (again,) = await rig.pipeline.run([authorization("dup")])
    assert result(again).replayed and result(again).transaction_id == result(first).transaction_id


async def test_adapter_timeout_is_an_unknown_outcome(rig: Rig) -> None:
    rig.adapter.delay = 1.0
    (outcome,) = await rig.pipeline.run([authorization("slow")])
    assert result(outcome).response_code == "91"
    record = await rig.journal.get_transaction(result(outcome).transaction_id)
    assert record is not None and record.status is TransactionStatus.UNKNOWN


async def test_route_down_is_a_decline_not_an_unknown(rig: Rig) -> None:
    rig.adapter.down = True
    (outcome,) = await rig.pipeline.run([authorization("down")])
    record = await rig.journal.get_transaction(result(outcome).transaction_id)
    assert result(outcome).response_code == "91"
    assert record is not None and record.status is TransactionStatus.DECLINED


async def test_issuer_decline_is_journaled(rig: Rig) -> None:
    rig.adapter.handler = lambda _: AdapterResult("51", "insufficient funds")
    (outcome,) = await rig.pipeline.run([authorization("poor")])
    assert not result(outcome).approved
    record = await rig.journal.get_transaction(result(outcome).transaction_id)
    assert record is not None and record.status is TransactionStatus.DECLINED and record.response_code == "51"


async def test_a_failed_commit_after_an_approval_is_reversed_never_sent_again(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The network approved, the journal commit failed: the caller may retry with the
    same key, but the intent recorded before the send keeps the retry from charging
    again, and the reversal worker journals the approval as unknown and reverses it."""

    async def broken(*_: object) -> None:
        raise ConnectionError("disk gone")

    with monkeypatch.context() as patch:
        patch.setattr(rig.journal, "record_authorizations", broken)
        (outcome,) = await rig.pipeline.run([authorization("retry-me")])
    assert isinstance(outcome, Unavailable)
    (retried,) = await rig.pipeline.run([authorization("retry-me")])
    assert isinstance(retried, Unavailable) and "being settled" in retried.message
    assert [r.kind.value for r in rig.adapter.seen] == ["authorize"]  # not sent a second time

    worker = ReversalWorker(rig.journal, rig.pipeline._router, intent_lease=0.0)
    assert await worker.run_once() == 1  # settled as unknown, then reversed
    (authorize, reverse) = rig.adapter.seen
    assert (reverse.kind.value, reverse.transaction_id) == ("reverse", authorize.transaction_id)
    (replayed,) = await rig.pipeline.run([authorization("retry-me")])
    assert result(replayed).replayed and result(replayed).response_code == "91"
    record = await rig.journal.get_transaction(authorize.transaction_id)
    assert record is not None and record.status is TransactionStatus.REVERSED
    assert len(rig.adapter.seen) == 2


async def test_a_switch_killed_mid_commit_is_settled_by_another(rig: Rig, tmp_path: Path) -> None:
    """Killed after the send, before the commit: another process on the same journal
    finds the intent, journals the authorization as unknown and reverses it."""
    committing = asyncio.Event()

    async def hangs(*_: object) -> None:
        committing.set()
        await asyncio.Event().wait()

    rig.journal.record_authorizations = hangs  # type: ignore[method-assign,assignment]
    killed = asyncio.ensure_future(rig.pipeline.run([authorization("killed")]))
    await committing.wait()
    killed.cancel()  # nothing after this point runs, as with kill -9
    with contextlib.suppress(asyncio.CancelledError):
        await killed
    (sent,) = rig.adapter.seen

    other = await SqliteJournal.open(tmp_path / "j.sqlite3")
    try:
        assert await ReversalWorker(other, rig.pipeline._router, intent_lease=0.0).run_once() == 1
        stored = await other.get_transaction(sent.transaction_id)
        assert stored is not None and stored.status is TransactionStatus.REVERSED
    finally:
        await other.close()
    assert [(r.kind.value, r.transaction_id) for r in rig.adapter.seen] == [
        ("authorize", sent.transaction_id),
        ("reverse", sent.transaction_id),
    ]


async def test_intents_within_the_lease_are_left_to_their_batch(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_: object) -> None:
        raise ConnectionError("disk gone")

    with monkeypatch.context() as patch:
        patch.setattr(rig.journal, "record_authorizations", broken)
        await rig.pipeline.run([authorization("young")])
    assert await ReversalWorker(rig.journal, rig.pipeline._router, intent_lease=30.0).run_once() == 0
    assert len(rig.adapter.seen) == 1 and await rig.journal.find_entries([("m-1", "young")]) == {}
    assert [i.idempotency_key for i in await rig.journal.abandoned_intents(time.time() + 1, 10)] == ["young"]


async def test_an_intent_that_cannot_be_recorded_sends_nothing(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_: object) -> None:
        raise ConnectionError("disk gone")

    with monkeypatch.context() as patch:
        patch.setattr(rig.journal, "record_intents", broken)
        (outcome,) = await rig.pipeline.run([authorization("not-sent")])
    assert isinstance(outcome, Unavailable) and rig.adapter.seen == []
    (retried,) = await rig.pipeline.run([authorization("not-sent")])  # the key was given back
    assert result(retried).response_code == "00" and not result(retried).replayed


async def test_journal_guard_catches_what_the_state_store_lost(rig: Rig) -> None:
    (first,) = await rig.pipeline.run([authorization("lost")])
    await rig.state.close()  # as if Redis restarted empty
    (same,) = await rig.pipeline.run([authorization("lost")])
    assert result(same).replayed and result(same).transaction_id == result(first).transaction_id
    await rig.state.close()
    (other,) = await rig.pipeline.run([authorization("lost", amount=5)])
    assert isinstance(other, IdempotencyConflict)


async def test_the_callers_deadline_cuts_the_adapters_time(rig: Rig) -> None:
    rig.adapter.delay = 1.0  # answers after the caller's deadline, well within adapter_timeout
    rig.pipeline._adapter_timeout = 5.0
    soon = asyncio.get_running_loop().time() + 0.1
    (outcome,) = await rig.pipeline.run([replace(authorization("hurry"), deadline=soon)])
    assert result(outcome).response_code == "91"  # sent, not answered in the caller's time: unknown
    record = await rig.journal.get_transaction(result(outcome).transaction_id)
    assert record is not None and record.status is TransactionStatus.UNKNOWN


async def test_nothing_is_sent_once_the_deadline_has_passed(rig: Rig) -> None:
    """A caller already gone gets no decline it cannot see, and its key stays free."""
    gone = asyncio.get_running_loop().time() - 1.0
    (outcome,) = await rig.pipeline.run([replace(authorization("late"), deadline=gone)])
    assert isinstance(outcome, DeadlineExceeded)
    assert rig.adapter.seen == []
    assert await rig.journal.find_entries([("m-1", "late")]) == {}
    (retried,) = await rig.pipeline.run([authorization("late")])
    assert result(retried).response_code == "00" and not result(retried).replayed


async def test_a_retry_held_by_an_intent_beside_a_fresh_authorization_sends_only_the_fresh_one(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object) -> None:
        raise ConnectionError("disk gone")

    with monkeypatch.context() as patch:
        patch.setattr(rig.journal, "record_authorizations", broken)
        await rig.pipeline.run([authorization("held")])  # sent, never journaled: its intent holds the key
    retried, fresh = await rig.pipeline.run([authorization("held"), authorization("fresh")])
    assert isinstance(retried, Unavailable)
    assert result(fresh).response_code == "00"
    assert [r.transaction_id for r in rig.adapter.seen[1:]] == [result(fresh).transaction_id]


async def test_a_journal_that_fails_before_the_send_frees_the_keys(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_: object) -> None:
        raise ConnectionError("disk gone")

    with monkeypatch.context() as patch:
        patch.setattr(rig.journal, "find_entries", broken)
        with pytest.raises(ConnectionError):
            await rig.pipeline.run([authorization("read-fails")])
    (retried,) = await rig.pipeline.run([authorization("read-fails")])  # not held in flight by the failed batch
    assert result(retried).response_code == "00" and not result(retried).replayed
    assert len(rig.adapter.seen) == 1


class _ShortIds(MockAdapter):
    """A network whose messages carry account ids of at most `limit` characters."""

    def __init__(self, limit: int, name: str) -> None:
        super().__init__(name=name)
        self.limit = limit

    def violations(self, authorization: Authorization) -> list[Violation]:
        source = authorization.source
        if isinstance(source, Account) and len(source.id) > self.limit:
            return [Violation("source.account.id", f"must be at most {self.limit} characters on {self.name}")]
        return []


def _two_rails(rig: Rig, first: MockAdapter, second: MockAdapter) -> AuthorizationPipeline:
    """The rig's stores behind routes "narrow" then "wide" for the instant rail."""
    candidates = [{"route": "narrow"}, {"route": "wide"}]
    router = Router(
        {"card": rig.adapter, "narrow": first, "wide": second},
        {"card": "card", "narrow": "instant", "wide": "instant"},
        parse_routing({"rules": [{"name": "instant", "rail": "instant", "candidates": candidates}]}, None),
        Breakers(BreakerSettings(), time.monotonic),
    )
    return AuthorizationPipeline(
        tokenizer=Tokenizer(b"k" * 32),
        state=rig.state,
        journal=rig.journal,
        router=router,
        risk=RiskRules(()),
        fees=FeeEngine(),
        adapter_timeout=0.2,
    )


async def test_a_route_that_cannot_carry_the_fields_is_skipped_for_one_that_can(rig: Rig) -> None:
    narrow, wide = _ShortIds(8, "narrow"), _ShortIds(40, "wide")
    pipeline = _two_rails(rig, narrow, wide)
    (outcome,) = await pipeline.run([authorization("long-id", source=Account("instant", "a" * 20))])
    assert result(outcome).route == "wide" and narrow.seen == [] and len(wide.seen) == 1


async def test_fields_no_route_can_carry_fail_invalid_argument_and_free_the_key(rig: Rig) -> None:
    narrow, wide = _ShortIds(8, "narrow"), _ShortIds(16, "wide")
    pipeline = _two_rails(rig, narrow, wide)
    (refused,) = await pipeline.run([authorization("too-long", source=Account("instant", "a" * 20))])
    assert isinstance(refused, InvalidRequest)
    assert [(v.field, v.description) for v in refused.violations] == [
        ("source.account.id", "must be at most 8 characters on narrow")  # the plan's first route says why
    ]
    assert narrow.seen == wide.seen == []
    (fixed,) = await pipeline.run([authorization("too-long", source=Account("instant", "a" * 4))])
    assert result(fixed).approved and not result(fixed).replayed  # nothing was kept under the key
