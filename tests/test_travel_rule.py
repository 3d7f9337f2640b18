"""FATF R.16, the travel rule: a cross-border transfer of 1,000 USD or EUR or more names its
originator and its beneficiary; without them it is refused, the missing fields named."""

from __future__ import annotations

import pytest

from switch.domain.models import Account, Authorization, Card, Money
from switch.risk.travel_rule import TravelRule

BRL_PER_USD = 5  # the test's rate: 1 BRL buys 0.20 USD


def brl_in_usd(amount: Money) -> int | None:
    return amount.minor_units // BRL_PER_USD if amount.currency == "BRL" else None


RULE = TravelRule(brl_in_usd)


def transfer(
    minor: int, currency: str = "USD", *, origin: str = "BR", to: str = "PT", names: tuple[str, str] = ("", "")
) -> Authorization:
    source = Account("instant", "+5511999990000", origin, names[0])
    return Authorization(
        "k", "m-1", Money(minor, currency), source, Account("instant", "PT50000201231234567890154", to, names[1])
    )


def fields(authorization: Authorization) -> list[str]:
    return [violation.field for violation in RULE.violations(authorization)]


@pytest.mark.parametrize(("minor", "currency"), [(100_000, "USD"), (100_000, "EUR"), (500_000, "BRL"), (10**12, "JPY")])
def test_at_or_above_the_threshold_both_names_are_required(minor: int, currency: str) -> None:
    assert fields(transfer(minor, currency)) == ["source.account.holder_name", "destination.holder_name"]
    assert fields(transfer(minor, currency, names=("Ana Souza", ""))) == ["destination.holder_name"]
    assert fields(transfer(minor, currency, names=("Ana Souza", "  "))) == ["destination.holder_name"]
    assert fields(transfer(minor, currency, names=("Ana Souza", "Rui Costa"))) == []


@pytest.mark.parametrize(("minor", "currency"), [(99_999, "USD"), (99_999, "EUR"), (499_995, "BRL")])
def test_below_the_threshold_no_name_is_required(minor: int, currency: str) -> None:
    assert fields(transfer(minor, currency)) == []


def test_only_cross_border_transfers_between_accounts_are_covered() -> None:
    assert fields(transfer(10**9, origin="BR", to="br")) == []  # the same country
    assert fields(transfer(10**9, origin="", to="PT")) == []  # a country unknown
    card = Authorization("k", "m-1", Money(10**9, "USD"), Card("4111111111111111", 12, 2099))
    assert fields(card) == []  # a payment, not a transfer


def test_the_message_says_why_and_never_quotes_a_value() -> None:
    (violation, _) = RULE.violations(transfer(100_000))
    assert violation.description == (
        "is required: a cross-border transfer of 1,000 USD or EUR or more carries its originator's name"
    )
