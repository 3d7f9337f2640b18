"""The authorization flow, top to bottom, on a batch.

    tokenize -> claim keys + move velocity counters (one state-store call)
    -> drop keys the journal already holds (one read) -> route -> price (one fee-engine call)
    -> intents, then adapters (per route, concurrently: record what is about to be sent, send it)
    -> journal (one commit) -> complete the claims (one state-store call)

Every item gets exactly one outcome, in order: a result (approved or declined),
a SwitchError of its own, or InFlight when another caller holds its key. No
result is returned before its journal entry is committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from switch.adapters.contract import AdapterRequest, AdapterResult, AdapterUnavailable
from switch.cards.luhn import quoted
from switch.cards.tokenizer import Tokenizer
from switch.domain.errors import (
    DeadlineExceeded,
    IdempotencyConflict,
    InvalidRequest,
    SwitchError,
    Unavailable,
    Violation,
)
from switch.domain.ids import new_transaction_ids
from switch.domain.models import (
    Account,
    Authorization,
    AuthorizationResult,
    Card,
    Instrument,
    JournalEntry,
    Money,
    MoneyOverflow,
    OperationKind,
    Token,
    TransactionRecord,
    TransactionStatus,
)
from switch.domain.response_codes import ResponseCode
from switch.flow import idempotency
from switch.money.fees import FeeEngine, FeeQuote, QuoteRequest
from switch.risk.velocity import RiskRules
from switch.routing.plan import outcome_of
from switch.routing.router import Router
from switch.stores.base import Claim, ClaimStatus, Completion, Counter, Intent, Journal, StateStore
from switch.telemetry.metrics import SwitchMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InFlight:
    """Another caller holds this idempotency key right now: ask again shortly."""


Outcome = AuthorizationResult | SwitchError | InFlight

# What an authorization still needs after its adapter answers: the journal commit
# and the response. The adapter gets the caller's deadline less this.
DEADLINE_RESERVE_SECONDS = 0.02
# Below this budget a request is not sent at all: it would only become an unknown
# outcome (and a reversal) for a caller that has stopped waiting.
MIN_ADAPTER_SECONDS = 0.005

_LIMIT_CODES = {
    ClaimStatus.COUNT_LIMIT: ResponseCode.EXCEEDS_COUNT_LIMIT,
    ClaimStatus.AMOUNT_LIMIT: ResponseCode.EXCEEDS_AMOUNT_LIMIT,
}


@dataclass(slots=True)
class _Item:
    """One authorization on its way through the pipeline."""

    index: int
    authorization: Authorization
    instrument: Instrument
    card: Card | None
    request_hash: str
    counters: tuple[Counter, ...]
    transaction_id: str
    route: str = ""
    plan: list[str] = field(default_factory=list)
    answer: AdapterResult | None = None
    quote: FeeQuote | None = None
    counted: bool = False  # the claim moved the velocity counters
    # Not sent, and answered with this error instead of a journaled result; its key is
    # given back for the retry.
    unsent: SwitchError | None = None
    # Fixed once by settle(), when the answer is final.
    status: TransactionStatus = TransactionStatus.UNKNOWN
    fee: Money | None = None  # what the approved authorization costs the merchant; zero for a decline

    @property
    def moved_counters(self) -> tuple[Counter, ...]:
        return self.counters if self.counted else ()

    def settle(self) -> AuthorizationResult:
        """Fixes the item's status and fee from its final answer; returns its result."""
        answer = self.answer
        assert answer is not None
        approved = answer.approved
        if answer.unknown:
            self.status = TransactionStatus.UNKNOWN
        else:
            self.status = TransactionStatus.AUTHORIZED if approved else TransactionStatus.DECLINED
        quote = self.quote
        fee = quote.fee if approved and quote is not None else Money.zero(self.authorization.amount.currency)
        self.fee = fee
        return AuthorizationResult(
            idempotency_key=self.authorization.idempotency_key,
            transaction_id=self.transaction_id,
            response_code=answer.response_code,
            message=answer.message or ResponseCode.from_code(answer.response_code).message,
            route=self.route,
            authorization_code=answer.authorization_code,
            token=self.instrument.token,
            fee=fee,
        )

    @property
    def fee_shares(self) -> tuple[tuple[str, int], ...]:
        return self.quote.shares if self.quote is not None and self.fee and self.fee.minor_units else ()


class AuthorizationPipeline:
    def __init__(
        self,
        *,
        tokenizer: Tokenizer,
        state: StateStore,
        journal: Journal,
        router: Router,
        risk: RiskRules,
        fees: FeeEngine,
        adapter_timeout: float,
        clock: Callable[[], float] = time.time,
        metrics: SwitchMetrics | None = None,
    ) -> None:
        self._metrics = metrics or SwitchMetrics()
        self._tokenizer = tokenizer
        self._state = state
        self._journal = journal
        self._router = router
        self._risk = risk
        self._fees = fees
        self._adapter_timeout = adapter_timeout
        self._clock = clock

    async def run(self, batch: Sequence[Authorization]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(batch)
        now = self._clock()
        items = self._tokenize(batch, now, outcomes)
        fresh = await self._claim(items, now, outcomes)
        try:
            fresh = await self._skip_journaled(fresh, now, outcomes)
            self._route(fresh)
            fresh = await self._price(fresh, now, outcomes)
        except Exception:
            # Nothing was sent: free the keys (and counters) for the retry before failing the batch.
            await self._complete([_give_back(item) for item in fresh], now)
            raise
        await self._call_adapters([item for item in fresh if item.answer is None])
        await self._commit(fresh, outcomes)
        assert all(outcome is not None for outcome in outcomes)
        return outcomes  # type: ignore[return-value]

    def _tokenize(self, batch: Sequence[Authorization], now: float, outcomes: list[Outcome | None]) -> list[_Item]:
        """Past this point only instruments travel, except the card an adapter needs."""
        tokenizer = self._tokenizer
        resolved: list[tuple[int, Authorization, Card | None, Instrument]] = []
        for index, authorization in enumerate(batch):
            source = authorization.source
            try:
                if isinstance(source, Token):
                    source = tokenizer.detokenize(source, source.key_id)
            except SwitchError as error:
                outcomes[index] = error
                continue
            if isinstance(source, Account):
                resolved.append((index, authorization, None, tokenizer.account(source)))
            else:
                resolved.append((index, authorization, source, tokenizer.card(source)))
        # Per batch: counters are shared by a merchant's items, ids come from one random read.
        counters = self._risk.counters_many([r[1] for r in resolved], [r[3] for r in resolved], now)
        transaction_ids = new_transaction_ids(len(resolved))
        authorization_hash = idempotency.authorization_hash
        return [
            _Item(
                index=index,
                authorization=authorization,
                instrument=instrument,
                card=card,
                request_hash=authorization_hash(authorization, instrument),
                counters=item_counters,
                transaction_id=transaction_id,
            )
            for (index, authorization, card, instrument), item_counters, transaction_id in zip(
                resolved, counters, transaction_ids, strict=True
            )
        ]

    async def _claim(self, items: list[_Item], now: float, outcomes: list[Outcome | None]) -> list[_Item]:
        """Claims every key in one call; returns the items this batch must answer itself."""
        if not items:
            return []
        claims = [
            Claim(
                i.authorization.merchant_id,
                i.authorization.idempotency_key,
                i.request_hash,
                i.authorization.amount.minor_units,
                i.counters,
            )
            for i in items
        ]
        fresh = []
        for item, claimed in zip(items, await self._state.claim(claims, now), strict=True):
            status = claimed.status
            if status is ClaimStatus.REPLAY:
                assert claimed.response is not None
                self._metrics.replays.inc()
                outcomes[item.index] = idempotency.decode_result(claimed.response, replayed=True)
            elif status is ClaimStatus.CONFLICT:
                outcomes[item.index] = _conflict(item)
            elif status is ClaimStatus.IN_FLIGHT:
                outcomes[item.index] = InFlight()
            else:
                item.counted = status is ClaimStatus.NEW
                if status in _LIMIT_CODES:
                    code = _LIMIT_CODES[status]
                    item.answer = AdapterResult(code.code, code.message)
                fresh.append(item)
        return fresh

    async def _skip_journaled(self, items: list[_Item], now: float, outcomes: list[Outcome | None]) -> list[_Item]:
        """Answers from the journal any key it already holds, so nothing is sent twice.

        The state store normally knows every key, but it may have lost some (a Redis
        restart, the embedded store after a switch restart, a lease taken over after
        a crash); the journal is the record of what was done.
        """
        if not items:
            return []
        scopes = [(i.authorization.merchant_id, i.authorization.idempotency_key) for i in items]
        journaled = await self._journal.find_entries(scopes)
        if not journaled:
            return items
        fresh, completions = [], []
        for item, scope in zip(items, scopes, strict=True):
            found = journaled.get(scope)
            if found is None:
                fresh.append(item)
                continue
            outcomes[item.index] = self._answer_from(found, item)
            completions.append(_completion(item, found.request_hash, found.response, item.moved_counters))
        await self._complete(completions, now)
        return fresh

    def _answer_from(self, found: JournalEntry, item: _Item) -> Outcome:
        if found.request_hash != item.request_hash:
            return _conflict(item)
        self._metrics.replays.inc()
        return idempotency.decode_result(found.response, replayed=True)

    def _route(self, items: list[_Item]) -> None:
        """Each item's plan of routes; it starts on the first."""
        for item in items:
            if item.answer is not None:  # declined by a limit: goes nowhere
                continue
            card_bin = item.card.pan[:6] if item.card is not None else None  # inside the tokenizer boundary
            plan = self._router.plan(item.authorization, card_bin)
            if plan:
                item.plan, item.route = plan, plan[0]
            elif self._router.routable(item.authorization, card_bin):  # every breaker is open
                code = ResponseCode.ISSUER_UNAVAILABLE
                item.answer = AdapterResult(code.code, "no route can take it now")
            else:
                item.answer = AdapterResult(ResponseCode.NO_ROUTE.code, ResponseCode.NO_ROUTE.message)

    async def _price(self, items: list[_Item], now: float, outcomes: list[Outcome | None]) -> list[_Item]:
        """Quotes every routed item's fee in one engine call, before anything is sent:
        an amount whose fee cannot be computed fails alone, with its key given back."""
        routed = [item for item in items if item.answer is None]
        requests = [self._quote_request(item) for item in routed]
        try:
            quotes: list[FeeQuote | None] = list(self._fees.quote_many(requests))
        except MoneyOverflow:
            quotes = [self._quote_alone(request) for request in requests]
        unpriced = []
        for item, quote in zip(routed, quotes, strict=True):
            if quote is None:
                violation = Violation("amount.minor_units", "too large: its fee does not fit in int64 minor units")
                outcomes[item.index] = InvalidRequest([violation])
                unpriced.append(item)
            item.quote = quote
        if not unpriced:
            return items
        await self._complete([_give_back(item) for item in unpriced], now)
        failed = {item.index for item in unpriced}
        return [item for item in items if item.index not in failed]

    def _quote_request(self, item: _Item) -> QuoteRequest:
        return QuoteRequest(item.authorization.merchant_id, item.authorization.amount, self._router.rail(item.route))

    def _quote_alone(self, request: QuoteRequest) -> FeeQuote | None:
        try:
            return self._fees.quote_many([request])[0]
        except MoneyOverflow:
            return None

    async def _call_adapters(self, items: list[_Item]) -> None:
        """Sends each route its group at once; items a route did not take (nothing was
        sent) move to the next route of their plan, re-priced if its rail differs."""
        pending = items
        while pending:
            by_route: dict[str, list[_Item]] = defaultdict(list)
            for item in pending:
                by_route[item.route].append(item)
            if len(by_route) == 1:  # the usual case: no tasks to gather
                ((route, group),) = by_route.items()
                untaken = [await self._send(route, group)]
            else:
                untaken = await asyncio.gather(*(self._send(route, group) for route, group in by_route.items()))
            pending = [item for group in untaken for item in group if self._fail_over(item)]

    def _fail_over(self, item: _Item) -> bool:
        """Moves the item to its next route; False (and a decline) when there is none."""
        following = self._router.next_route(item.plan, item.route)
        if following is None:
            code = ResponseCode.ISSUER_UNAVAILABLE
            item.answer = AdapterResult(code.code, f"route {item.route} unavailable and no other route can take it")
            return False
        rail_changed = self._router.rail(following) != self._router.rail(item.route)
        item.route = following
        if rail_changed:
            item.quote = self._quote_alone(self._quote_request(item))
            if item.quote is None:
                code = ResponseCode.INVALID_AMOUNT
                item.answer = AdapterResult(code.code, f"the fee on route {following} does not fit")
                return False
        return True

    async def _send(self, route: str, items: list[_Item]) -> list[_Item]:
        """Sends one route its items; returns those it did not take (nothing was sent)."""
        time_left = self._time_left(items)
        if time_left < MIN_ADAPTER_SECONDS:  # the callers are gone or nearly: send nothing
            for item in items:  # nobody would see a decline, and a retry must find the key free
                item.unsent = DeadlineExceeded(
                    "the deadline passed before the route could be reached; nothing was sent"
                )
            return []
        items = await self._record_intents(route, items)  # only these may go out
        if not items:
            return []
        if not self._router.acquire(route):  # its breaker is open: nothing sent
            return items
        requests = [
            AdapterRequest(
                kind=OperationKind.AUTHORIZE,
                transaction_id=i.transaction_id,
                merchant_id=i.authorization.merchant_id,
                amount=i.authorization.amount,
                instrument=i.instrument,
                card=i.card,
                account=i.authorization.source if isinstance(i.authorization.source, Account) else None,
                destination=i.authorization.destination,
            )
            for i in items
        ]
        error: BaseException | None = None
        started = time.perf_counter()
        try:
            async with asyncio.timeout(time_left):  # in this task: wait_for would start another
                answers = await self._router.adapter(route).send(requests, time_left)
        except AdapterUnavailable as unavailable:
            self._router.record(route, outcome_of(None, unavailable))
            log.warning("route %s unavailable for %d: %s", route, len(items), unavailable)
            return items
        except TimeoutError as timeout:
            log.warning("route %s gave no answer in %.3f s for %d; outcomes unknown", route, time_left, len(items))
            answers, error = [AdapterResult.timed_out()] * len(items), timeout
        except Exception as broken:  # broke after sending: the outcome is unknown
            log.exception("adapter %s failed on a batch of %d; outcomes unknown", route, len(items))
            answers, error = [AdapterResult.timed_out()] * len(items), broken
        self._router.record(route, outcome_of(answers, error))
        self._metrics.adapter_seconds.observe(time.perf_counter() - started, (("route", route),))
        for item, answer in zip(items, answers, strict=True):
            item.answer = answer
        return []

    async def _record_intents(self, route: str, items: list[_Item]) -> list[_Item]:
        """Records, durably, that these items are about to be sent to route (intent before
        send); returns those that may be sent. If their outcome is never journaled, the
        reversal worker records them as unknown and reverses them on that route."""
        now = self._clock()
        intents = [
            Intent(
                transaction_id=i.transaction_id,
                merchant_id=i.authorization.merchant_id,
                idempotency_key=i.authorization.idempotency_key,
                request_hash=i.request_hash,
                route=route,
                amount=i.authorization.amount,
                masked_instrument=i.instrument.masked,
                fingerprint=i.instrument.fingerprint,
                token=i.instrument.token,
                created_at=now,
            )
            for i in items
        ]
        try:
            recorded = await self._journal.record_intents(intents)
        except Exception as exc:
            log.exception("recording %d intents failed; nothing sent", len(items))
            for item in items:
                item.unsent = Unavailable(f"journal failed: {type(exc).__name__}; nothing was sent, retry")
            return []
        for item in items:
            if item.transaction_id not in recorded:  # an earlier attempt with this key may be at the network
                item.unsent = Unavailable("an earlier attempt with this idempotency key is being settled; retry later")
        return [item for item in items if item.unsent is None]

    def _time_left(self, items: list[_Item]) -> float:
        """The adapter's budget: the configured timeout, cut to the nearest caller's
        deadline less what the journal commit and the answer still need."""
        now = asyncio.get_running_loop().time()
        deadlines = [i.authorization.deadline for i in items if i.authorization.deadline is not None]
        if not deadlines:
            return self._adapter_timeout
        return min(self._adapter_timeout, min(deadlines) - now - DEADLINE_RESERVE_SECONDS)

    async def _commit(self, items: list[_Item], outcomes: list[Outcome | None]) -> None:
        """Journals every answer in one commit, then completes the claims."""
        now = self._clock()
        unsent = [item for item in items if item.unsent is not None]
        if unsent:
            for item in unsent:
                outcomes[item.index] = item.unsent
            await self._complete([_give_back(item) for item in unsent], now)
            items = [item for item in items if item.unsent is None]
        if not items:
            return
        results = [item.settle() for item in items]
        rows = [(self._record(i, r, now), self._entry(i, r, now)) for i, r in zip(items, results, strict=True)]
        try:
            earlier = await self._journal.record_authorizations(rows)
        except Exception as exc:
            # The sent ones' intents stay: the reversal worker records them as unknown and
            # reverses them, and until then a retry with the same key is not sent again.
            log.exception("journal commit of %d authorizations failed", len(items))
            await self._complete([_give_back(i) for i in items], now)
            for item in items:
                outcomes[item.index] = Unavailable(f"journal failed: {type(exc).__name__}; retry with the same key")
            return
        completions = []
        answered: defaultdict[tuple[str, str], int] = defaultdict(int)
        for item, result, (_, entry), found in zip(items, results, rows, earlier, strict=True):
            if found is None:
                outcomes[item.index] = result
                answered[item.route, item.status.value] += 1
                release = item.moved_counters if item.status is TransactionStatus.DECLINED else ()
                completions.append(_completion(item, entry.request_hash, entry.response, release))
                continue
            # The journal already held this key: the state store had lost or expired it.
            log.warning("duplicate of %s caught by the journal's unique guard", found.transaction_id)
            outcomes[item.index] = self._answer_from(found, item)
            completions.append(_completion(item, found.request_hash, found.response, item.moved_counters))
        for (route, status), count in answered.items():
            self._metrics.authorizations.inc((("route", route or "none"), ("status", status)), count)
        await self._complete(completions, now)

    async def _complete(self, completions: list[Completion], now: float) -> None:
        # The journal already holds the truth; a failure here only delays replays until
        # the claim's lease runs out and the journal's unique guard answers instead.
        try:
            await self._state.complete(completions, now)
        except Exception:
            log.exception("completing %d idempotency claims failed", len(completions))

    def _record(self, item: _Item, result: AuthorizationResult, now: float) -> TransactionRecord:
        return TransactionRecord(
            transaction_id=item.transaction_id,
            merchant_id=item.authorization.merchant_id,
            idempotency_key=item.authorization.idempotency_key,
            status=item.status,
            authorized=item.authorization.amount,
            route=item.route,
            masked_instrument=item.instrument.masked,
            fingerprint=item.instrument.fingerprint,
            token=item.instrument.token,
            response_code=result.response_code,
            authorization_code=result.authorization_code,
            fee_minor=item.fee.minor_units if item.fee else 0,
            created_at=now,
            updated_at=now,
        )

    def _entry(self, item: _Item, result: AuthorizationResult, now: float) -> JournalEntry:
        return JournalEntry(
            transaction_id=item.transaction_id,
            merchant_id=item.authorization.merchant_id,
            idempotency_key=item.authorization.idempotency_key,
            kind=OperationKind.AUTHORIZE,
            amount=item.authorization.amount,
            response_code=result.response_code,
            status=item.status,
            request_hash=item.request_hash,
            response=idempotency.encode_result(result),
            created_at=now,
            fee_shares=item.fee_shares,
        )


def _conflict(item: _Item) -> IdempotencyConflict:
    return IdempotencyConflict(
        f"idempotency key {quoted(item.authorization.idempotency_key)} was used for a different request"
    )


def _completion(item: _Item, request_hash: str, response: bytes | None, release: tuple[Counter, ...]) -> Completion:
    authorization = item.authorization
    return Completion(
        authorization.merchant_id,
        authorization.idempotency_key,
        request_hash,
        response,
        authorization.amount.minor_units,
        release,
    )


def _give_back(item: _Item) -> Completion:
    """Frees the key and moves the counters back: the call failed and may be retried."""
    return _completion(item, item.request_hash, None, item.moved_counters)
