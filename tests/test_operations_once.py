"""Captures, voids and refunds reach the network at most once per intent, across workers.

Two TransactionService instances, each with its own journal connection (a PostgreSQL
pool on one schema, or a SQLite connection on one file) and its own Redis client on
one key prefix, stand in for two worker processes; they share one network. The
network applies an operation once per reference, as real networks do, and records
what it applied: the switch must never make it apply more than the journal holds.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import asyncpg
import pytest

from adapters.simulated import SimulatedIssuer
from switch.adapters.contract import AdapterRequest, AdapterResult, AdapterUnavailable, Capability
from switch.config.routing import parse_routing
from switch.domain.errors import ConcurrentUpdate, FailedPrecondition, SwitchError, Unavailable
from switch.domain.models import JournalEntry, Money, Operation, OperationKind, TransactionRecord, TransactionStatus
from switch.domain.response_codes import ResponseCode
from switch.flow import idempotency, lifecycle
from switch.flow.pending_operations import PendingOperationWorker
from switch.flow.transactions import TransactionService
from switch.routing.breaker import Breakers, BreakerSettings
from switch.routing.router import Router
from switch.stores.base import ApplyStatus, Journal
from switch.stores.postgres import PostgresJournal
from switch.stores.redis import RedisStateStore
from switch.stores.sqlite import SqliteJournal
from tests.conftest import POSTGRES_DSN, REDIS_URL, drop_redis_keys

MERCHANT = "m-once"
ROUTE = "card"
TIMEOUT = 0.3  # the adapter timeout: short, so an unanswered send is unknown quickly
RETRYABLE = (ConcurrentUpdate, Unavailable)
Handler = Callable[[AdapterRequest], AdapterResult]


def approve(_: AdapterRequest) -> AdapterResult:
    return AdapterResult(ResponseCode.APPROVED.code, "approved", authorization_code="A1B2C3")


@dataclass
class Network:
    """A network shared by every worker: it applies each reference once and answers a
    repeat with its first answer. A stalled send never arrives; a swallowed one is
    applied but its answer never comes back in time."""

    handler: Handler = approve
    delay: float = 0.02
    received: list[AdapterRequest] = field(default_factory=list)
    applied: list[AdapterRequest] = field(default_factory=list)
    answers: dict[str, AdapterResult] = field(default_factory=dict)
    stall_next: int = 0
    stalled: asyncio.Event = field(default_factory=asyncio.Event)
    swallow_next: int = 0
    name: str = "network"
    capabilities: frozenset[Capability] = frozenset(Capability)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, requests: Sequence[AdapterRequest], time_left: float) -> list[AdapterResult]:
        if self.stall_next:
            self.stall_next -= 1
            self.stalled.set()
            await asyncio.Event().wait()  # the sender dies here: nothing left the switch
        await asyncio.sleep(self.delay)
        self.received.extend(requests)
        answers = [self._apply(request) for request in requests]
        if self.swallow_next:
            self.swallow_next -= 1
            await asyncio.sleep(time_left + 1.0)  # applied, but the answer is lost
        return answers

    def _apply(self, request: AdapterRequest) -> AdapterResult:
        assert request.reference, f"{request} carries no reference"
        if request.reference not in self.answers:
            answer = self.handler(request)
            self.answers[request.reference] = answer
            if answer.approved:
                self.applied.append(request)
        return self.answers[request.reference]

    def total(self, kind: OperationKind, transaction_id: str) -> int:
        return sum(r.amount.minor_units for r in self.applied if r.kind is kind and r.transaction_id == transaction_id)

    def count(self, kind: OperationKind, transaction_id: str, requests: list[AdapterRequest] | None = None) -> int:
        seen = self.applied if requests is None else requests
        return sum(r.kind is kind and r.transaction_id == transaction_id for r in seen)


@dataclass
class Workers:
    network: Network
    journals: list[Journal]
    services: list[TransactionService]
    router: Router

    def worker(self, index: int, ahead: float = 60.0) -> PendingOperationWorker:
        """A resolver on worker `index` whose clock runs `ahead` seconds ahead: every lease has run out."""
        return PendingOperationWorker(
            self.journals[index],
            self.router,
            adapter_timeout=TIMEOUT,
            lease_seconds=1.0,
            clock=lambda: time.time() + ahead,
        )

    async def authorized(self, amount: int) -> str:
        record = TransactionRecord(
            transaction_id=f"tx_{secrets.token_hex(8)}",
            merchant_id=MERCHANT,
            idempotency_key=f"auth-{secrets.token_hex(4)}",
            status=TransactionStatus.AUTHORIZED,
            authorized=Money(amount, "USD"),
            route=ROUTE,
            response_code="00",
            authorization_code="A1B2C3",
            created_at=time.time(),
            updated_at=time.time(),
        )
        entry = JournalEntry(
            transaction_id=record.transaction_id,
            merchant_id=MERCHANT,
            idempotency_key=record.idempotency_key,
            kind=OperationKind.AUTHORIZE,
            amount=record.authorized,
            response_code="00",
            status=record.status,
            request_hash="auth",
            response=idempotency.encode_record(record),
            created_at=record.created_at,
        )
        assert await self.journals[0].record_authorizations([(record, entry)]) == [None]
        return record.transaction_id

    async def stored(self, transaction_id: str) -> TransactionRecord:
        record = await self.journals[1].get_transaction(transaction_id)
        assert record is not None
        return record


async def _open_journal(kind: str, schema: str, path: Path) -> Journal:
    if kind == "sqlite":
        return await SqliteJournal.open(path)
    return await PostgresJournal.open(POSTGRES_DSN, schema=schema)


@pytest.fixture(params=["postgres", "sqlite"])
async def workers(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Workers]:
    schema, prefix = f"test_once_{secrets.token_hex(6)}", f"test:once:{secrets.token_hex(6)}"
    network = Network()
    router = Router(
        {ROUTE: network}, {ROUTE: ROUTE}, parse_routing({}, None), Breakers(BreakerSettings(), time.monotonic)
    )
    journals = [await _open_journal(request.param, schema, tmp_path / "journal.sqlite3") for _ in range(2)]
    states = [
        RedisStateStore.from_url(REDIS_URL, prefix=prefix, retention_seconds=3600, lease_seconds=5) for _ in range(2)
    ]
    services = [
        TransactionService(state=s, journal=j, router=router, adapter_timeout=TIMEOUT, in_flight_wait_seconds=0.5)
        for s, j in zip(states, journals, strict=True)
    ]
    try:
        yield Workers(network, journals, services, router)
    finally:
        for state in states:
            await state.close()
        for journal in journals:
            await journal.close()
        await drop_redis_keys(REDIS_URL, prefix)
        connection = await asyncpg.connect(POSTGRES_DSN)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()


Outcome = tuple[TransactionRecord, bool] | BaseException


async def _race(workers: Workers, operations: Sequence[Operation]) -> list[Outcome]:
    """The operations all at once, spread over both workers."""
    calls = [workers.services[n % 2].execute(operation) for n, operation in enumerate(operations)]
    return list(await asyncio.gather(*calls, return_exceptions=True))


async def _settle(workers: Workers, operations: Sequence[Operation], outcomes: list[Outcome]) -> list[Outcome]:
    """Retries every retryable failure with its own key, as the README advises, until none is left."""
    for _ in range(20):
        again = [n for n, outcome in enumerate(outcomes) if isinstance(outcome, RETRYABLE)]
        if not again:
            return outcomes
        retried = await _race(workers, [operations[n] for n in again])
        for n, outcome in zip(again, retried, strict=True):
            outcomes[n] = outcome
    raise AssertionError(f"still retryable after 20 rounds: {[o for o in outcomes if isinstance(o, RETRYABLE)]}")


def _check_answers(outcomes: list[Outcome], allowed: tuple[type[SwitchError], ...]) -> int:
    """How many succeeded; every failure must be one of `allowed`."""
    unexpected = [o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, allowed)]
    assert not unexpected, unexpected
    return sum(not isinstance(o, BaseException) for o in outcomes)


def _refund(transaction_id: str, key: str, amount: int) -> Operation:
    return Operation(OperationKind.REFUND, transaction_id, key, Money(amount, "USD"))


async def test_racing_refunds_never_refund_more_at_the_network_than_captured(workers: Workers) -> None:
    transaction_id = await workers.authorized(300)
    await workers.services[0].execute(Operation(OperationKind.CAPTURE, transaction_id, "cap"))
    refunds = [_refund(transaction_id, f"ref-{n}", 7) for n in range(50)]

    outcomes = await _race(workers, refunds)
    _check_answers(outcomes, (*RETRYABLE, FailedPrecondition))
    network_total = workers.network.total(OperationKind.REFUND, transaction_id)
    stored = await workers.stored(transaction_id)
    assert network_total <= 300, f"the network refunded {network_total} of a 300 capture"
    assert network_total == stored.refunded_minor, (network_total, stored.refunded_minor)

    settled = await _settle(workers, refunds, outcomes)
    succeeded = _check_answers(settled, (FailedPrecondition,))
    refunds_applied = workers.network.count(OperationKind.REFUND, transaction_id)
    refunds_received = workers.network.count(OperationKind.REFUND, transaction_id, workers.network.received)
    assert refunds_received == refunds_applied == succeeded == 300 // 7, (refunds_received, refunds_applied, succeeded)
    assert (await workers.stored(transaction_id)).refunded_minor == 7 * succeeded


async def test_racing_captures_capture_once_at_the_network(workers: Workers) -> None:
    transaction_id = await workers.authorized(300)
    captures = [Operation(OperationKind.CAPTURE, transaction_id, f"cap-{n}", Money(300, "USD")) for n in range(50)]

    outcomes = await _settle(workers, captures, await _race(workers, captures))

    assert _check_answers(outcomes, (FailedPrecondition,)) == 1
    received = workers.network.count(OperationKind.CAPTURE, transaction_id, workers.network.received)
    assert received == 1, f"the network was sent {received} captures; the journal holds one"
    assert (await workers.stored(transaction_id)).captured_minor == 300


async def test_a_void_racing_a_capture_reaches_the_network_alone(workers: Workers) -> None:
    for n in range(10):
        transaction_id = await workers.authorized(300)
        race = [
            Operation(OperationKind.VOID, transaction_id, f"void-{n}"),
            Operation(OperationKind.CAPTURE, transaction_id, f"cap-{n}"),
        ]
        outcomes = await _settle(workers, race, await _race(workers, race))
        assert _check_answers(outcomes, (FailedPrecondition,)) == 1
        follow_ups = [r.kind for r in workers.network.received if r.transaction_id == transaction_id]
        assert len(follow_ups) == 1, follow_ups
        stored = await workers.stored(transaction_id)
        expected = TransactionStatus.VOIDED if follow_ups[0] is OperationKind.VOID else TransactionStatus.CAPTURED
        assert stored.status is expected


async def test_a_decline_gives_the_amount_back_and_its_key_replays_the_decline(workers: Workers) -> None:
    def decline_13(request: AdapterRequest) -> AdapterResult:
        return AdapterResult("05", "do not honor") if request.amount.minor_units == 13 else approve(request)

    workers.network.handler = decline_13
    transaction_id = await workers.authorized(300)
    await workers.services[0].execute(Operation(OperationKind.CAPTURE, transaction_id, "cap"))
    declined = _refund(transaction_id, "ref-declined", 13)

    with pytest.raises(FailedPrecondition, match="declined"):
        await workers.services[0].execute(declined)
    stored = await workers.stored(transaction_id)
    assert (stored.status, stored.refunded_minor) == (TransactionStatus.CAPTURED, 0)

    with pytest.raises(FailedPrecondition, match="declined"):
        await workers.services[1].execute(declined)  # the same key, on the other worker
    assert workers.network.count(OperationKind.REFUND, transaction_id, workers.network.received) == 1

    everything, _ = await workers.services[1].execute(_refund(transaction_id, "ref-all", 300))
    assert (everything.status, everything.refunded_minor) == (TransactionStatus.REFUNDED, 300)


async def test_an_unknown_outcome_is_resent_with_its_reference_until_answered(workers: Workers) -> None:
    transaction_id = await workers.authorized(300)
    capture = Operation(OperationKind.CAPTURE, transaction_id, "cap-unknown", Money(250, "USD"))
    workers.network.swallow_next = 1

    with pytest.raises(Unavailable, match="pending"):
        await workers.services[0].execute(capture)
    assert workers.network.count(OperationKind.CAPTURE, transaction_id) == 1  # applied; its answer was lost
    with pytest.raises(Unavailable, match="in progress"):
        await workers.services[1].execute(capture)  # the same key while pending: in flight, nothing sent
    assert (await workers.stored(transaction_id)).captured_minor == 250  # reserved: no other capture fits

    assert await workers.worker(1, ahead=0.0).run_once() == 0  # its lease still runs
    assert await workers.worker(1).run_once() == 1

    sent = [r for r in workers.network.received if r.transaction_id == transaction_id]
    assert len(sent) == 2 and sent[0].reference == sent[1].reference, sent
    assert workers.network.count(OperationKind.CAPTURE, transaction_id) == 1
    record, replayed = await workers.services[0].execute(capture)
    assert replayed and (record.status, record.captured_minor) == (TransactionStatus.CAPTURED, 250)
    assert await workers.worker(0).run_once() == 0  # nothing pending is left
    assert len([r for r in workers.network.received if r.transaction_id == transaction_id]) == 2


async def test_an_operation_decided_by_a_worker_that_died_is_finished_by_another(workers: Workers) -> None:
    transaction_id = await workers.authorized(300)
    await workers.services[0].execute(Operation(OperationKind.CAPTURE, transaction_id, "cap"))
    refund = _refund(transaction_id, "ref-orphan", 100)
    workers.network.stall_next = 1

    dying = asyncio.create_task(workers.services[0].execute(refund))
    await workers.network.stalled.wait()  # decided, and about to send
    dying.cancel()  # the worker dies before anything left it
    with pytest.raises(asyncio.CancelledError):
        await dying
    assert workers.network.received[-1].kind is OperationKind.CAPTURE
    assert (await workers.stored(transaction_id)).refunded_minor == 100  # decided: reserved

    assert await workers.worker(1).run_once() == 1

    assert workers.network.total(OperationKind.REFUND, transaction_id) == 100
    record, replayed = await workers.services[1].execute(refund)
    assert replayed and record.refunded_minor == 100
    assert workers.network.count(OperationKind.REFUND, transaction_id, workers.network.received) == 1


async def test_a_route_that_takes_nothing_gives_the_key_and_the_amount_back(workers: Workers) -> None:
    transaction_id = await workers.authorized(300)
    await workers.services[0].execute(Operation(OperationKind.CAPTURE, transaction_id, "cap"))
    refund = _refund(transaction_id, "ref-down", 50)

    async def unavailable(requests: Sequence[AdapterRequest], time_left: float) -> list[AdapterResult]:
        raise AdapterUnavailable("the route is down: nothing was sent")

    send = workers.network.send
    workers.network.send = unavailable  # type: ignore[method-assign]
    with pytest.raises(Unavailable):
        await workers.services[0].execute(refund)
    assert (await workers.stored(transaction_id)).refunded_minor == 0
    assert await workers.worker(1).run_once() == 0  # nothing pending: nothing to resend

    workers.network.send = send  # type: ignore[method-assign]
    record, replayed = await workers.services[1].execute(refund)
    assert not replayed and record.refunded_minor == 50


async def test_a_pending_operation_is_taken_over_and_resolved_once(workers: Workers) -> None:
    transaction_id = await workers.authorized(300)
    workers.network.swallow_next = 1
    with pytest.raises(Unavailable, match="pending"):
        await workers.services[0].execute(Operation(OperationKind.CAPTURE, transaction_id, "cap"))
    (pending,) = await workers.journals[0].due_operations(time.time() + 60, 10)
    entry = pending.entry
    assert (entry.pending, entry.response_code, pending.attempts) == (True, "", 1)
    assert await workers.journals[1].pending_operations(transaction_id) == [entry]

    lease_until = time.time() + 60
    taken = [await journal.take_operation(entry, pending.attempts, lease_until) for journal in workers.journals]
    assert taken == [True, False]  # the second read the same attempts: someone took it since
    reserved = await workers.stored(transaction_id)
    undone = lifecycle.undo(reserved, entry.kind, entry.amount, time.time())
    assert await workers.journals[0].withdraw_operation(entry, 1, undone) is ApplyStatus.DUPLICATE  # taken over

    approved = replace(entry, pending=False, response_code="00")
    outcomes = [await journal.resolve_operation(approved, None) for journal in workers.journals]
    assert outcomes == [ApplyStatus.APPLIED, ApplyStatus.DUPLICATE]
    assert await workers.journals[1].due_operations(time.time() + 3600, 10) == []
    assert await workers.journals[1].find_entries([(MERCHANT, "cap")]) == {(MERCHANT, "cap"): approved}
    assert (await workers.stored(transaction_id)).version == reserved.version


def test_undo_takes_a_decided_operation_back() -> None:
    authorized = TransactionRecord("tx_1", MERCHANT, "k", TransactionStatus.AUTHORIZED, Money(300, "USD"))
    capture = Operation(OperationKind.CAPTURE, "tx_1", "c", Money(200, "USD"))
    captured = lifecycle.apply(authorized, capture, 1.0)
    undone = lifecycle.undo(captured, OperationKind.CAPTURE, Money(200, "USD"), 2.0)
    assert (undone.status, undone.captured_minor, undone.version) == (TransactionStatus.AUTHORIZED, 0, 3)
    refunds = [lifecycle.operation_amount(captured, _refund("tx_1", k, 50)) for k in ("a", "b")]
    twice = lifecycle.apply(lifecycle.apply(captured, _refund("tx_1", "a", 50), 3.0), _refund("tx_1", "b", 50), 4.0)
    once = lifecycle.undo(twice, OperationKind.REFUND, refunds[0], 5.0)
    assert (once.status, once.refunded_minor) == (TransactionStatus.PARTIALLY_REFUNDED, 50)
    none = lifecycle.undo(once, OperationKind.REFUND, refunds[1], 6.0)
    assert (none.status, none.refunded_minor) == (TransactionStatus.CAPTURED, 0)
    with pytest.raises(FailedPrecondition):
        lifecycle.undo(none, OperationKind.REFUND, refunds[1], 7.0)  # taken back already
    voided = lifecycle.apply(authorized, Operation(OperationKind.VOID, "tx_1", "v"), 1.0)
    assert lifecycle.undo(voided, OperationKind.VOID, Money(300, "USD"), 2.0).status is TransactionStatus.AUTHORIZED


async def test_the_simulated_issuer_applies_a_reference_once() -> None:
    issuer = SimulatedIssuer()
    capture = AdapterRequest(OperationKind.CAPTURE, "tx_1", MERCHANT, Money(100, "USD"), reference="op_1")
    (first,) = await issuer.send([capture], 1.0)
    (again,) = await issuer.send([capture], 1.0)
    (other,) = await issuer.send([replace(capture, reference="op_2")], 1.0)
    assert first.approved and again is first and other.authorization_code != first.authorization_code
