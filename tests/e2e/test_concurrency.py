"""Concurrent follow-ups on one transaction: one wins, and the network hears only of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence

import grpc
import pytest

from switch.domain.models import OperationKind
from switch.v1 import switch_pb2 as pb
from tests.conftest import SwitchFactory
from tests.e2e.support import Switch, approved, card_request, decode, get, money, new_key, serve, spy_on_issuer

# The issuer takes a moment to answer, as a real one does: long enough for racing calls to overlap.
ISSUER_LATENCY_MS = 50


@pytest.fixture
async def slow_switch(store_set: str, switch_factory: SwitchFactory) -> AsyncIterator[Switch]:
    async with serve(switch_factory, store_set, adapters={"simulator_latency_ms": ISSUER_LATENCY_MS}) as switch:
        yield switch


async def _race(calls: Sequence[Awaitable[pb.Transaction]]) -> tuple[int, list[grpc.StatusCode]]:
    """How many calls succeeded, and the codes of those that failed."""
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    failed = [decode(o).code for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert all(isinstance(o, pb.Transaction | grpc.aio.AioRpcError) for o in outcomes), outcomes
    return len(outcomes) - len(failed), failed


async def test_concurrent_captures_capture_once(slow_switch: Switch, monkeypatch: pytest.MonkeyPatch) -> None:
    switch = slow_switch
    transaction_id = (await approved(switch, card_request(amount=1000))).transaction_id
    sent = spy_on_issuer(switch, monkeypatch)

    calls = [
        switch.stub.Capture(
            pb.CaptureRequest(transaction_id=transaction_id, amount=money(600), idempotency_key=new_key())
        )
        for _ in range(5)
    ]
    succeeded, failed = await _race(calls)

    assert succeeded == 1
    assert failed == [grpc.StatusCode.FAILED_PRECONDITION] * 4
    assert (await get(switch, transaction_id)).captured == money(600)
    captures = [r for r in sent if r.kind is OperationKind.CAPTURE]
    assert len(captures) == 1, f"the issuer was told of {len(captures)} captures; the switch recorded one"


async def test_concurrent_refunds_never_refund_more_than_captured(
    slow_switch: Switch, monkeypatch: pytest.MonkeyPatch
) -> None:
    switch = slow_switch
    transaction_id = (await approved(switch, card_request(amount=1000))).transaction_id
    await switch.stub.Capture(pb.CaptureRequest(transaction_id=transaction_id, idempotency_key=new_key()))
    sent = spy_on_issuer(switch, monkeypatch)

    calls = [
        switch.stub.Refund(
            pb.RefundRequest(transaction_id=transaction_id, amount=money(600), idempotency_key=new_key())
        )
        for _ in range(3)
    ]
    succeeded, failed = await _race(calls)

    assert succeeded == 1
    assert failed == [grpc.StatusCode.FAILED_PRECONDITION] * 2
    stored = await get(switch, transaction_id)
    assert stored.refunded == money(600)
    assert stored.status == pb.TRANSACTION_STATUS_PARTIALLY_REFUNDED
    refunds = [r for r in sent if r.kind is OperationKind.REFUND]
    assert sum(r.amount.minor_units for r in refunds) == 600, (
        f"the issuer was told to refund {[r.amount.minor_units for r in refunds]} of a 1000 capture; "
        "the switch recorded 600"
    )


async def test_concurrent_void_and_capture(slow_switch: Switch, monkeypatch: pytest.MonkeyPatch) -> None:
    switch = slow_switch
    transaction_id = (await approved(switch, card_request(amount=1000))).transaction_id
    sent = spy_on_issuer(switch, monkeypatch)

    succeeded, failed = await _race(
        [
            switch.stub.Void(pb.VoidRequest(transaction_id=transaction_id, idempotency_key=new_key())),
            switch.stub.Capture(pb.CaptureRequest(transaction_id=transaction_id, idempotency_key=new_key())),
        ]
    )

    assert succeeded == 1
    assert failed == [grpc.StatusCode.FAILED_PRECONDITION]
    stored = await get(switch, transaction_id)
    assert stored.status in (pb.TRANSACTION_STATUS_VOIDED, pb.TRANSACTION_STATUS_CAPTURED)
    follow_ups = [r.kind for r in sent if r.kind is not OperationKind.AUTHORIZE]
    assert len(follow_ups) == 1, (
        f"the issuer was told {follow_ups}; the switch recorded {pb.TransactionStatus.Name(stored.status)}"
    )
