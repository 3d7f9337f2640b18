"""The pipeline's stages: which steps an item reaches from each stage, and the one outcome
each final stage gives, in the batch's order.

A recording rig notes every route plan, fee quote, intent and adapter request, so a
declined item that went one step too far shows up by name.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from switch.adapters.contract import AdapterRequest, AdapterResult
from switch.adapters.mock import MockAdapter, approve_all
from switch.cards.tokenizer import Tokenizer
from switch.config.fees import parse_fee_schedules
from switch.config.routing import parse_routing
from switch.domain.errors import DeadlineExceeded, IdempotencyConflict, InvalidRequest
from switch.domain.limits import Limit, LimitScope
from switch.domain.models import (
    INT64_MAX,
    Account,
    Authorization,
    AuthorizationResult,
    Card,
    Money,
    Token,
    TransactionStatus,
)
from switch.flow.pipeline import AuthorizationPipeline, InFlight, Outcome
from switch.money.fees import FeeEngine, FeeQuote, QuoteRequest
from switch.risk.velocity import RiskRules
from switch.routing.breaker import Breakers, BreakerSettings
from switch.routing.router import Router
from switch.stores.base import Intent
from switch.stores.memory import MemoryStateStore
from switch.stores.sqlite import SqliteJournal

# One authorization per card an hour: a card's second authorization is declined "65".
CARD_ONCE = Limit(LimitScope.INSTRUMENT, 3600, max_count=1, max_amount=None)
NOWHERE = Account("nowhere", "acct-1")  # a rail no route serves
DECLINED_AMOUNT = 1051  # the issuer answers "51" to amounts ending in 51


def card(number: int) -> Card:
    """A Luhn-valid card, one per number."""
    body = f"4{number:014d}"
    total = 0
    for position, digit in enumerate(int(d) for d in reversed(body)):
        doubled = digit * 2 if position % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return Card(body + str(-total % 10), 12, 2030)


def authorization(key: str, source: Card | Account | Token, amount: int = 1000) -> Authorization:
    return Authorization(key, "m-1", Money(amount, "EUR"), source)


def issuer(request: AdapterRequest) -> AdapterResult:
    if request.amount.minor_units == DECLINED_AMOUNT:
        return AdapterResult("51", "insufficient funds")
    return approve_all(request)


@dataclass
class Rig:
    pipeline: AuthorizationPipeline
    journal: SqliteJournal
    adapter: MockAdapter
    router: Router
    planned: list[str] = field(default_factory=list)  # idempotency keys, as routed
    quoted: list[int] = field(default_factory=list)  # amounts, as priced
    intended: list[str] = field(default_factory=list)  # idempotency keys, as intents

    def sent(self) -> list[str]:
        return [r.transaction_id for r in self.adapter.seen]


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    journal = await SqliteJournal.open(tmp_path / "j.sqlite3")
    adapter = MockAdapter(issuer)
    router = Router(
        {"card": adapter, "instant": adapter},
        {"card": "card", "instant": "instant"},
        parse_routing({}, None),
        Breakers(BreakerSettings(), time.monotonic),
    )
    # Fees of 100% + 1: an amount of INT64_MAX cannot be priced.
    fees = FeeEngine(parse_fee_schedules([{"name": "all", "percent": "100", "fixed": 1}]))
    pipeline = AuthorizationPipeline(
        tokenizer=Tokenizer(b"k" * 32),
        state=MemoryStateStore(retention_seconds=3600, lease_seconds=30),
        journal=journal,
        router=router,
        risk=RiskRules([CARD_ONCE]),
        fees=fees,
        adapter_timeout=0.2,
    )
    rig = Rig(pipeline, journal, adapter, router)

    plan, quote_many, record_intents = router.plan, fees.quote_many, journal.record_intents

    def planning(authorization: Authorization, card_bin: str | None) -> list[str]:
        rig.planned.append(authorization.idempotency_key)
        return plan(authorization, card_bin)

    def quoting(requests: Sequence[QuoteRequest]) -> list[FeeQuote]:
        rig.quoted.extend(r.amount.minor_units for r in requests)
        return quote_many(requests)

    async def intending(intents: Sequence[Intent]) -> set[str]:
        rig.intended.extend(i.idempotency_key for i in intents)
        return await record_intents(intents)

    monkeypatch.setattr(router, "plan", planning)
    monkeypatch.setattr(fees, "quote_many", quoting)
    monkeypatch.setattr(journal, "record_intents", intending)
    yield rig
    await journal.close()


def result(outcome: object) -> AuthorizationResult:
    assert isinstance(outcome, AuthorizationResult), outcome
    return outcome


async def declined_by_the_switch(rig: Rig, outcome: Outcome, code: str, message: str) -> AuthorizationResult:
    """The outcome is the switch's own decline, journaled as a decline with no route and no fee."""
    declined = result(outcome)
    assert (declined.response_code, declined.message, declined.route) == (code, message, "")
    assert declined.authorization_code == "" and declined.fee == Money(0, "EUR") and not declined.replayed
    record = await rig.journal.get_transaction(declined.transaction_id)
    assert record is not None and record.status is TransactionStatus.DECLINED and record.response_code == code
    assert declined.transaction_id not in rig.sent()
    return declined


async def test_a_limit_decline_is_journaled_but_never_routed_priced_or_sent(rig: Rig) -> None:
    first, second = await rig.pipeline.run([authorization("first", card(1)), authorization("second", card(1), 2000)])
    assert result(first).response_code == "00"
    await declined_by_the_switch(rig, second, "65", "exceeds withdrawal frequency limit")
    assert rig.planned == ["first"] and rig.quoted == [1000] and rig.intended == ["first"]
    assert rig.sent() == [result(first).transaction_id]


async def test_a_limit_decline_moves_no_counter_and_gives_none_back(rig: Rig) -> None:
    """The claim did not count a declined item, so its decline must not uncount the
    approval that holds the limit: the card stays at its limit."""
    (approved,) = await rig.pipeline.run([authorization("a", card(2))])
    assert result(approved).response_code == "00"
    for key in ("b", "c"):
        (declined,) = await rig.pipeline.run([authorization(key, card(2))])
        assert result(declined).response_code == "65"


async def test_an_issuer_decline_gives_its_counter_back(rig: Rig) -> None:
    (declined,) = await rig.pipeline.run([authorization("poor", card(3), DECLINED_AMOUNT)])
    assert result(declined).response_code == "51"
    (approved,) = await rig.pipeline.run([authorization("rich", card(3))])  # the limit was not used up
    assert result(approved).response_code == "00"


async def test_no_route_is_journaled_but_never_priced_or_sent(rig: Rig) -> None:
    (outcome,) = await rig.pipeline.run([authorization("lost", NOWHERE)])
    await declined_by_the_switch(rig, outcome, "92", "no route to the destination")
    assert rig.planned == ["lost"] and rig.quoted == [] and rig.intended == [] and rig.adapter.batches == []


async def test_every_breaker_open_is_declined_without_sending(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rig.router, "plan", lambda *_: [])  # a route serves it, but none can take it now
    (outcome,) = await rig.pipeline.run([authorization("blocked", card(4))])
    await declined_by_the_switch(rig, outcome, "91", "no route can take it now")
    assert rig.quoted == [] and rig.intended == [] and rig.adapter.batches == []


async def test_a_route_down_with_none_left_is_declined_on_that_route(rig: Rig) -> None:
    rig.adapter.down = True
    (outcome,) = await rig.pipeline.run([authorization("down", card(5))])
    declined = result(outcome)
    assert (declined.response_code, declined.route) == ("91", "card")
    assert declined.message == "route card unavailable and no other route can take it"
    record = await rig.journal.get_transaction(declined.transaction_id)
    assert record is not None and record.status is TransactionStatus.DECLINED
    assert rig.intended == ["down"] and rig.adapter.seen == []  # the intent was recorded; nothing went out


async def test_an_unknown_outcome_is_journaled_unknown_not_declined(rig: Rig) -> None:
    rig.adapter.handler = lambda _: AdapterResult("91", "", unknown=True)
    (outcome,) = await rig.pipeline.run([authorization("maybe", card(6))])
    unknown = result(outcome)
    assert (unknown.response_code, unknown.message, unknown.fee) == (
        "91",
        "issuer or switch inoperative",
        Money(0, "EUR"),
    )
    record = await rig.journal.get_transaction(unknown.transaction_id)
    assert record is not None and record.status is TransactionStatus.UNKNOWN


async def test_outcomes_are_one_per_authorization_in_the_batchs_order(rig: Rig) -> None:
    batch = [
        authorization("bad-token", Token("4111111111111111")),  # a card number posing as a token
        authorization("ok", card(10)),
        authorization("over", card(10)),
        authorization("lost", NOWHERE),
        authorization("twice", card(11)),
        authorization("twice", card(11)),
        authorization("huge", card(12), INT64_MAX),
        authorization("poor", card(13), DECLINED_AMOUNT),
        authorization("bad-token-2", Token("x")),
    ]
    outcomes = await rig.pipeline.run(batch)
    assert len(outcomes) == len(batch)
    assert [type(o).__name__ for o in outcomes] == [
        "InvalidRequest",
        "AuthorizationResult",
        "AuthorizationResult",
        "AuthorizationResult",
        "AuthorizationResult",
        "InFlight",
        "InvalidRequest",
        "AuthorizationResult",
        "InvalidRequest",
    ]
    answered = [(i, result(o)) for i, o in enumerate(outcomes) if isinstance(o, AuthorizationResult)]
    assert [(batch[i].idempotency_key, r.idempotency_key) for i, r in answered] == [
        (k, k) for k in ("ok", "over", "lost", "twice", "poor")
    ]
    assert [r.response_code for _, r in answered] == ["00", "65", "92", "00", "51"]
    assert isinstance(outcomes[5], InFlight)
    huge = outcomes[6]
    assert isinstance(huge, InvalidRequest) and [v.field for v in huge.violations] == ["amount.minor_units"]
    assert [r.transaction_id for r in rig.adapter.seen] == [answered[i][1].transaction_id for i in (0, 3, 4)]

    again = await rig.pipeline.run([authorization("over", card(10)), authorization("lost", NOWHERE, 5)])
    assert result(again[0]).replayed and result(again[0]).response_code == "65"
    assert isinstance(again[1], IdempotencyConflict)


# --- the stages themselves ----------------------------------------------------------------------------------------

STEPS = ("_claim", "_skip_journaled", "_route", "_price", "_call_adapters", "_commit")


def watch_stages(pipeline: AuthorizationPipeline, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """After each step, every item's stage by name, in the batch's order."""
    seen: dict[str, list[str]] = {}
    tokenize = pipeline._tokenize

    def tokenizing(batch: Sequence[Authorization]) -> Any:
        items, refused = tokenize(batch)
        seen["_tokenize"] = [item.stage.name for item in items]
        return items, refused

    def after(name: str, step: Callable[..., Any]) -> Callable[..., Any]:
        if not inspect.iscoroutinefunction(step):

            def stepped(items: list[Any], *rest: Any) -> None:
                step(items, *rest)
                seen[name] = [item.stage.name for item in items]

            return stepped

        async def awaited(items: list[Any], *rest: Any) -> None:
            await step(items, *rest)
            seen[name] = [item.stage.name for item in items]

        return awaited

    monkeypatch.setattr(pipeline, "_tokenize", tokenizing)
    for name in STEPS:
        monkeypatch.setattr(pipeline, name, after(name, getattr(pipeline, name)))
    return seen


async def test_each_step_moves_only_the_items_in_its_stages(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = watch_stages(rig.pipeline, monkeypatch)
    batch = [
        authorization("ok", card(20)),
        authorization("over", card(20)),
        authorization("lost", NOWHERE),
        authorization("twice", card(21)),
        authorization("twice", card(21)),
        authorization("huge", card(22), INT64_MAX),
        authorization("poor", card(23), DECLINED_AMOUNT),
    ]
    await rig.pipeline.run(batch)
    assert seen == {
        "_tokenize": ["TOKENIZED"] * 7,
        "_claim": ["CLAIMED", "LIMITED", "CLAIMED", "CLAIMED", "IN_FLIGHT", "CLAIMED", "CLAIMED"],
        "_skip_journaled": ["CLAIMED", "LIMITED", "CLAIMED", "CLAIMED", "IN_FLIGHT", "CLAIMED", "CLAIMED"],
        "_route": ["ROUTED", "LIMITED", "UNROUTABLE", "ROUTED", "IN_FLIGHT", "ROUTED", "ROUTED"],
        "_price": ["PRICED", "LIMITED", "UNROUTABLE", "PRICED", "IN_FLIGHT", "FAILED", "PRICED"],
        "_call_adapters": ["ANSWERED", "LIMITED", "UNROUTABLE", "ANSWERED", "IN_FLIGHT", "FAILED", "ANSWERED"],
        "_commit": ["JOURNALED", "JOURNALED", "JOURNALED", "JOURNALED", "IN_FLIGHT", "FAILED", "JOURNALED"],
    }


async def test_keys_the_journal_holds_become_replays_and_conflicts(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    await rig.pipeline.run([authorization("done", card(30)), authorization("lost", NOWHERE)])
    await rig.pipeline._state.close()  # the state store forgot them: only the journal knows
    seen = watch_stages(rig.pipeline, monkeypatch)
    replayed, conflict = await rig.pipeline.run([authorization("done", card(30)), authorization("lost", NOWHERE, 7)])
    assert seen["_skip_journaled"] == ["REPLAYED", "CONFLICT"] and seen["_commit"] == ["REPLAYED", "CONFLICT"]
    assert result(replayed).replayed and isinstance(conflict, IdempotencyConflict)
    assert len(rig.adapter.seen) == 1


async def test_unsent_items_fail_with_their_keys_given_back(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = watch_stages(rig.pipeline, monkeypatch)
    gone = asyncio.get_running_loop().time() - 1.0
    (late,) = await rig.pipeline.run([replace(authorization("late", card(40)), deadline=gone)])
    assert seen["_call_adapters"] == ["UNSENT"] and seen["_commit"] == ["FAILED"]
    assert isinstance(late, DeadlineExceeded) and rig.intended == [] and rig.adapter.seen == []
    (retried,) = await rig.pipeline.run([authorization("late", card(40))])  # key and counter were given back
    assert result(retried).response_code == "00" and not result(retried).replayed


async def test_a_timeout_is_unknown_until_journaled(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = watch_stages(rig.pipeline, monkeypatch)
    rig.adapter.delay = 1.0
    (outcome,) = await rig.pipeline.run([authorization("slow", card(50))])
    assert seen["_call_adapters"] == ["UNKNOWN"] and seen["_commit"] == ["JOURNALED"]
    assert result(outcome).response_code == "91"
