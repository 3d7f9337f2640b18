"""Fees end to end: authorizations carry the schedule's fee, QuoteFee agrees, the journal keeps the shares."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from switch.cli.demo import fees as demo_fees
from switch.v1 import switch_pb2 as pb
from tests.conftest import SwitchFactory
from tests.e2e.support import (
    DECLINE_CARD,
    MERCHANT,
    NO_FUNDS_CARD,
    VISA,
    Switch,
    account_request,
    approved,
    card_request,
    expect,
    money,
    serve,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
# The demo's schedule and rates (one copy: the fees the demo prints are the ones pinned here),
# plus rates to currencies with no minor unit and with three decimals.
SCHEDULES = demo_fees.FEE_SCHEDULE
FX = {**demo_fees.FX, "USD/JPY": "151.37", "USD/KWD": "0.3075"}
AMOUNT = 10_000
# 2.9 % of 10000 + 30 = 320: platform 50 % = 160; partner 50 % = 160, of which agent 40 % = 64, partner keeps 96.
FEE = 320
SHARES = [("platform", 160), ("partner", 96), ("agent", 64)]


@pytest.fixture
async def priced(store_set: str, switch_factory: SwitchFactory) -> AsyncIterator[Switch]:
    async with serve(switch_factory, store_set, fee_schedule=SCHEDULES, fx=FX) as running:
        yield running


def quote_request(amount: int = AMOUNT, currency: str = "USD", rail: str = "card", **fields: str) -> pb.QuoteFeeRequest:
    return pb.QuoteFeeRequest(merchant_id=MERCHANT, amount=money(amount, currency), rail=rail, **fields)


def shares_of(quote: pb.FeeQuote) -> list[tuple[str, int]]:
    assert all(share.amount.currency == quote.fee.currency for share in quote.shares)
    return [(share.party, share.amount.minor_units) for share in quote.shares]


async def test_approved_card_carries_the_fee(priced: Switch) -> None:
    response = await approved(priced, card_request(pan=VISA, amount=AMOUNT, currency="USD"))
    assert response.fee == money(FEE, "USD")
    record = await priced.running.journal.get_transaction(response.transaction_id)
    assert record is not None
    assert record.fee_minor == FEE


@pytest.mark.parametrize("pan", [DECLINE_CARD, NO_FUNDS_CARD], ids=["05", "51"])
async def test_declined_card_carries_no_fee(priced: Switch, pan: str) -> None:
    response = await priced.stub.Authorize(card_request(pan=pan, amount=AMOUNT))
    assert response.decision == pb.DECISION_DECLINED
    assert response.fee == money(0, "USD")
    record = await priced.running.journal.get_transaction(response.transaction_id)
    assert record is not None
    assert record.fee_minor == 0


async def test_instant_account_payment_fee(priced: Switch) -> None:
    response = await approved(priced, account_request(rail="instant", amount=AMOUNT, currency="BRL"))
    assert response.route == "instant"
    assert response.fee == money(50, "BRL")  # 0.5 %, no fixed part
    quote = await priced.stub.QuoteFee(quote_request(currency="BRL", rail="instant"))
    assert quote.fee == money(50, "BRL")
    assert quote.schedule == "instant"
    assert not quote.shares


async def test_no_schedule_means_no_fee(switch: Switch) -> None:
    response = await approved(switch, card_request(amount=AMOUNT))
    assert response.fee == money(0, "USD")


async def test_quote_matches_the_authorization(priced: Switch) -> None:
    quote = await priced.stub.QuoteFee(quote_request())
    response = await approved(priced, card_request(amount=AMOUNT))

    assert quote.fee == response.fee == money(FEE, "USD")
    assert quote.schedule == "cards"
    assert shares_of(quote) == SHARES
    assert sum(units for _, units in shares_of(quote)) == quote.fee.minor_units
    assert not quote.HasField("settlement_amount")


@pytest.mark.parametrize("amount", [1, 7, 99, 1_001, 33_333, 123_457])
async def test_shares_always_sum_to_the_fee(priced: Switch, amount: int) -> None:
    quote = await priced.stub.QuoteFee(quote_request(amount=amount))
    assert quote.fee.minor_units == round(amount * 29 / 1000) + 30  # no exact .5 ties among these amounts
    parts = dict(shares_of(quote))
    assert sum(parts.values()) == quote.fee.minor_units
    assert [party for party, _ in shares_of(quote)] == ["platform", "partner", "agent"]
    assert abs(parts["platform"] - (parts["partner"] + parts["agent"])) <= 1


async def test_no_matching_schedule(priced: Switch) -> None:
    quote = await priced.stub.QuoteFee(quote_request(rail="other"))
    assert quote.fee == money(0, "USD")
    assert quote.schedule == ""
    assert not quote.shares


async def test_settlement_in_another_currency(priced: Switch) -> None:
    quote = await priced.stub.QuoteFee(quote_request(settlement_currency="EUR"))
    assert quote.settlement_amount == money(9_231, "EUR")  # 10000 x 0.9231, exact
    assert quote.fee == money(FEE, "USD")  # the fee stays in the amount's currency
    assert shares_of(quote) == SHARES

    same = await priced.stub.QuoteFee(quote_request(settlement_currency="USD"))
    assert same.settlement_amount == money(AMOUNT, "USD")


@pytest.mark.parametrize(
    ("amount", "target", "expected"),
    [
        (12_345, "EUR", 11_396),  # 11395.6695 -> 11396
        (10_000, "JPY", 15_137),  # 100.00 USD x 151.37 = 15137 yen (no minor unit)
        (10_000, "KWD", 30_750),  # 100.00 USD x 0.3075 = 30.750 KWD (three decimals)
        (1, "JPY", 2),  # 0.01 USD x 151.37 = 1.5137 yen -> 2
    ],
)
async def test_settlement_follows_the_target_minor_unit(
    priced: Switch, amount: int, target: str, expected: int
) -> None:
    quote = await priced.stub.QuoteFee(quote_request(amount=amount, settlement_currency=target))
    assert quote.settlement_amount == money(expected, target)


async def test_settlement_without_a_rate(priced: Switch) -> None:
    seen = await expect(priced.stub.QuoteFee(quote_request(settlement_currency="GBP")), INVALID)
    assert "settlement_currency" in seen.violations, seen.violations
    no_inverse = await expect(priced.stub.QuoteFee(quote_request(currency="EUR", settlement_currency="USD")), INVALID)
    assert "settlement_currency" in no_inverse.violations, no_inverse.violations


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (quote_request(currency="QQQ"), "amount.currency"),
        (quote_request(amount=-5), "amount.minor_units"),
        (quote_request(amount=0), "amount.minor_units"),
        (quote_request(card_country="usa"), "card_country"),
        (quote_request(merchant_country="usa"), "merchant_country"),
        (quote_request(rail="Card!"), "rail"),
        (quote_request(settlement_currency="ZZZ"), "settlement_currency"),
        (pb.QuoteFeeRequest(merchant_id=MERCHANT, rail="card"), "amount"),
        (pb.QuoteFeeRequest(amount=money(AMOUNT), rail="card"), "merchant_id"),
    ],
    ids=[
        "currency",
        "negative",
        "zero",
        "card-country",
        "merchant-country",
        "rail",
        "settlement",
        "no-amount",
        "no-merchant",
    ],
)
async def test_bad_quote_requests(priced: Switch, request_: pb.QuoteFeeRequest, field: str) -> None:
    seen = await expect(priced.stub.QuoteFee(request_), INVALID)
    assert field in seen.violations, seen.violations


async def test_journal_keeps_the_shares(priced: Switch) -> None:
    quote = await priced.stub.QuoteFee(quote_request())
    good = await approved(priced, card_request(amount=AMOUNT))
    bad = await priced.stub.Authorize(card_request(pan=DECLINE_CARD, amount=AMOUNT))
    assert bad.decision == pb.DECISION_DECLINED

    scopes = [(MERCHANT, good.idempotency_key), (MERCHANT, bad.idempotency_key)]
    entries = await priced.running.journal.find_entries(scopes)
    assert entries[scopes[0]].transaction_id == good.transaction_id
    assert list(entries[scopes[0]].fee_shares) == shares_of(quote) == SHARES
    assert entries[scopes[1]].transaction_id == bad.transaction_id
    assert entries[scopes[1]].fee_shares == ()


async def test_the_largest_amount_is_priced_exactly(priced: Switch) -> None:
    largest = 2**63 - 1
    quote = await priced.stub.QuoteFee(quote_request(amount=largest))
    exact, remainder = divmod(largest * 29, 1000)  # 2.9 % = 29 / 1000
    exact += remainder > 500 or (remainder == 500 and exact % 2 == 1)  # half-even
    assert quote.fee == money(exact + 30, "USD")
    assert sum(units for _, units in shares_of(quote)) == quote.fee.minor_units


async def test_a_replay_returns_the_same_fee(priced: Switch) -> None:
    request = card_request(amount=AMOUNT)
    first = await approved(priced, request)
    again = await approved(priced, request)
    assert again.replayed
    assert again.transaction_id == first.transaction_id
    assert again.fee == first.fee == money(FEE, "USD")

    declined = card_request(pan=DECLINE_CARD, amount=AMOUNT)
    assert (await priced.stub.Authorize(declined)).fee == money(0, "USD")
    replayed = await priced.stub.Authorize(declined)
    assert replayed.replayed
    assert replayed.fee == money(0, "USD")


async def test_a_replay_from_the_journal_returns_the_same_fee(switch_factory: SwitchFactory) -> None:
    """Embedded only: its journal outlives a restart while its memory state store does not."""
    request = card_request(amount=AMOUNT)
    async with serve(switch_factory, "embedded", fee_schedule=SCHEDULES) as first_switch:
        first = await approved(first_switch, request)
    async with serve(switch_factory, "embedded", fee_schedule=SCHEDULES) as second_switch:
        again = await approved(second_switch, request)
        entries = await second_switch.running.journal.find_entries([(MERCHANT, request.idempotency_key)])
    assert again.replayed
    assert again.transaction_id == first.transaction_id
    assert again.fee == first.fee == money(FEE, "USD")
    assert list(entries[(MERCHANT, request.idempotency_key)].fee_shares) == SHARES
