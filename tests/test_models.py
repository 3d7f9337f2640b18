"""The unchecked constructors build exactly what the ordinary ones build."""

from __future__ import annotations

from dataclasses import fields

import pytest

from switch.domain.models import (
    Account,
    Authorization,
    Card,
    Instrument,
    InstrumentKind,
    Money,
    slot_setters,
    unchecked_authorization,
    unchecked_card,
    unchecked_instrument,
    unchecked_money,
)


def same(made: object, expected: object) -> None:
    assert type(made) is type(expected)
    assert made == expected and hash(made) == hash(expected) and repr(made) == repr(expected)
    for field in fields(expected):  # type: ignore[arg-type]
        assert getattr(made, field.name) == getattr(expected, field.name)


def test_unchecked_values_equal_checked_ones() -> None:
    money = unchecked_money(1999, "USD")
    same(money, Money(1999, "USD"))
    same(unchecked_card("4111111111111111", 12, 2030), Card("4111111111111111", 12, 2030))
    card = unchecked_card("4111111111111111", 12, 2030, "A B")
    same(card, Card("4111111111111111", 12, 2030, "A B"))
    same(unchecked_instrument(InstrumentKind.CARD, "fp", "m"), Instrument(InstrumentKind.CARD, "fp", "m"))
    same(
        unchecked_instrument(InstrumentKind.ACCOUNT, "fp", "m", "t"), Instrument(InstrumentKind.ACCOUNT, "fp", "m", "t")
    )
    same(unchecked_authorization("k", "m", money, card), Authorization("k", "m", money, card))
    destination = Account("instant", "a-1")
    same(
        unchecked_authorization("k", "m", money, card, destination=destination, metadata=(("a", "1"),), deadline=2.5),
        Authorization("k", "m", money, card, destination, (("a", "1"),), 2.5),
    )


def test_unchecked_values_stay_frozen() -> None:
    money = unchecked_money(1, "USD")
    with pytest.raises(AttributeError):
        money.minor_units = 2  # type: ignore[misc]


def test_slot_setters_must_name_every_field_in_order() -> None:
    with pytest.raises(TypeError):
        slot_setters(Money, "currency", "minor_units")
    with pytest.raises(TypeError):
        slot_setters(Card, "pan", "expiry_month", "expiry_year")
