"""Bad requests: INVALID_ARGUMENT with google.rpc.BadRequest naming each field, no PAN echoed."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from switch.v1 import switch_pb2 as pb
from tests.e2e.support import BAD_LUHN, VISA, Switch, approved, card_request, expect, money, new_key

INVALID = grpc.StatusCode.INVALID_ARGUMENT
Build = Callable[[], pb.AuthorizeRequest]


def _amount(minor_units: int) -> pb.AuthorizeRequest:
    return card_request(amount=minor_units)


def _currency() -> pb.AuthorizeRequest:
    return card_request(currency="QQQ")


def _no_amount() -> pb.AuthorizeRequest:
    request = card_request()
    request.ClearField("amount")
    return request


def _bad_luhn() -> pb.AuthorizeRequest:
    return card_request(pan=BAD_LUHN)


def _non_digit_pan() -> pb.AuthorizeRequest:
    return card_request(pan="4111-1111-1111-1111")


def _no_key() -> pb.AuthorizeRequest:
    return card_request(key="")


def _no_source() -> pb.AuthorizeRequest:
    request = card_request()
    request.ClearField("card")
    return request


def _long_merchant() -> pb.AuthorizeRequest:
    return card_request(merchant="m" * 65)


def _long_key() -> pb.AuthorizeRequest:
    return card_request(key="k" * 129)


CASES = [
    pytest.param(lambda: _amount(0), "amount.minor_units", id="zero-amount"),
    pytest.param(lambda: _amount(-500), "amount.minor_units", id="negative-amount"),
    pytest.param(_currency, "amount.currency", id="unknown-currency"),
    pytest.param(_no_amount, "amount", id="missing-amount"),
    pytest.param(_bad_luhn, "source.card.pan", id="luhn"),
    pytest.param(_non_digit_pan, "source.card.pan", id="non-digit-pan"),
    pytest.param(_no_key, "idempotency_key", id="missing-key"),
    pytest.param(_no_source, "source", id="missing-source"),
    pytest.param(_long_merchant, "merchant_id", id="merchant-65"),
    pytest.param(_long_key, "idempotency_key", id="key-129"),
]


def _pans(request: pb.AuthorizeRequest) -> list[bytes]:
    pan = request.card.pan if request.WhichOneof("source") == "card" else VISA
    return [pan.encode(), pan.replace("-", "").encode()]


@pytest.mark.parametrize(("build", "field"), CASES)
async def test_bad_field_is_named(switch: Switch, build: Build, field: str) -> None:
    request = build()
    seen = await expect(switch.stub.Authorize(request), INVALID)

    assert seen.status is not None, "no google.rpc.Status in the trailers"
    assert field in seen.violations, seen.violations
    assert seen.violations[field]
    assert field in seen.details
    for pan in _pans(request):
        assert pan not in seen.everything()
        for name, description in seen.violations.items():
            assert pan.decode() not in name + description


@pytest.mark.parametrize(("build", "field"), [c for c in CASES if c.id not in ("missing-key", "key-129")])
async def test_rejected_request_changes_nothing(switch: Switch, build: Build, field: str) -> None:
    bad = build()
    await expect(switch.stub.Authorize(bad), INVALID)

    good = card_request(key=bad.idempotency_key, merchant=bad.merchant_id if len(bad.merchant_id) <= 64 else "m_ok")
    response = await approved(switch, good)
    assert not response.replayed
    assert response.idempotency_key == bad.idempotency_key


async def test_every_mistake_is_listed_at_once(switch: Switch) -> None:
    request = card_request(key="", pan=BAD_LUHN, amount=0, currency="QQQ", merchant="m" * 65, month=13)
    seen = await expect(switch.stub.Authorize(request), INVALID)
    assert {
        "idempotency_key",
        "merchant_id",
        "amount.minor_units",
        "amount.currency",
        "source.card.pan",
        "source.card.expiry_month",
    } <= set(seen.violations)
    assert BAD_LUHN.encode() not in seen.everything()


async def test_valid_pan_is_not_echoed_when_another_field_is_bad(switch: Switch) -> None:
    request = card_request(pan=VISA, currency="QQQ")
    request.card.holder_name = "bad\x00name"
    seen = await expect(switch.stub.Authorize(request), INVALID)
    assert {"amount.currency", "source.card.holder_name"} <= set(seen.violations)
    assert VISA.encode() not in seen.everything()


async def test_follow_up_calls_are_validated(switch: Switch) -> None:
    authorization = await approved(switch, card_request(amount=1000, currency="USD"))
    transaction_id = authorization.transaction_id

    seen = await expect(
        switch.stub.Capture(
            pb.CaptureRequest(transaction_id=transaction_id, amount=money(0), idempotency_key=new_key())
        ),
        INVALID,
    )
    assert "amount.minor_units" in seen.violations

    seen = await expect(
        switch.stub.Capture(
            pb.CaptureRequest(transaction_id=transaction_id, amount=money(500, "EUR"), idempotency_key=new_key())
        ),
        INVALID,
    )
    assert "amount.currency" in seen.violations

    seen = await expect(switch.stub.Void(pb.VoidRequest(transaction_id=transaction_id)), INVALID)
    assert "idempotency_key" in seen.violations

    seen = await expect(switch.stub.GetTransaction(pb.GetTransactionRequest()), INVALID)
    assert "transaction_id" in seen.violations

    transaction = await switch.stub.GetTransaction(pb.GetTransactionRequest(transaction_id=transaction_id))
    assert transaction.status == pb.TRANSACTION_STATUS_AUTHORIZED
    assert transaction.captured.minor_units == 0


async def test_token_errors_name_one_field_path(switch: Switch) -> None:
    """An empty token and an unknown token are mistakes in the same field: one path for both."""
    empty = card_request()
    empty.token = ""
    unknown = card_request()
    unknown.token = "tok_unknown_0001"

    empty_fields = set((await expect(switch.stub.Authorize(empty), INVALID)).violations)
    unknown_fields = set((await expect(switch.stub.Authorize(unknown), INVALID)).violations)

    assert empty_fields == {"source.token"}
    assert unknown_fields == empty_fields
