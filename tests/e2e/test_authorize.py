"""Authorize: approvals and declines are answers (never gRPC errors), and GetTransaction agrees."""

from __future__ import annotations

import re

import pytest

from switch.v1 import switch_pb2 as pb
from tests.e2e.support import (
    DECLINE_CARD,
    MASTERCARD,
    MERCHANT,
    NO_FUNDS_CARD,
    VISA,
    Switch,
    account_request,
    card_request,
    get,
    settles,
)


async def test_card_approval(switch: Switch) -> None:
    request = card_request(pan=VISA, amount=1250, currency="USD", merchant="m_shop_1")
    response = await switch.stub.Authorize(request)

    assert response.decision == pb.DECISION_APPROVED
    assert response.response_code == "00"
    assert response.route == "card"
    assert re.fullmatch(r"[A-Z0-9]{6}", response.authorization_code)
    assert response.transaction_id.startswith("tx_")
    assert response.idempotency_key == request.idempotency_key
    assert not response.replayed
    assert not response.HasField("error")

    transaction = await get(switch, response.transaction_id)
    assert transaction.transaction_id == response.transaction_id
    assert transaction.status == pb.TRANSACTION_STATUS_AUTHORIZED
    assert transaction.authorized == pb.Money(minor_units=1250, currency="USD")
    assert transaction.captured.minor_units == 0
    assert transaction.refunded.minor_units == 0
    assert transaction.masked_instrument == "411111******1111"
    assert transaction.merchant_id == "m_shop_1"
    assert transaction.route == "card"
    assert transaction.response_code == "00"
    assert transaction.authorization_code == response.authorization_code
    assert transaction.created_at.ToNanoseconds() > 0
    assert not transaction.replayed


async def test_each_approval_is_its_own_transaction(switch: Switch) -> None:
    first = await switch.stub.Authorize(card_request(pan=VISA))
    second = await switch.stub.Authorize(card_request(pan=MASTERCARD, currency="EUR"))
    assert first.transaction_id != second.transaction_id
    assert (await get(switch, second.transaction_id)).masked_instrument == "555555******4444"


@pytest.mark.parametrize(
    ("pan", "month", "year", "code"),
    [
        (DECLINE_CARD, 12, 2099, "05"),
        (NO_FUNDS_CARD, 12, 2099, "51"),
        (VISA, 1, 2020, "54"),
    ],
    ids=["do-not-honor", "insufficient-funds", "expired"],
)
async def test_issuer_declines_are_answers(switch: Switch, pan: str, month: int, year: int, code: str) -> None:
    response = await switch.stub.Authorize(card_request(pan=pan, month=month, year=year))

    assert response.decision == pb.DECISION_DECLINED
    assert response.response_code == code
    assert response.message
    assert response.authorization_code == ""
    assert response.transaction_id.startswith("tx_")
    assert not response.HasField("error")

    transaction = await get(switch, response.transaction_id)
    assert transaction.status == pb.TRANSACTION_STATUS_DECLINED
    assert transaction.response_code == code
    assert transaction.merchant_id == MERCHANT
    assert transaction.masked_instrument == pan[:6] + "******" + pan[-4:]


async def test_instant_rail_account_is_approved(switch: Switch) -> None:
    response = await switch.stub.Authorize(account_request(rail="instant", account_id="acct-778899", amount=5000))

    assert response.decision == pb.DECISION_APPROVED
    assert response.response_code == "00"
    assert response.route == "instant"
    assert response.transaction_id.startswith("tx_")

    transaction = await get(switch, response.transaction_id)
    settled = settles(switch, "instant")
    assert transaction.status == (pb.TRANSACTION_STATUS_CAPTURED if settled else pb.TRANSACTION_STATUS_AUTHORIZED)
    assert transaction.route == "instant"
    assert transaction.authorized == pb.Money(minor_units=5000, currency="BRL")
    assert transaction.captured == pb.Money(minor_units=5000 if settled else 0, currency="BRL")
    assert "778899" not in transaction.masked_instrument


async def test_insufficient_account_is_declined(switch: Switch) -> None:
    response = await switch.stub.Authorize(account_request(account_id="acct-42-insufficient"))

    assert response.decision == pb.DECISION_DECLINED
    assert response.response_code == "51"
    assert (await get(switch, response.transaction_id)).status == pb.TRANSACTION_STATUS_DECLINED


async def test_unknown_rail_is_declined_no_route(switch: Switch) -> None:
    response = await switch.stub.Authorize(account_request(rail="nope"))

    assert response.decision == pb.DECISION_DECLINED
    assert response.response_code == "92"
    assert response.route == ""
    transaction = await get(switch, response.transaction_id)
    assert transaction.status == pb.TRANSACTION_STATUS_DECLINED
    assert transaction.response_code == "92"
