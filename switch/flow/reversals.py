"""The reversal queue: authorizations whose outcome is unknown are undone on their route.

Each pass first settles abandoned intents: authorizations recorded as about to be
sent (switch.flow.pipeline records an intent before each send) whose outcome was never
journaled, because the switch crashed or its commit failed after the route may
have approved them. Once older than the lease (no live batch takes that long)
each is journaled as UNKNOWN, declined 91, with a pending reversal, exactly as an
authorization that timed out; a commit that lands late loses to that record by
the (merchant, idempotency key) guard, so the network's approval is reversed,
never forgotten, and a retry with the same key replays the 91.

The pipeline journals a pending reversal in the same commit as the unknown outcome,
so it survives any crash after the caller was told. This worker sends the route
a reversal for each due one, with exponential backoff, until the route answers;
then, in one commit, it marks the reversal done and the transaction REVERSED. The
network may see a reversal twice (a crash between its answer and that commit):
networks match reversals to the original by its reference and apply them once, and
the switch applies the REVERSED status exactly once (finish_reversal is
conditional). A late approval changes nothing here: the reversal undoes it.

On a route whose approvals move the money at once (an instant payment), the
reversal is a recall, and the receiving bank decides:
- accepted, the money comes back later, by a return the adapter delivers
  (switch.flow.returns): the transaction is RETURN_PENDING until it does;
- rejected, the money stays moved although the caller was told 91: the
  transaction is RECALL_REJECTED, counted and logged for operations to settle.
A declined reversal on any other route is REVERSED: an authorization hold that is
never captured lapses.

A network that matches reversals by the card (Capability.CARD_ON_REVERSAL) gets the
clear card on the reversal, recovered from the transaction's token by the tokenizer
and checked against its fingerprint; without a readable token the reversal goes
without it, and the network matches it by its original data elements.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

from switch.adapters.contract import AdapterRequest, AdapterResult, Capability
from switch.domain.models import (
    AuthorizationResult,
    Card,
    JournalEntry,
    Money,
    OperationKind,
    TransactionRecord,
    TransactionStatus,
)
from switch.flow import idempotency
from switch.flow.periodic import Periodic
from switch.routing.router import Router
from switch.stores.base import Intent, Journal, PendingReversal
from switch.telemetry.metrics import Counter

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 60.0
BATCH = 100


class ReversalWorker(Periodic):
    name = "reversals"

    def __init__(
        self,
        journal: Journal,
        router: Router,
        *,
        interval: float = 0.2,
        time_left: float = 2.0,
        intent_lease: float = 30.0,
        clock: Callable[[], float] = time.time,
        outcomes: Counter | None = None,
        cards: Callable[[str, str], Card | None] | None = None,
    ) -> None:
        """outcomes counts the reversals finished, by route and the status they left; cards
        gives the card behind a transaction's token and fingerprint (Tokenizer.card_of)."""
        super().__init__(interval)
        self._journal = journal
        self._router = router
        self._time_left = time_left
        self._intent_lease = intent_lease
        self._clock = clock
        self._outcomes = outcomes
        self._cards = cards

    async def run_once(self) -> int:
        """Settles abandoned intents, then sends every due reversal once; returns how many
        reversals the routes acknowledged."""
        await self.settle_abandoned_intents()
        due = await self._journal.due_reversals(self._clock(), BATCH)
        by_route: dict[str, list[PendingReversal]] = defaultdict(list)
        for pending in due:
            by_route[pending.route].append(pending)
        done = await asyncio.gather(*(self._reverse(route, group) for route, group in by_route.items()))
        return sum(done)

    async def settle_abandoned_intents(self) -> int:
        """Journals each intent older than the lease that has no outcome as UNKNOWN (with
        its pending reversal); returns how many it recorded."""
        now = self._clock()
        abandoned = await self._journal.abandoned_intents(now - self._intent_lease, BATCH)
        recorded = 0
        if abandoned:
            earlier = await self._journal.record_authorizations([unknown_outcome(i, now) for i in abandoned])
            recorded = sum(found is None for found in earlier)
            for intent, found in zip(abandoned, earlier, strict=True):
                if found is None:
                    log.warning(
                        "%s was sent on %s and never journaled; reversing it", intent.transaction_id, intent.route
                    )
        await self._journal.prune_intents(now)
        return recorded

    async def _reverse(self, route: str, group: list[PendingReversal]) -> int:
        records = [await self._journal.get_transaction(p.transaction_id) for p in group]
        live = [(p, r) for p, r in zip(group, records, strict=True) if r is not None]
        adapter = self._router.adapter(route)
        with_card = Capability.CARD_ON_REVERSAL in adapter.capabilities
        requests = [_reversal_request(record, self._card(record) if with_card else None) for _, record in live]
        try:
            answers = await asyncio.wait_for(adapter.send(requests, self._time_left), self._time_left)
        except Exception as exc:  # unavailable, timed out or broken: all of them again later
            log.warning("reversals on %s not sent (%s); retrying with backoff", route, type(exc).__name__)
            answers = [AdapterResult.timed_out()] * len(requests)
        acknowledged = 0
        for (pending, record), answer in zip(live, answers, strict=True):
            if answer.unknown:
                await self._retry_later(pending)
            elif await self._finish(record, answer):
                acknowledged += 1
        return acknowledged

    async def _finish(self, record: TransactionRecord, answer: AdapterResult) -> bool:
        now = self._clock()
        status = self._status_after(record, answer)
        finished_record, entry = reversal_step(
            record,
            status,
            key=f"reversal:{record.transaction_id}",
            amount=record.authorized,
            code=answer.response_code,
            now=now,
        )
        finished = await self._journal.finish_reversal(finished_record, entry)
        if not finished:
            return False
        if self._outcomes is not None:
            self._outcomes.inc((("route", record.route), ("status", status.value)))
        if status is TransactionStatus.RECALL_REJECTED:
            log.error(
                "recall of %s on %s rejected (%s %s): %s %s moved although the caller was told 91; settle it by hand",
                record.transaction_id,
                record.route,
                answer.response_code,
                answer.message,
                record.authorized.minor_units,
                record.authorized.currency,
            )
        elif status is TransactionStatus.RETURN_PENDING:
            log.info("recall of %s on %s accepted; the return is awaited", record.transaction_id, record.route)
        else:
            log.info("reversed %s on %s (%s)", record.transaction_id, record.route, answer.response_code)
        return True

    def _status_after(self, record: TransactionRecord, answer: AdapterResult) -> TransactionStatus:
        if answer.approved:
            return TransactionStatus.RETURN_PENDING if answer.settles_later else TransactionStatus.REVERSED
        if self._router.settles(record.route):
            return TransactionStatus.RECALL_REJECTED
        return TransactionStatus.REVERSED

    def _card(self, record: TransactionRecord) -> Card | None:
        card = self._cards(record.token, record.fingerprint) if self._cards is not None else None
        if card is None:
            log.warning("reversal of %s goes without the card: no readable token", record.transaction_id)
        return card

    async def _retry_later(self, pending: PendingReversal) -> None:
        attempts = pending.attempts + 1
        delay = min(FIRST_RETRY_SECONDS * 2 ** (attempts - 1), MAX_RETRY_SECONDS)
        await self._journal.reschedule_reversal(pending.transaction_id, attempts, self._clock() + delay)


def _reversal_request(record: TransactionRecord, card: Card | None) -> AdapterRequest:
    """The original authorization, referred to by its id and code, and by its card for a
    network that needs it."""
    return AdapterRequest(
        kind=OperationKind.REVERSE,
        transaction_id=record.transaction_id,
        merchant_id=record.merchant_id,
        amount=record.authorized,
        card=card,
        authorization_code=record.authorization_code,
    )


def reversal_step(
    record: TransactionRecord, status: TransactionStatus, *, key: str, amount: Money, code: str, now: float
) -> tuple[TransactionRecord, JournalEntry]:
    """The transaction in status (its next version) and the REVERSE entry, keyed key, that
    journals the step: a reversal answered, or the return that completes a recall."""
    stepped = replace(record, status=status, updated_at=now, version=record.version + 1)
    entry = JournalEntry(
        transaction_id=record.transaction_id,
        merchant_id=record.merchant_id,
        idempotency_key=key,
        kind=OperationKind.REVERSE,
        amount=amount,
        response_code=code,
        status=status,
        request_hash="",
        response=idempotency.encode_record(stepped),
        created_at=now,
    )
    return stepped, entry


def unknown_outcome(intent: Intent, now: float) -> tuple[TransactionRecord, JournalEntry]:
    """What the journal records for an intent whose outcome it never heard: the same
    UNKNOWN, declined 91, as an authorization whose route did not answer in time."""
    answer = AdapterResult.timed_out()
    result = AuthorizationResult(
        idempotency_key=intent.idempotency_key,
        transaction_id=intent.transaction_id,
        response_code=answer.response_code,
        message=answer.message,
        route=intent.route,
        token=intent.token,
        fee=Money.zero(intent.amount.currency),
    )
    record = TransactionRecord(
        transaction_id=intent.transaction_id,
        merchant_id=intent.merchant_id,
        idempotency_key=intent.idempotency_key,
        status=TransactionStatus.UNKNOWN,
        authorized=intent.amount,
        route=intent.route,
        masked_instrument=intent.masked_instrument,
        fingerprint=intent.fingerprint,
        token=intent.token,
        response_code=answer.response_code,
        created_at=now,
        updated_at=now,
    )
    entry = JournalEntry(
        transaction_id=intent.transaction_id,
        merchant_id=intent.merchant_id,
        idempotency_key=intent.idempotency_key,
        kind=OperationKind.AUTHORIZE,
        amount=intent.amount,
        response_code=answer.response_code,
        status=TransactionStatus.UNKNOWN,
        request_hash=intent.request_hash,
        response=idempotency.encode_result(result),
        created_at=now,
    )
    return record, entry
