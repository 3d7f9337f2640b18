"""Money is int64 minor units in an ISO 4217 currency: no floats, no wrapping."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switch.domain import currency
from switch.domain.models import INT64_MAX, INT64_MIN, Money, MoneyOverflow


def test_exponents_follow_iso_4217() -> None:
    assert currency.exponent("JPY") == 0
    assert currency.exponent("USD") == 2
    assert currency.exponent("KWD") == 3
    assert currency.exponent("CLF") == 4
    assert not currency.is_known("XXX")
    assert not currency.is_known("usd")


@pytest.mark.parametrize("bad", [1.5, Decimal("1"), True, "10"])
def test_only_integers_are_money(bad: object) -> None:
    with pytest.raises(TypeError):
        Money(bad, "USD")  # type: ignore[arg-type]


def test_unknown_currency_is_refused() -> None:
    with pytest.raises(ValueError, match="XXX"):
        Money(1, "XXX")


def test_overflow_raises_instead_of_wrapping() -> None:
    with pytest.raises(MoneyOverflow):
        Money(INT64_MAX, "USD") + Money(1, "USD")
    with pytest.raises(MoneyOverflow):
        Money(INT64_MIN, "USD") - Money(1, "USD")
    with pytest.raises(MoneyOverflow):
        Money(INT64_MAX + 1, "USD")


def test_currencies_never_mix() -> None:
    with pytest.raises(ValueError, match="EUR"):
        Money(1, "USD") + Money(1, "EUR")


@given(st.integers(INT64_MIN, INT64_MAX), st.integers(INT64_MIN, INT64_MAX))
def test_addition_is_exact_or_raises(a: int, b: int) -> None:
    exact = a + b
    if INT64_MIN <= exact <= INT64_MAX:
        assert (Money(a, "EUR") + Money(b, "EUR")).minor_units == exact
    else:
        with pytest.raises(MoneyOverflow):
            Money(a, "EUR") + Money(b, "EUR")
