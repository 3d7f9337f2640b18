"""Captures, voids and refunds of earlier authorizations, and reads of transactions.

These are rare next to authorizations, so each runs on its own (no batching), with
its own idempotency claim, and each reaches the network at most once per intent:

1. decide: read the transaction, check the transition (switch.flow.lifecycle) and
   journal its result (the amount reserved) with the operation's entry, pending,
   in one write conditional on the version read. That write is the guard between
   workers and machines. One that finds the transaction moved sent nothing: it
   reads again and retries a few times, then answers ABORTED and frees the key. A
   refund also waits while a capture of its transaction is pending (the capture
   may yet be declined).
2. send it to the transaction's route with the operation's reference;
3. resolve it (switch.flow.pending_operations): approved, the entry becomes final and
   the claim keeps the answer; declined, the reservation is undone in the same
   commit and the caller gets FAILED_PRECONDITION; no answer in time, it stays
   pending for PendingOperationWorker and the caller gets UNAVAILABLE. A route that
   took nothing withdraws the decision and frees the key.

A key decided before answers from the journal: its final answer, or UNAVAILABLE
while it is pending (a retry with the same key finds the answer). A store that
does not answer is UNAVAILABLE too (retry with the same key), translated in one
place, _stores_answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator

from switch.adapters.contract import AdapterUnavailable
from switch.cards.luhn import quoted
from switch.domain.errors import (
    ConcurrentUpdate,
    FailedPrecondition,
    IdempotencyConflict,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from switch.domain.models import JournalEntry, Operation, OperationKind, TransactionRecord
from switch.domain.response_codes import ResponseCode
from switch.flow import idempotency, lifecycle, pending_operations
from switch.routing.router import Router
from switch.stores import store_errors
from switch.stores.base import ApplyOutcome, ApplyStatus, Claim, ClaimStatus, Completion, Journal, StateStore

log = logging.getLogger(__name__)

_IN_FLIGHT_POLL_SECONDS = 0.01
DECIDE_ATTEMPTS = 5
_DECIDE_PAUSE_SECONDS = 0.005  # before the second attempt; doubling, jittered, after each


MerchantScope = Callable[[str], bool]


def _any_merchant(_: str) -> bool:
    return True


def _check_scope(record: TransactionRecord, may_act_for: MerchantScope) -> None:
    if not may_act_for(record.merchant_id):
        raise PermissionDenied("this caller may not act for this transaction's merchant")


class TransactionService:
    def __init__(
        self,
        *,
        state: StateStore,
        journal: Journal,
        router: Router,
        adapter_timeout: float,
        in_flight_wait_seconds: float,
        lease_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._state = state
        self._journal = journal
        self._outcomes = pending_operations.Outcomes(journal, router, adapter_timeout=adapter_timeout, clock=clock)
        self._in_flight_wait = in_flight_wait_seconds
        # How long this worker holds an operation it decided before others may resend it.
        self._lease = pending_operations.lease_seconds(adapter_timeout) if lease_seconds is None else lease_seconds
        self._clock = clock
        self._store_errors = store_errors()

    async def get(self, transaction_id: str, may_act_for: MerchantScope = _any_merchant) -> TransactionRecord:
        with self._stores_answer():
            record = await self._get(transaction_id)
        _check_scope(record, may_act_for)
        return record

    async def label(
        self, transaction_id: str, fraud: bool, may_act_for: MerchantScope = _any_merchant
    ) -> TransactionRecord:
        """Labels a transaction's authorization as fraud or not (ReportFraud); its journaled
        decision keeps the features it was scored on, for `switch risk train`."""
        with self._stores_answer():
            record = await self._get(transaction_id)
            _check_scope(record, may_act_for)
            await self._journal.record_label(transaction_id, fraud, self._clock())
        return record

    async def execute(
        self, operation: Operation, may_act_for: MerchantScope = _any_merchant
    ) -> tuple[TransactionRecord, bool]:
        """The transaction after the operation, and whether this answer is a replay. A caller
        who may not act for the transaction's merchant is refused before anything is claimed."""
        with self._stores_answer():
            return await self._execute(operation, may_act_for)

    @contextlib.contextmanager
    def _stores_answer(self) -> Iterator[None]:
        """A store that does not answer becomes UNAVAILABLE: the one place this is translated,
        naming the driver's exception type and none of its text."""
        try:
            yield
        except self._store_errors as exc:
            log.warning("a store did not answer (%s)", type(exc).__name__, exc_info=True)
            raise Unavailable(f"a store did not answer ({type(exc).__name__}); retry with the same key") from exc

    async def _get(self, transaction_id: str) -> TransactionRecord:
        record = await self._journal.get_transaction(transaction_id)
        if record is None:
            raise NotFound(f"no transaction {quoted(transaction_id)}")
        return record

    async def _execute(self, operation: Operation, may_act_for: MerchantScope) -> tuple[TransactionRecord, bool]:
        record = await self._get(operation.transaction_id)
        _check_scope(record, may_act_for)
        merchant_id = record.merchant_id
        request_hash = idempotency.operation_hash(operation)
        claim = Claim(merchant_id, operation.idempotency_key, request_hash, 0)
        replay = await self._claim(claim)
        if replay is not None:
            return idempotency.decode_record(replay), True
        try:
            entry, replayed = await self._run(merchant_id, operation, request_hash)
        except BaseException:
            # The journal holds whatever was decided; a retry with the key asks it again.
            give_back = Completion(merchant_id, claim.idempotency_key, request_hash, None)
            await self._state.complete([give_back], self._clock())
            raise
        done = Completion(merchant_id, claim.idempotency_key, request_hash, entry.response)
        await self._state.complete([done], self._clock())
        return idempotency.decode_record(entry.response), replayed

    async def _claim(self, claim: Claim) -> bytes | None:
        """Claims the key; returns the stored answer when this is a repeat."""
        deadline = self._clock() + self._in_flight_wait
        while True:
            (outcome,) = await self._state.claim([claim], self._clock())
            if outcome.status is ClaimStatus.REPLAY:
                return outcome.response
            if outcome.status is ClaimStatus.CONFLICT:
                raise IdempotencyConflict(
                    f"idempotency key {quoted(claim.idempotency_key)} was used for a different request"
                )
            if outcome.status is not ClaimStatus.IN_FLIGHT:
                return None
            if self._clock() > deadline:
                raise Unavailable("a request with this idempotency key is still in flight; retry with the same key")
            await asyncio.sleep(_IN_FLIGHT_POLL_SECONDS)

    async def _run(self, merchant_id: str, operation: Operation, request_hash: str) -> tuple[JournalEntry, bool]:
        """The operation's approved entry, and whether it is a replay; raises for any other end."""
        scope = (merchant_id, operation.idempotency_key)
        earlier = (await self._journal.find_entries([scope])).get(scope)  # the state store may have lost the key
        if earlier is not None:
            return _approved(earlier, request_hash), True
        for attempt in range(DECIDE_ATTEMPTS):
            if attempt:
                await asyncio.sleep(_DECIDE_PAUSE_SECONDS * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
            record = await self._get(operation.transaction_id)
            reserved, entry = self._decision(record, operation, request_hash)
            outcome = await self._decide(reserved, entry)
            if outcome.status is ApplyStatus.APPLIED:
                return await self._send_and_resolve(record, entry), False
            if outcome.status is ApplyStatus.DUPLICATE:
                assert outcome.existing is not None
                return _approved(outcome.existing, request_hash), True
        raise ConcurrentUpdate(
            f"{quoted(operation.transaction_id)} kept changing concurrently; retry with the same key"
        )

    def _decision(
        self, record: TransactionRecord, operation: Operation, request_hash: str
    ) -> tuple[TransactionRecord, JournalEntry]:
        """The transaction with the operation's amount reserved, and the operation's entry,
        pending: no response code yet; its response is that transaction, the answer once
        the network approves. Raises if the transaction's state forbids the operation."""
        now = self._clock()
        reserved = lifecycle.apply(record, operation, now)
        entry = JournalEntry(
            transaction_id=record.transaction_id,
            merchant_id=record.merchant_id,
            idempotency_key=operation.idempotency_key,
            kind=operation.kind,
            amount=lifecycle.operation_amount(record, operation),
            response_code="",
            status=reserved.status,
            request_hash=request_hash,
            response=idempotency.encode_record(reserved),
            created_at=now,
            pending=True,
        )
        return reserved, entry

    async def _decide(self, reserved: TransactionRecord, entry: JournalEntry) -> ApplyOutcome:
        """Journals the reservation with the pending entry if the transaction is still the
        version before it; this worker holds the operation for its lease."""
        if entry.kind is OperationKind.REFUND and await self._capture_pending(reserved.transaction_id):
            return ApplyOutcome(ApplyStatus.STALE)  # the capture may yet be declined: wait for it
        return await self._journal.apply(reserved, entry, lease_until=entry.created_at + self._lease)

    async def _capture_pending(self, transaction_id: str) -> bool:
        pending = await self._journal.pending_operations(transaction_id)
        return any(entry.kind is OperationKind.CAPTURE for entry in pending)

    async def _send_and_resolve(self, record: TransactionRecord, entry: JournalEntry) -> JournalEntry:
        """Sends a decided operation and journals the answer; returns the approved entry."""
        try:
            answer = await self._outcomes.send(entry, record)
        except AdapterUnavailable as exc:
            if await self._outcomes.withdraw(entry):
                raise Unavailable(f"route {record.route} did not take the {entry.kind.value}; retry") from exc
            raise _pending(entry) from exc
        final = await self._outcomes.resolve(entry, answer)
        if final is None:
            raise _pending(entry)
        return _approved(final, entry.request_hash)


def _approved(entry: JournalEntry, request_hash: str) -> JournalEntry:
    """The entry, when it holds this request's approval; raises for anything else (the key
    of another request, an operation still pending, a decline)."""
    if entry.request_hash != request_hash:
        raise IdempotencyConflict(f"idempotency key {quoted(entry.idempotency_key)} was used for a different request")
    if entry.pending:
        raise Unavailable(f"the {entry.kind.value} with this idempotency key is in progress; retry with the same key")
    if entry.response_code != ResponseCode.APPROVED.code:
        raise FailedPrecondition(
            f"the network declined the {entry.kind.value} of {entry.transaction_id} ({entry.response_code})"
        )
    return entry


def _pending(entry: JournalEntry) -> Unavailable:
    return Unavailable(
        f"the network has not answered the {entry.kind.value} of {entry.transaction_id}; "
        "its outcome is pending: retry with the same key"
    )
