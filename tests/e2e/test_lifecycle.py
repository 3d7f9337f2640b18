"""Capture, void and refund: the allowed transitions, and the refusals."""

from __future__ import annotations

import grpc
import pytest

from switch.v1 import switch_pb2 as pb
from tests.e2e.support import DECLINE_CARD, Switch, approved, card_request, expect, get, money, new_key

PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


async def _authorized(switch: Switch, amount: int = 1000) -> str:
    return (await approved(switch, card_request(amount=amount))).transaction_id


def _capture(transaction_id: str, amount: int | None = None) -> pb.CaptureRequest:
    request = pb.CaptureRequest(transaction_id=transaction_id, idempotency_key=new_key("cap"))
    if amount is not None:
        request.amount.CopyFrom(money(amount))
    return request


def _refund(transaction_id: str, amount: int | None = None) -> pb.RefundRequest:
    request = pb.RefundRequest(transaction_id=transaction_id, idempotency_key=new_key("ref"))
    if amount is not None:
        request.amount.CopyFrom(money(amount))
    return request


def _void(transaction_id: str) -> pb.VoidRequest:
    return pb.VoidRequest(transaction_id=transaction_id, idempotency_key=new_key("void"))


async def test_partial_capture_then_refunds_in_parts(switch: Switch) -> None:
    transaction_id = await _authorized(switch, 1000)

    captured = await switch.stub.Capture(_capture(transaction_id, 700))
    assert captured.status == pb.TRANSACTION_STATUS_CAPTURED
    assert captured.authorized == money(1000)
    assert captured.captured == money(700)
    assert captured.refunded == money(0)
    assert not captured.replayed

    partly = await switch.stub.Refund(_refund(transaction_id, 200))
    assert partly.status == pb.TRANSACTION_STATUS_PARTIALLY_REFUNDED
    assert partly.captured == money(700)
    assert partly.refunded == money(200)

    more = await switch.stub.Refund(_refund(transaction_id, 300))
    assert more.status == pb.TRANSACTION_STATUS_PARTIALLY_REFUNDED
    assert more.refunded == money(500)

    done = await switch.stub.Refund(_refund(transaction_id, 200))
    assert done.status == pb.TRANSACTION_STATUS_REFUNDED
    assert done.refunded == money(700)

    stored = await get(switch, transaction_id)
    assert stored.status == pb.TRANSACTION_STATUS_REFUNDED
    assert stored.authorized == money(1000)
    assert stored.captured == money(700)
    assert stored.refunded == money(700)
    assert stored.updated_at.ToNanoseconds() >= stored.created_at.ToNanoseconds()

    await expect(switch.stub.Refund(_refund(transaction_id, 1)), PRECONDITION)


async def test_capture_without_amount_captures_everything(switch: Switch) -> None:
    transaction_id = await _authorized(switch, 1234)
    captured = await switch.stub.Capture(_capture(transaction_id))
    assert captured.status == pb.TRANSACTION_STATUS_CAPTURED
    assert captured.captured == money(1234)


async def test_refund_without_amount_refunds_the_rest(switch: Switch) -> None:
    transaction_id = await _authorized(switch, 1000)
    await switch.stub.Capture(_capture(transaction_id, 900))
    await switch.stub.Refund(_refund(transaction_id, 250))

    rest = await switch.stub.Refund(_refund(transaction_id))
    assert rest.status == pb.TRANSACTION_STATUS_REFUNDED
    assert rest.refunded == money(900)
    assert (await get(switch, transaction_id)).refunded == money(900)


async def test_void(switch: Switch) -> None:
    transaction_id = await _authorized(switch)
    voided = await switch.stub.Void(_void(transaction_id))
    assert voided.status == pb.TRANSACTION_STATUS_VOIDED
    assert voided.captured == money(0)
    assert (await get(switch, transaction_id)).status == pb.TRANSACTION_STATUS_VOIDED


async def test_capture_after_void_is_refused(switch: Switch) -> None:
    transaction_id = await _authorized(switch)
    await switch.stub.Void(_void(transaction_id))
    await expect(switch.stub.Capture(_capture(transaction_id)), PRECONDITION)
    assert (await get(switch, transaction_id)).status == pb.TRANSACTION_STATUS_VOIDED


async def test_second_capture_is_refused(switch: Switch) -> None:
    transaction_id = await _authorized(switch, 1000)
    await switch.stub.Capture(_capture(transaction_id, 400))
    await expect(switch.stub.Capture(_capture(transaction_id, 400)), PRECONDITION)
    assert (await get(switch, transaction_id)).captured == money(400)


async def test_refund_beyond_what_is_left_is_refused(switch: Switch) -> None:
    transaction_id = await _authorized(switch, 1000)
    await switch.stub.Capture(_capture(transaction_id, 600))
    await expect(switch.stub.Refund(_refund(transaction_id, 601)), PRECONDITION)
    await switch.stub.Refund(_refund(transaction_id, 500))
    await expect(switch.stub.Refund(_refund(transaction_id, 101)), PRECONDITION)

    stored = await get(switch, transaction_id)
    assert stored.refunded == money(500)
    assert stored.status == pb.TRANSACTION_STATUS_PARTIALLY_REFUNDED


async def test_capture_above_authorized_is_refused(switch: Switch) -> None:
    transaction_id = await _authorized(switch, 1000)
    await expect(switch.stub.Capture(_capture(transaction_id, 1001)), PRECONDITION)
    stored = await get(switch, transaction_id)
    assert stored.status == pb.TRANSACTION_STATUS_AUTHORIZED
    assert stored.captured == money(0)


async def test_void_after_capture_is_refused(switch: Switch) -> None:
    transaction_id = await _authorized(switch)
    await switch.stub.Capture(_capture(transaction_id))
    await expect(switch.stub.Void(_void(transaction_id)), PRECONDITION)
    assert (await get(switch, transaction_id)).status == pb.TRANSACTION_STATUS_CAPTURED


async def test_refund_before_capture_is_refused(switch: Switch) -> None:
    transaction_id = await _authorized(switch)
    await expect(switch.stub.Refund(_refund(transaction_id, 100)), PRECONDITION)
    await expect(switch.stub.Refund(_refund(transaction_id)), PRECONDITION)
    assert (await get(switch, transaction_id)).status == pb.TRANSACTION_STATUS_AUTHORIZED


async def test_a_declined_authorization_cannot_be_captured_or_voided(switch: Switch) -> None:
    transaction_id = (await switch.stub.Authorize(card_request(pan=DECLINE_CARD))).transaction_id
    await expect(switch.stub.Capture(_capture(transaction_id)), PRECONDITION)
    await expect(switch.stub.Void(_void(transaction_id)), PRECONDITION)
    assert (await get(switch, transaction_id)).status == pb.TRANSACTION_STATUS_DECLINED


async def test_a_refused_call_frees_its_key(switch: Switch) -> None:
    transaction_id = await _authorized(switch, 1000)
    too_much = _capture(transaction_id, 1001)
    await expect(switch.stub.Capture(too_much), PRECONDITION)
    await expect(switch.stub.Capture(too_much), PRECONDITION)  # not replayed, not stuck in flight

    fine = pb.CaptureRequest(transaction_id=transaction_id, amount=money(1000), idempotency_key=new_key("cap"))
    assert (await switch.stub.Capture(fine)).captured == money(1000)


@pytest.mark.parametrize("call", ["get", "capture", "void", "refund"])
async def test_unknown_transaction_is_not_found(switch: Switch, call: str) -> None:
    missing = "tx_doesnotexist0000"
    if call == "get":
        await expect(
            switch.stub.GetTransaction(pb.GetTransactionRequest(transaction_id=missing)), grpc.StatusCode.NOT_FOUND
        )
    elif call == "capture":
        await expect(switch.stub.Capture(_capture(missing, 100)), grpc.StatusCode.NOT_FOUND)
    elif call == "void":
        await expect(switch.stub.Void(_void(missing)), grpc.StatusCode.NOT_FOUND)
    else:
        await expect(switch.stub.Refund(_refund(missing, 100)), grpc.StatusCode.NOT_FOUND)
