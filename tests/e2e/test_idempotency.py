"""Idempotency keys: replays are exact, conflicts are refused, keys are per merchant."""

from __future__ import annotations

import asyncio

import grpc

from switch.v1 import switch_pb2 as pb
from tests.e2e.support import DECLINE_CARD, Switch, approved, card_request, expect, get, money, new_key


async def test_same_key_same_request_is_replayed_exactly(switch: Switch) -> None:
    request = card_request(amount=4321)
    first = await switch.stub.Authorize(request)
    again = await switch.stub.Authorize(request)

    assert not first.replayed
    assert again.replayed
    unreplayed = pb.AuthorizeResponse()
    unreplayed.CopyFrom(again)
    unreplayed.replayed = False
    assert unreplayed == first


async def test_a_decline_is_replayed_too(switch: Switch) -> None:
    request = card_request(pan=DECLINE_CARD)
    first = await switch.stub.Authorize(request)
    again = await switch.stub.Authorize(request)
    assert first.response_code == again.response_code == "05"
    assert again.transaction_id == first.transaction_id
    assert again.replayed


async def test_same_key_different_request_is_refused(switch: Switch) -> None:
    key = new_key()
    first = await approved(switch, card_request(key, amount=1000))
    seen = await expect(switch.stub.Authorize(card_request(key, amount=1001)), grpc.StatusCode.ALREADY_EXISTS)
    assert seen.details

    # The first answer stands, untouched.
    again = await switch.stub.Authorize(card_request(key, amount=1000))
    assert again.replayed
    assert again.transaction_id == first.transaction_id
    assert (await get(switch, first.transaction_id)).authorized.minor_units == 1000


async def test_same_key_with_another_expiry_is_refused(switch: Switch) -> None:
    """The expiry date changes the issuer's answer ("54" or "00"): it is part of the request."""
    key = new_key()
    expired = await switch.stub.Authorize(card_request(key, month=1, year=2020))
    assert expired.response_code == "54"

    corrected = card_request(key, month=12, year=2099)
    await expect(switch.stub.Authorize(corrected), grpc.StatusCode.ALREADY_EXISTS)


async def test_keys_are_scoped_per_merchant(switch: Switch) -> None:
    key = new_key()
    mine = await approved(switch, card_request(key, merchant="m_one"))
    theirs = await approved(switch, card_request(key, merchant="m_two"))

    assert not theirs.replayed
    assert theirs.transaction_id != mine.transaction_id
    assert (await get(switch, mine.transaction_id)).merchant_id == "m_one"
    assert (await get(switch, theirs.transaction_id)).merchant_id == "m_two"


async def test_concurrent_identical_calls_make_one_transaction(switch: Switch) -> None:
    request = card_request(amount=777)
    answers = await asyncio.gather(*(switch.stub.Authorize(request) for _ in range(50)))

    assert len(answers) == 50
    assert {a.transaction_id for a in answers} == {answers[0].transaction_id}
    assert sum(not a.replayed for a in answers) == 1
    assert all(a.response_code == "00" for a in answers)
    assert len({a.authorization_code for a in answers}) == 1


async def test_capture_refund_void_replays_move_money_once(switch: Switch) -> None:
    captured_tx = (await approved(switch, card_request(amount=1000))).transaction_id
    capture = pb.CaptureRequest(transaction_id=captured_tx, amount=money(800), idempotency_key=new_key("cap"))
    first = await switch.stub.Capture(capture)
    again = await switch.stub.Capture(capture)
    assert not first.replayed
    assert again.replayed
    assert again.captured.minor_units == 800
    assert again.status == pb.TRANSACTION_STATUS_CAPTURED

    refund = pb.RefundRequest(transaction_id=captured_tx, amount=money(300), idempotency_key=new_key("ref"))
    first_refund = await switch.stub.Refund(refund)
    again_refund = await switch.stub.Refund(refund)
    assert not first_refund.replayed
    assert again_refund.replayed
    assert again_refund.refunded.minor_units == 300
    assert again_refund.status == first_refund.status == pb.TRANSACTION_STATUS_PARTIALLY_REFUNDED

    stored = await get(switch, captured_tx)
    assert stored.captured.minor_units == 800
    assert stored.refunded.minor_units == 300
    assert stored.status == pb.TRANSACTION_STATUS_PARTIALLY_REFUNDED

    voided_tx = (await approved(switch, card_request(amount=500))).transaction_id
    void = pb.VoidRequest(transaction_id=voided_tx, idempotency_key=new_key("void"))
    first_void = await switch.stub.Void(void)
    again_void = await switch.stub.Void(void)
    assert not first_void.replayed
    assert again_void.replayed
    assert again_void.status == first_void.status == pb.TRANSACTION_STATUS_VOIDED
    assert (await get(switch, voided_tx)).status == pb.TRANSACTION_STATUS_VOIDED


async def test_follow_up_replay_is_exact(switch: Switch) -> None:
    transaction_id = (await approved(switch, card_request(amount=1000))).transaction_id
    capture = pb.CaptureRequest(transaction_id=transaction_id, idempotency_key=new_key("cap"))
    first = await switch.stub.Capture(capture)
    await switch.stub.Refund(pb.RefundRequest(transaction_id=transaction_id, idempotency_key=new_key("ref")))
    again = await switch.stub.Capture(capture)

    assert again.replayed
    unreplayed = pb.Transaction()
    unreplayed.CopyFrom(again)
    unreplayed.replayed = False
    assert unreplayed == first  # the answer given then, not the transaction's state now


async def test_capture_key_reused_with_another_amount_is_refused(switch: Switch) -> None:
    transaction_id = (await approved(switch, card_request(amount=1000))).transaction_id
    key = new_key("cap")
    await switch.stub.Capture(pb.CaptureRequest(transaction_id=transaction_id, amount=money(400), idempotency_key=key))
    await expect(
        switch.stub.Capture(pb.CaptureRequest(transaction_id=transaction_id, amount=money(500), idempotency_key=key)),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert (await get(switch, transaction_id)).captured.minor_units == 400


async def test_concurrent_identical_captures_capture_once(switch: Switch) -> None:
    transaction_id = (await approved(switch, card_request(amount=1000))).transaction_id
    capture = pb.CaptureRequest(transaction_id=transaction_id, amount=money(600), idempotency_key=new_key("cap"))
    answers = await asyncio.gather(*(switch.stub.Capture(capture) for _ in range(10)))

    assert sum(not a.replayed for a in answers) == 1
    assert all(a.captured.minor_units == 600 for a in answers)
    assert (await get(switch, transaction_id)).captured.minor_units == 600
