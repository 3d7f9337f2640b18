"""The authorization flow, top to bottom, on a batch.

    tokenize -> limit counters (risk) -> claim keys + move velocity counters (one state-store call)
    -> drop keys the journal already holds (one read) -> route -> price (one fee-engine call)
    -> intents, then adapters (per route, concurrently: record what is about to be sent, send it)
    -> journal (one commit) -> complete the claims (one state-store call) -> resolve

Each item carries its Stage: a step takes the items in the stages it acts on and
moves them on, and the stage an item ends in decides its one outcome, made in
one place (_outcome_of), in order: a result (approved or declined), a
SwitchError of its own, or InFlight when another caller holds its key. No result
is returned before its journal entry is committed.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

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
from switch.risk.assess import Scored
from switch.risk.policy import CurrentPolicy, RiskPolicy
from switch.risk.sanctions.screening import Outcome as Screened
from switch.risk.sanctions.screening import Screening
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


class Stage(enum.Enum):
    """Where an item stands; the comment says what it carries and where it goes next."""

    TOKENIZED = enum.auto()  # its key is not claimed yet
    CLAIMED = enum.auto()  # its key is this batch's and its counters moved: to be routed
    LIMITED = enum.auto()  # over a velocity or amount limit (decline): journaled, never routed or sent
    REFUSED = enum.auto()  # its screening declined it (decline): journaled, never routed or sent
    # No route takes it: none serves it, every breaker is open, or failing over left none that
    # could, or whose fee fits (decline): journaled, never sent.
    UNROUTABLE = enum.auto()
    ROUTED = enum.auto()  # on the first route of its plan: to be priced
    PRICED = enum.auto()  # its fee is quoted (quote): to be sent
    ANSWERED = enum.auto()  # the route answered (answer), approving or declining: to be journaled
    UNKNOWN = enum.auto()  # sent, outcome unknown (answer): journaled as unknown, with its pending reversal
    UNSENT = enum.auto()  # not sent after all (error): its key is given back with the commit
    JOURNALED = enum.auto()  # committed (result)
    REPLAYED = enum.auto()  # done before with the same request (result)
    CONFLICT = enum.auto()  # its key was used for a different request
    IN_FLIGHT = enum.auto()  # another caller holds its key
    FAILED = enum.auto()  # answered with its error; its key was given back for the retry


# The steps compare stages item by item, so they read these plain module names: on
# Python 3.11 every Stage.X lookup runs EnumType's Python-level attribute hook.
_TOKENIZED = Stage.TOKENIZED
_CLAIMED = Stage.CLAIMED
_LIMITED = Stage.LIMITED
_REFUSED = Stage.REFUSED
_UNROUTABLE = Stage.UNROUTABLE
_ROUTED = Stage.ROUTED
_PRICED = Stage.PRICED
_ANSWERED = Stage.ANSWERED
_UNKNOWN = Stage.UNKNOWN
_UNSENT = Stage.UNSENT
_JOURNALED = Stage.JOURNALED
_REPLAYED = Stage.REPLAYED
_CONFLICT = Stage.CONFLICT
_IN_FLIGHT = Stage.IN_FLIGHT
_FAILED = Stage.FAILED

# Tuples, not sets: membership by identity, without Enum's hash in Python.
# Claimed by this batch and nothing sent: what a batch failing before the send gives back.
_HELD_NOT_SENT = (_CLAIMED, _LIMITED, _REFUSED, _ROUTED, _UNROUTABLE, _PRICED)
_TO_JOURNAL = (_ANSWERED, _UNKNOWN, _LIMITED, _REFUSED, _UNROUTABLE)


@dataclass(frozen=True, slots=True)
class _Decline:
    """The switch's own answer to an item it never sent."""

    code: ResponseCode
    reason: str = ""  # when the code's own message does not say enough

    @property
    def message(self) -> str:
        return self.reason or self.code.message


_LIMIT_DECLINES = {
    ClaimStatus.COUNT_LIMIT: _Decline(ResponseCode.EXCEEDS_COUNT_LIMIT),
    ClaimStatus.AMOUNT_LIMIT: _Decline(ResponseCode.EXCEEDS_AMOUNT_LIMIT),
}
_NO_ROUTE = _Decline(ResponseCode.NO_ROUTE)


def _scored(item: _Item) -> Scored:
    """What the assessor judges an item on: the activity the claim answered (its payer's, and
    its destination account's when it has one) and the request's facts."""
    authorization = item.authorization
    answered = item.activity
    destination = answered[1] if len(answered) > 1 else None
    for counter in item.counters:
        payment = counter.payment
        if payment is not None and not payment.receiving:
            usd = payment.usd_cents / 100
            return Scored(answered[0], destination, usd, authorization.cross_border, item.card is not None)
    raise AssertionError("an item with activity has its payer's payment among its counters")


def _merged(decision: str, more: dict[str, object]) -> str:
    """The journaled decision with more risk findings beside what an earlier step decided: the
    two JSON objects spliced into one, unparsed (screening's keys and the assessment's never
    meet)."""
    added = orjson.dumps(more).decode()
    if not decision or not more:
        return decision or added
    return f"{decision[:-1]},{added[1:]}"


def _over_cap(tier: str, cap: str, policy: RiskPolicy) -> tuple[_Decline, str]:
    """The decline (57) of an item over a KYC cap, and the decision journaled with it: the
    tier the store read ("" when the holder has none: the default tier's caps), the cap,
    and the policy's version."""
    code = ResponseCode.NOT_PERMITTED
    decline = _Decline(code, f"{code.message} (KYC tier {tier or 'default'}: {cap} cap reached)")
    decided: dict[str, object] = {"kyc": {"tier": tier, "cap": cap}}
    if policy.version:
        decided["policy"] = policy.version
    return decline, orjson.dumps(decided).decode()


_EVERY_BREAKER_OPEN = _Decline(ResponseCode.ISSUER_UNAVAILABLE, "no route can take it now")


@dataclass(slots=True)
class _Item:
    """One authorization on its way through the pipeline; stage says which fields hold."""

    index: int
    authorization: Authorization
    instrument: Instrument
    card: Card | None
    request_hash: str
    transaction_id: str
    stage: Stage = _TOKENIZED
    counters: tuple[Counter, ...] = ()
    counted: bool = False  # the claim moved the velocity counters
    route: str = ""
    plan: Sequence[str] = ()
    quote: FeeQuote | None = None
    decline: _Decline | None = None
    activity: tuple[bytes, ...] = ()  # its parties' activity before it, as the claim answered it
    decision: str = ""  # what the risk step decided, journaled with the entry (JournalEntry.decision)
    alert: str = ""  # the kind of alert it raised, journaled with the entry (JournalEntry.alert)
    answer: AdapterResult | None = None
    result: AuthorizationResult | None = None
    error: SwitchError | None = None
    # Fixed once by settle(), when the answer is final.
    status: TransactionStatus = TransactionStatus.UNKNOWN
    fee: Money | None = None  # what the approved authorization costs the merchant; zero for a decline

    @property
    def moved_counters(self) -> tuple[Counter, ...]:
        return self.counters if self.counted else ()

    def settle(self, settles: bool) -> AuthorizationResult:
        """Fixes the item's status and fee from its final answer; returns its result.
        settles: an approval on its route moves the money at once (captured in full)."""
        stage = self.stage
        if stage is _ANSWERED or stage is _UNKNOWN:
            answer = self.answer
            assert answer is not None
            code, authorization_code, approved = answer.response_code, answer.authorization_code, answer.approved
            message = answer.message or ResponseCode.from_code(code).message
            if stage is _UNKNOWN:
                self.status = TransactionStatus.UNKNOWN
            else:
                approval = TransactionStatus.CAPTURED if settles else TransactionStatus.AUTHORIZED
                self.status = approval if approved else TransactionStatus.DECLINED
        else:  # LIMITED, REFUSED or UNROUTABLE: the switch's own decline
            decline = self.decline
            assert decline is not None
            code, message, authorization_code, approved = decline.code.code, decline.message, "", False
            self.status = TransactionStatus.DECLINED
        quote = self.quote
        fee = quote.fee if approved and quote is not None else Money.zero(self.authorization.amount.currency)
        self.fee = fee
        return AuthorizationResult(
            idempotency_key=self.authorization.idempotency_key,
            transaction_id=self.transaction_id,
            response_code=code,
            message=message,
            route=self.route,
            authorization_code=authorization_code,
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
        screening: Screening | None = None,
        policy: CurrentPolicy | None = None,
    ) -> None:
        """policy: the risk policy in force (KYC caps and activity, moved in the claim; the
        fraud score and AML rules over that activity), read once per batch."""
        self._metrics = metrics or SwitchMetrics()
        self._screening = screening
        self._policy = policy or CurrentPolicy()
        self._tokenizer = tokenizer
        self._state = state
        self._journal = journal
        self._router = router
        self._risk = risk
        self._fees = fees
        self._adapter_timeout = adapter_timeout
        self._clock = clock

    async def run(self, batch: Sequence[Authorization]) -> list[Outcome]:
        now = self._clock()
        policy = self._policy.policy  # this batch's, whatever a reload swaps in meanwhile
        items, refused = self._tokenize(batch)
        self._limit_counters(items, now, policy)
        await self._claim(items, now, policy)
        try:
            await self._skip_journaled(items, now)
            await self._screen(items)
            self._assess(items, policy)
            uncarried = self._route(items)
            if uncarried:
                await self._complete([_give_back(item) for item in uncarried], now)
            await self._price(items, now)
        except Exception:
            # Nothing was sent: free the keys (and counters) for the retry before failing the batch.
            await self._complete([_give_back(item) for item in items if item.stage in _HELD_NOT_SENT], now)
            raise
        await self._call_adapters(items)
        await self._commit(items)
        return self._resolve(len(batch), items, refused)

    def _tokenize(self, batch: Sequence[Authorization]) -> tuple[list[_Item], list[tuple[int, SwitchError]]]:
        """Past this point only instruments travel, except the card an adapter needs. An
        authorization whose token cannot be read is refused here, with its error."""
        tokenizer = self._tokenizer
        resolved: list[tuple[int, Authorization, Card | None, Instrument]] = []
        refused: list[tuple[int, SwitchError]] = []
        for index, authorization in enumerate(batch):
            source = authorization.source
            try:
                if isinstance(source, Token):
                    source = tokenizer.detokenize(source, source.key_id)
            except SwitchError as error:
                refused.append((index, error))
                continue
            if isinstance(source, Account):
                resolved.append((index, authorization, None, tokenizer.account(source)))
            else:
                resolved.append((index, authorization, source, tokenizer.card(source)))
        transaction_ids = new_transaction_ids(len(resolved))  # one random read for the batch
        authorization_hash = idempotency.authorization_hash
        items = [
            _Item(
                index=index,
                authorization=authorization,
                instrument=instrument,
                card=card,
                request_hash=authorization_hash(authorization, instrument),
                transaction_id=transaction_id,
            )
            for (index, authorization, card, instrument), transaction_id in zip(resolved, transaction_ids, strict=True)
        ]
        return items, refused

    def _limit_counters(self, items: list[_Item], now: float, policy: RiskPolicy) -> None:
        """Risk: the velocity and amount counters and the KYC caps each item must fit under. The
        claim checks and moves them with the key, atomically, so concurrent batches cannot
        both pass a limit."""
        authorizations, instruments = [i.authorization for i in items], [i.instrument for i in items]
        counters = self._risk.counters_many(authorizations, instruments, now)
        holders = policy.holders  # None when the policy moves neither KYC totals nor activity
        if holders is not None:
            account = self._tokenizer.account
            destinations = [
                None if a.destination is None else account(a.destination).fingerprint for a in authorizations
            ]
            held = holders.counters_many(authorizations, instruments, destinations, now)
            counters = [velocity + holder for velocity, holder in zip(counters, held, strict=True)]
        for item, item_counters in zip(items, counters, strict=True):
            item.counters = item_counters

    async def _claim(self, items: list[_Item], now: float, policy: RiskPolicy) -> None:
        """Claims every key in one call. CLAIMED and LIMITED items are this batch's to answer."""
        if not items:
            return
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
        new = ClaimStatus.NEW  # read once: each ClaimStatus.X lookup is slow on 3.11, as Stage's
        for item, claimed in zip(items, await self._state.claim(claims, now), strict=True):
            status = claimed.status
            if status is new:
                item.stage, item.counted, item.activity = _CLAIMED, True, claimed.activity
            elif status is ClaimStatus.REPLAY:
                assert claimed.response is not None
                self._metrics.replays.inc()
                item.stage, item.result = _REPLAYED, idempotency.decode_result(claimed.response, replayed=True)
            elif status is ClaimStatus.CONFLICT:
                item.stage = _CONFLICT
            elif status is ClaimStatus.IN_FLIGHT:
                item.stage = _IN_FLIGHT
            elif status is ClaimStatus.TIER_LIMIT:  # claimed, but over a KYC cap: its counters did not move
                item.stage, item.decline, item.decision = _LIMITED, *_over_cap(claimed.tier, claimed.over, policy)
                self._metrics.kyc_declines.inc((("cap", claimed.over),))
            else:  # claimed, but over a limit: its counters did not move
                item.stage, item.decline = _LIMITED, _LIMIT_DECLINES[status]

    async def _skip_journaled(self, items: list[_Item], now: float) -> None:
        """Answers from the journal any key it already holds, so nothing is sent twice.

        The state store normally knows every key, but it may have lost some (a Redis
        restart, the embedded store after a switch restart, a lease taken over after
        a crash); the journal is the record of what was done.
        """
        ours = [item for item in items if item.stage is _CLAIMED or item.stage is _LIMITED]
        if not ours:
            return
        scopes = [(i.authorization.merchant_id, i.authorization.idempotency_key) for i in ours]
        journaled = await self._journal.find_entries(scopes)
        if not journaled:
            return
        pairs = [(item, journaled.get(scope)) for item, scope in zip(ours, scopes, strict=True)]
        held = [(item, found) for item, found in pairs if found is not None]
        # Every replay is decoded before any item moves: if one cannot be, the whole batch
        # still holds its keys and gives them all back.
        replays = [self._replay_of(item, found) for item, found in held]
        completions = []
        for (item, found), replay in zip(held, replays, strict=True):
            _answer_from_journal(item, replay)
            completions.append(_completion(item, found.request_hash, found.response, item.moved_counters))
        await self._complete(completions, now)

    def _replay_of(self, item: _Item, found: JournalEntry) -> AuthorizationResult | None:
        """The journal's answer for item's key; None when the key was used for a different request."""
        if found.request_hash != item.request_hash:
            return None
        self._metrics.replays.inc()
        return idempotency.decode_result(found.response, replayed=True)

    async def _screen(self, items: list[_Item]) -> None:
        """Risk: sanctions screening of every claimed item's parties, in one pass; a hit is the
        switch's decline (93), a name to review passes with an alert."""
        screening = self._screening
        claimed = [item for item in items if item.stage is _CLAIMED]
        if screening is None or not screening.active or not claimed:
            return
        countries = [self._router.card_country(i.card.pan[:6] if i.card is not None else None) for i in claimed]
        verdicts = await screening.screen([item.authorization for item in claimed], countries)
        decisions: dict[int, str] = {}  # by verdict: most items share the list's one pass
        for item, verdict in zip(claimed, verdicts, strict=True):
            decision = decisions.get(id(verdict))
            if decision is None:
                decision = decisions[id(verdict)] = verdict.decision
            item.decision = decision
            if verdict.outcome is Screened.HIT:
                code = ResponseCode.VIOLATION_OF_LAW
                item.stage, item.decline = _REFUSED, _Decline(code, f"{code.message} ({verdict.reason})")
            if verdict.outcome is not Screened.PASS:
                item.alert = f"sanctions_{verdict.outcome.value}"
                self._metrics.risk_alerts.inc((("kind", item.alert),))
                log.warning("screening of %s: %s (%s)", item.transaction_id, verdict.outcome.value, verdict.reason)

    def _assess(self, items: list[_Item], policy: RiskPolicy) -> None:
        """Risk: the fraud score and the AML rules over each claimed item's activity, in one
        pass; a score over the model's decline threshold is the switch's decline (59),
        alerts pass. The decision journaled names the model's version and the score."""
        assessor = policy.assessor
        if assessor is None:
            return
        judged_items = [item for item in items if item.stage is _CLAIMED and item.activity]
        if not judged_items:
            return
        payments = [_scored(item) for item in judged_items]
        judged, alarms = assessor.judge(payments)
        for alarm in alarms:
            self._metrics.drift_alarms.inc((("signal", alarm.signal), ("direction", alarm.direction)))
            log.warning("risk drift: %s went %s", alarm.signal, alarm.direction)
        for (live, challenger), count in assessor.compared(judged).items():
            self._metrics.challenger.inc((("live", live), ("challenger", challenger)), count)
        model, challenger_model = assessor.model, assessor.challenger
        for item, judgement in zip(judged_items, judged, strict=True):
            decided: dict[str, object] = {}
            if judgement.score is not None and model is not None:
                decided["model"], decided["score"] = model.version, round(judgement.score, 6)
                if judgement.features is not None:
                    decided["features"] = judgement.features
                if judgement.challenger is not None and challenger_model is not None:
                    decided["challenger"] = {"model": challenger_model.version, "score": round(judgement.challenger, 6)}
            if judgement.alerts:
                decided["alerts"] = list(judgement.alerts)
                for kind in judgement.alerts:
                    self._metrics.risk_alerts.inc((("kind", kind),))
                if not item.alert:  # one per entry, the first: the decision lists them all
                    item.alert = judgement.alerts[0]
            if judgement.declines:
                code = ResponseCode.SUSPECTED_FRAUD
                item.stage, item.decline = _REFUSED, _Decline(code, f"{code.message} (risk score)")
            if decided:
                if policy.version:
                    decided["policy"] = policy.version
                item.decision = _merged(item.decision, decided)

    def _route(self, items: list[_Item]) -> list[_Item]:
        """Each claimed item's plan of routes, kept to those that can carry its fields; it starts
        on the first. LIMITED items go nowhere. Returns the items no route of their plan can
        carry: failed INVALID_ARGUMENT, their keys to give back."""
        uncarried = []
        for item in items:
            if item.stage is not _CLAIMED:
                continue
            card_bin = item.card.pan[:6] if item.card is not None else None  # inside the tokenizer boundary
            plan = self._router.plan(item.authorization, card_bin)
            if plan:
                plan, violations = self._router.carriers(plan, item.authorization)
                if not plan:
                    item.stage, item.error = _FAILED, InvalidRequest(violations)
                    uncarried.append(item)
                    continue
                item.stage, item.plan, item.route = _ROUTED, plan, plan[0]
            elif self._router.routable(item.authorization, card_bin):
                item.stage, item.decline = _UNROUTABLE, _EVERY_BREAKER_OPEN
            else:
                item.stage, item.decline = _UNROUTABLE, _NO_ROUTE
        return uncarried

    async def _price(self, items: list[_Item], now: float) -> None:
        """Quotes every routed item's fee in one engine call, before anything is sent:
        an amount whose fee cannot be computed fails alone, with its key given back."""
        routed = [item for item in items if item.stage is _ROUTED]
        requests = [self._quote_request(item) for item in routed]
        try:
            quotes: list[FeeQuote | None] = list(self._fees.quote_many(requests))
        except MoneyOverflow:
            quotes = [self._quote_alone(request) for request in requests]
        unpriced = []
        for item, quote in zip(routed, quotes, strict=True):
            if quote is None:
                violation = Violation("amount.minor_units", "too large: its fee does not fit in int64 minor units")
                item.stage, item.error = _FAILED, InvalidRequest([violation])
                unpriced.append(item)
            else:
                item.stage, item.quote = _PRICED, quote
        if unpriced:
            await self._complete([_give_back(item) for item in unpriced], now)

    def _quote_request(self, item: _Item) -> QuoteRequest:
        return QuoteRequest(item.authorization.merchant_id, item.authorization.amount, self._router.rail(item.route))

    def _quote_alone(self, request: QuoteRequest) -> FeeQuote | None:
        try:
            return self._fees.quote_many([request])[0]
        except MoneyOverflow:
            return None

    async def _call_adapters(self, items: list[_Item]) -> None:
        """Sends each route its group of PRICED items at once; items a route did not take
        (nothing was sent) move to the next route of their plan, re-priced if its rail differs."""
        pending = [item for item in items if item.stage is _PRICED]
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
        """Moves the item to its next route; False (and UNROUTABLE) when there is none."""
        following = self._router.next_route(item.plan, item.route)
        if following is None:
            code = ResponseCode.ISSUER_UNAVAILABLE
            reason = f"route {item.route} unavailable and no other route can take it"
            item.stage, item.decline = _UNROUTABLE, _Decline(code, reason)
            return False
        rail_changed = self._router.rail(following) != self._router.rail(item.route)
        item.route = following
        if rail_changed:
            item.quote = self._quote_alone(self._quote_request(item))
            if item.quote is None:
                reason = f"the fee on route {following} does not fit"
                item.stage, item.decline = _UNROUTABLE, _Decline(ResponseCode.INVALID_AMOUNT, reason)
                return False
        return True

    async def _send(self, route: str, items: list[_Item]) -> list[_Item]:
        """Sends one route its items; returns those it did not take (nothing was sent)."""
        time_left = self._time_left(items)
        if time_left < MIN_ADAPTER_SECONDS:  # the callers are gone or nearly: send nothing
            for item in items:  # nobody would see a decline, and a retry must find the key free
                item.stage = _UNSENT
                item.error = DeadlineExceeded("the deadline passed before the route could be reached; nothing was sent")
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
            item.stage, item.answer = (_UNKNOWN if answer.unknown else _ANSWERED), answer
        return []

    async def _record_intents(self, route: str, items: list[_Item]) -> list[_Item]:
        """Records, durably, that these items are about to be sent to route (intent before
        send); returns those that may be sent, the others UNSENT. If their outcome is never
        journaled, the reversal worker records them as unknown and reverses them on that route."""
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
                item.stage = _UNSENT
                item.error = Unavailable(f"journal failed: {type(exc).__name__}; nothing was sent, retry")
            return []
        for item in items:
            if item.transaction_id not in recorded:  # an earlier attempt with this key may be at the network
                item.stage = _UNSENT
                item.error = Unavailable("an earlier attempt with this idempotency key is being settled; retry later")
        return [item for item in items if item.stage is _PRICED]

    def _time_left(self, items: list[_Item]) -> float:
        """The adapter's budget: the configured timeout, cut to the nearest caller's
        deadline less what the journal commit and the answer still need."""
        now = asyncio.get_running_loop().time()
        deadlines = [i.authorization.deadline for i in items if i.authorization.deadline is not None]
        if not deadlines:
            return self._adapter_timeout
        return min(self._adapter_timeout, min(deadlines) - now - DEADLINE_RESERVE_SECONDS)

    async def _commit(self, items: list[_Item]) -> None:
        """Gives back the UNSENT items' keys, journals every decided item in one commit, then
        completes their claims."""
        now = self._clock()
        unsent = [item for item in items if item.stage is _UNSENT]
        if unsent:
            await self._complete([_give_back(item) for item in unsent], now)
            for item in unsent:
                item.stage = _FAILED
        decided = [item for item in items if item.stage in _TO_JOURNAL]
        if not decided:
            return
        results = [item.settle(self._router.settles(item.route)) for item in decided]
        rows = [(self._record(i, r, now), self._entry(i, r, now)) for i, r in zip(decided, results, strict=True)]
        try:
            earlier = await self._journal.record_authorizations(rows)
        except Exception as exc:
            log.exception("journal commit of %d authorizations failed", len(decided))
            await self._commit_failed(decided, exc, now)
            return
        completions = []
        answered: defaultdict[tuple[str, str], int] = defaultdict(int)
        for item, result, (_, entry), found in zip(decided, results, rows, earlier, strict=True):
            if found is None:
                item.stage, item.result = _JOURNALED, result
                answered[item.route, item.status.value] += 1
                release = item.moved_counters if item.status is TransactionStatus.DECLINED else ()
                completions.append(_completion(item, entry.request_hash, entry.response, release))
                continue
            # The journal already held this key: the state store had lost or expired it.
            log.warning("duplicate of %s caught by the journal's unique guard", found.transaction_id)
            _answer_from_journal(item, self._replay_of(item, found))
            completions.append(_completion(item, found.request_hash, found.response, item.moved_counters))
        for (route, status), count in answered.items():
            self._metrics.authorizations.inc((("route", route or "none"), ("status", status)), count)
        await self._complete(completions, now)

    async def _commit_failed(self, decided: list[_Item], exc: Exception, now: float) -> None:
        """Gives the keys back for the retry. The sent ones' intents stay: the reversal worker
        records them as unknown and reverses them, and until then a retry is not sent again."""
        await self._complete([_give_back(i) for i in decided], now)
        for item in decided:
            item.stage = _FAILED
            item.error = Unavailable(f"journal failed: {type(exc).__name__}; retry with the same key")

    def _resolve(self, size: int, items: list[_Item], refused: list[tuple[int, SwitchError]]) -> list[Outcome]:
        """Every authorization's outcome, in the batch's order: the refused ones' errors, and
        each item's from the stage it ended in."""
        if not refused:  # the items are the batch, in order
            return [_outcome_of(item) for item in items]
        errors = dict(refused)
        rest = iter(items)
        return [errors[index] if index in errors else _outcome_of(next(rest)) for index in range(size)]

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
            captured_minor=item.authorization.amount.minor_units if item.status is TransactionStatus.CAPTURED else 0,
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
            decision=item.decision,
            alert=item.alert,
        )


def _outcome_of(item: _Item) -> Outcome:
    """The one place an item's stage becomes its caller's outcome."""
    stage = item.stage
    if stage is _JOURNALED or stage is _REPLAYED:
        assert item.result is not None
        return item.result
    if stage is _FAILED:
        assert item.error is not None
        return item.error
    if stage is _IN_FLIGHT:
        return InFlight()
    if stage is _CONFLICT:
        return _conflict(item)
    raise AssertionError(f"item {item.index} left the pipeline unanswered, {stage}")


def _answer_from_journal(item: _Item, replay: AuthorizationResult | None) -> None:
    """The journal already held item's key: REPLAYED with its answer, or CONFLICT (None)."""
    if replay is None:
        item.stage = _CONFLICT
    else:
        item.stage, item.result = _REPLAYED, replay


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
