"""Captures, voids, refunds and reads of earlier authorizations.

These are rare next to authorizations, so they run one at a time, each with its
own idempotency claim: read -> check the transition -> tell the route's adapter
-> write the new version with its journal entry in one commit -> complete the
claim. A per-transaction lock keeps one process from racing itself; the
journal's version check catches a race between processes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from weakref import WeakValueDictionary

from switch import idempotency, lifecycle
from switch.adapter import AdapterRequest, AdapterUnavailable
from switch.codes import ResponseCode
from switch.errors import (
    ConcurrentUpdate,
    FailedPrecondition,
    IdempotencyConflict,
    NotFound,
    Unavailable,
)
from switch.models import JournalEntry, Operation, TransactionRecord
from switch.routing import Router
from switch.stores.base import ApplyStatus, Claim, ClaimStatus, Completion, Journal, StateStore

log = logging.getLogger(__name__)

_IN_FLIGHT_POLL_SECONDS = 0.01


class TransactionService:
    def __init__(
        self,
        *,
        state: StateStore,
        journal: Journal,
        router: Router,
        adapter_timeout: float,
        in_flight_wait_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._state = state
        self._journal = journal
        self._router = router
        self._adapter_timeout = adapter_timeout
        self._in_flight_wait = in_flight_wait_seconds
        self._clock = clock
        self._locks: WeakValueDictionary[str, asyncio.Lock] = WeakValueDictionary()

    async def get(self, transaction_id: str) -> TransactionRecord:
        record = await self._journal.get_transaction(transaction_id)
        if record is None:
            raise NotFound(f"no transaction {transaction_id!r}")
        return record

    async def execute(self, operation: Operation) -> tuple[TransactionRecord, bool]:
        """The transaction after the operation, and whether this answer is a replay."""
        merchant_id = (await self.get(operation.transaction_id)).merchant_id
        request_hash = idempotency.operation_hash(operation)
        claim = Claim(merchant_id, operation.idempotency_key, request_hash, 0)
        replay = await self._claim(claim)
        if replay is not None:
            return idempotency.decode_record(replay), True
        try:
            async with self._lock(operation.transaction_id):
                updated, entry, replayed = await self._apply(merchant_id, operation, request_hash)
        except BaseException:
            # Nothing was recorded: give the key back so the caller may retry.
            give_back = Completion(merchant_id, claim.idempotency_key, request_hash, None)
            await self._state.complete([give_back], self._clock())
            raise
        await self._state.complete(
            [Completion(merchant_id, claim.idempotency_key, entry.request_hash, entry.response)], self._clock()
        )
        if entry.request_hash != request_hash:
            raise IdempotencyConflict(f"idempotency key {operation.idempotency_key!r} was used for a different request")
        return updated, replayed

    async def _claim(self, claim: Claim) -> bytes | None:
        """Claims the key; returns the stored answer when this is a repeat."""
        deadline = self._clock() + self._in_flight_wait
        while True:
            (outcome,) = await self._state.claim([claim], self._clock())
            if outcome.status is ClaimStatus.REPLAY:
                return outcome.response
            if outcome.status is ClaimStatus.CONFLICT:
                raise IdempotencyConflict(f"idempotency key {claim.idempotency_key!r} was used for a different request")
            if outcome.status is not ClaimStatus.IN_FLIGHT:
                return None
            if self._clock() > deadline:
                raise ConcurrentUpdate("a request with this idempotency key is still in flight; retry later")
            await asyncio.sleep(_IN_FLIGHT_POLL_SECONDS)

    async def _apply(
        self, merchant_id: str, operation: Operation, request_hash: str
    ) -> tuple[TransactionRecord, JournalEntry, bool]:
        """Applies the operation; returns the result, its journal entry, and whether it is a replay.

        Runs under the transaction's lock: the journal is asked first (the state store
        may have lost the key), the record is read afresh, and the route is told only
        about a transition this process is about to write.
        """
        scope = (merchant_id, operation.idempotency_key)
        done = (await self._journal.find_entries([scope])).get(scope)
        if done is not None:
            return idempotency.decode_record(done.response), done, True
        record = await self.get(operation.transaction_id)
        now = self._clock()
        updated = lifecycle.apply(record, operation, now)
        await self._notify_adapter(record, operation)
        entry = JournalEntry(
            transaction_id=record.transaction_id,
            merchant_id=record.merchant_id,
            idempotency_key=operation.idempotency_key,
            kind=operation.kind,
            amount=lifecycle.operation_amount(record, operation),
            response_code=ResponseCode.APPROVED.code,
            status=updated.status,
            request_hash=request_hash,
            response=idempotency.encode_record(updated),
            created_at=now,
        )
        outcome = await self._journal.apply(updated, entry)
        if outcome.status is ApplyStatus.APPLIED:
            return updated, entry, False
        if outcome.status is ApplyStatus.DUPLICATE:
            assert outcome.existing is not None
            return idempotency.decode_record(outcome.existing.response), outcome.existing, True
        # Another process changed the transaction between our read and our write, after
        # the route was told. Rare (one process serializes itself with the lock); the
        # route's record needs reconciling, which the reversal queue will automate.
        log.error("%s changed under a %s already sent to its route", record.transaction_id, operation.kind.value)
        raise ConcurrentUpdate(f"{record.transaction_id} changed concurrently; read it and retry")

    async def _notify_adapter(self, record: TransactionRecord, operation: Operation) -> None:
        if not record.route:
            return
        request = AdapterRequest(
            kind=operation.kind,
            transaction_id=record.transaction_id,
            merchant_id=record.merchant_id,
            amount=lifecycle.operation_amount(record, operation),
            authorization_code=record.authorization_code,
        )
        try:
            (answer,) = await asyncio.wait_for(
                self._router.adapter(record.route).send([request], self._adapter_timeout), self._adapter_timeout
            )
        except (AdapterUnavailable, TimeoutError) as exc:
            raise Unavailable(f"route {record.route} did not take the {operation.kind.value}; retry") from exc
        if not answer.approved:
            raise FailedPrecondition(
                f"the network declined the {operation.kind.value} of {record.transaction_id} ({answer.response_code})"
            )

    def _lock(self, transaction_id: str) -> asyncio.Lock:
        lock = self._locks.get(transaction_id)
        if lock is None:
            lock = self._locks[transaction_id] = asyncio.Lock()
        return lock
