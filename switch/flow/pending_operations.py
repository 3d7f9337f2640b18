"""Captures, voids and refunds between their decision and their outcome.

The transaction service decides an operation before anything is sent: one journal
write, conditional on the transaction's version, stores the transaction with the
operation's amount reserved and the operation's entry pending. Then the operation
is sent with its reference (reference(): the same on every send of it) and
resolved by the network's answer: approved, the entry becomes final; declined, the
same commit undoes the reservation (conditional on the version again). Without a
definite answer (none in time, or a worker that died between decision and
resolution) the entry stays pending, and PendingOperationWorker takes each one
whose lease ran out and sends it again, with the same reference, until the
network answers.

Networks apply an operation once per reference and answer a repeat with the first
answer: that makes a resend safe, and it is why a worker that took an operation
over may send what a slow one already sent. Only one of them resolves it, since
resolving is conditional on the entry still being pending. Taking over is
conditional on the attempt count read, so one worker takes an expired lease; and
only the decider, before anyone took over, may withdraw an operation its route
never received (AdapterUnavailable) and free its key.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from switch.adapters.contract import AdapterRequest, AdapterResult, AdapterUnavailable
from switch.domain.errors import FailedPrecondition
from switch.domain.models import JournalEntry, TransactionRecord
from switch.domain.response_codes import ResponseCode
from switch.flow import idempotency, lifecycle
from switch.flow.periodic import Periodic
from switch.routing.router import Router
from switch.stores.base import ApplyStatus, Journal, PendingOperation

log = logging.getLogger(__name__)

LEASE_MARGIN_SECONDS = 1.0
UNDO_ATTEMPTS = 5  # compensating writes tried while other operations move the transaction
BATCH = 100
MAX_LEASE_SECONDS = 60.0


def reference(entry: JournalEntry) -> str:
    """The operation's id on the network, from its (merchant, idempotency key): the
    journal holds that pair once, so every send of the operation carries the same."""
    digest = hashlib.sha256(f"{entry.merchant_id}\x1f{entry.idempotency_key}".encode()).hexdigest()
    return f"op_{digest[:32]}"


def lease_seconds(adapter_timeout: float) -> float:
    """How long a sender holds an operation: its send and its resolution, twice over."""
    return 2 * adapter_timeout + LEASE_MARGIN_SECONDS


class Outcomes:
    """Sends decided operations and journals what the network answered."""

    def __init__(
        self, journal: Journal, router: Router, *, adapter_timeout: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._journal = journal
        self._router = router
        self._timeout = adapter_timeout
        self._clock = clock

    async def send(self, entry: JournalEntry, record: TransactionRecord) -> AdapterResult:
        """The network's answer; an unknown one when the operation may have been sent and
        no answer came. Raises AdapterUnavailable when nothing was sent."""
        if not record.route:  # a transaction no network holds: nothing to tell
            return AdapterResult(ResponseCode.APPROVED.code, ResponseCode.APPROVED.message)
        request = AdapterRequest(
            kind=entry.kind,
            transaction_id=entry.transaction_id,
            merchant_id=entry.merchant_id,
            amount=entry.amount,
            authorization_code=record.authorization_code,
            reference=reference(entry),
        )
        try:
            adapter = self._router.adapter(record.route)
        except KeyError:
            raise AdapterUnavailable(f"no route {record.route} is configured") from None
        try:
            (answer,) = await asyncio.wait_for(adapter.send([request], self._timeout), self._timeout)
        except AdapterUnavailable:
            raise
        except Exception as exc:  # no answer in time, or a broken adapter: it may have been sent
            log.warning(
                "%s of %s: no answer (%s); outcome unknown", entry.kind.value, entry.transaction_id, type(exc).__name__
            )
            return AdapterResult.timed_out()
        return answer

    async def resolve(self, entry: JournalEntry, answer: AdapterResult) -> JournalEntry | None:
        """Journals the network's answer. Returns the final entry (this answer's, or the one
        journaled first by another sender), or None while it stays pending: the answer
        was unknown, or the transaction kept moving under the decline's undo."""
        if answer.unknown:
            return None
        if answer.approved:
            approved = replace(entry, pending=False, response_code=ResponseCode.APPROVED.code)
            status = await self._journal.resolve_operation(approved, None)
            if status is ApplyStatus.APPLIED:
                return approved
        else:

            async def decline(undone: TransactionRecord) -> ApplyStatus:
                return await self._journal.resolve_operation(_declined(entry, answer, undone), undone)

            status = await self._with_undo(entry, decline)
        return None if status is ApplyStatus.STALE else await self._final(entry)

    async def withdraw(self, entry: JournalEntry) -> bool:
        """Deletes an operation its decider never got out (no one took it over since) and
        gives its amount back; True when its key is free again."""

        async def withdraw(undone: TransactionRecord) -> ApplyStatus:
            return await self._journal.withdraw_operation(entry, 1, undone)

        return await self._with_undo(entry, withdraw) is ApplyStatus.APPLIED

    async def _with_undo(
        self, entry: JournalEntry, write: Callable[[TransactionRecord], Awaitable[ApplyStatus]]
    ) -> ApplyStatus:
        """write(the transaction with entry's reservation taken back), read again while other
        operations move the transaction under it; STALE if it never holds still."""
        for _ in range(UNDO_ATTEMPTS):
            record = await self._journal.get_transaction(entry.transaction_id)
            assert record is not None, entry.transaction_id  # entries never outlive their transaction
            try:
                undone = lifecycle.undo(record, entry.kind, entry.amount, self._clock())
            except FailedPrecondition:
                return ApplyStatus.DUPLICATE  # taken back already: another sender resolved it
            status = await write(undone)
            if status is not ApplyStatus.STALE:
                return status
        return ApplyStatus.STALE

    async def _final(self, entry: JournalEntry) -> JournalEntry | None:
        scope = (entry.merchant_id, entry.idempotency_key)
        stored = (await self._journal.find_entries([scope])).get(scope)
        if stored is None or stored.pending:
            log.error("%s of %s could not be resolved", entry.kind.value, entry.transaction_id)
            return None
        return stored


def _declined(entry: JournalEntry, answer: AdapterResult, undone: TransactionRecord) -> JournalEntry:
    """The final entry of a declined operation: its answer is the transaction without it."""
    response = idempotency.encode_record(undone)
    return replace(entry, pending=False, response_code=answer.response_code, status=undone.status, response=response)


class PendingOperationWorker(Periodic):
    """Sends each pending operation whose lease ran out again, with its reference, until
    the network answers, and resolves it. Every worker process runs one."""

    name = "pending-operations"

    def __init__(
        self,
        journal: Journal,
        router: Router,
        *,
        adapter_timeout: float,
        lease_seconds: float,
        interval: float = 0.2,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(interval)
        self._journal = journal
        self._outcomes = Outcomes(journal, router, adapter_timeout=adapter_timeout, clock=clock)
        self._lease = lease_seconds
        self._clock = clock

    async def run_once(self) -> int:
        """Sends every operation whose lease ran out once more; returns how many it resolved."""
        due = await self._journal.due_operations(self._clock(), BATCH)
        finished = await asyncio.gather(*(self._finish(pending) for pending in due), return_exceptions=True)
        for failure in (f for f in finished if isinstance(f, Exception)):
            log.warning("a pending operation stays pending (%s)", type(failure).__name__, exc_info=failure)
        return sum(f is True for f in finished)

    async def _finish(self, pending: PendingOperation) -> bool:
        entry = pending.entry
        lease = min(self._lease * 2 ** (pending.attempts - 1), MAX_LEASE_SECONDS)
        if not await self._journal.take_operation(entry, pending.attempts, self._clock() + lease):
            return False  # resolved, or taken over by another worker, since it was read
        record = await self._journal.get_transaction(entry.transaction_id)
        assert record is not None, entry.transaction_id
        try:
            answer = await self._outcomes.send(entry, record)
        except AdapterUnavailable:
            return False  # nothing went out this time; an earlier send may have: never withdraw, resend later
        return await self._outcomes.resolve(entry, answer) is not None
