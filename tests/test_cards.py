"""The compiled Luhn check against the plain-Python reference, and PAN masking."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switch import cards, native
from switch.models import Card, mask_pan

VALID = ["4111111111111111", "5555555555554444", "378282246310005", "4000000000000002", "6011111111111117"]
FULLWIDTH_DIGITS = "\uff14\uff11\uff11\uff11"  # str.isdigit() says yes; a card number must not
INVALID = ["4111111111111112", "", "41111111111111a1", FULLWIDTH_DIGITS, "0000000000000001"]


@pytest.mark.parametrize("check", [cards.luhn_valid, cards.reference_luhn_valid], ids=["active", "reference"])
def test_known_numbers(check: object) -> None:
    assert callable(check)
    assert all(check(number) for number in VALID)
    assert not any(check(number) for number in INVALID)


def test_extension_is_built_unless_disabled() -> None:
    assert native.active() is not native.DISABLED


@given(st.text(alphabet="0123456789", max_size=25))
def test_compiled_agrees_with_reference_on_digits(number: str) -> None:
    assert cards.luhn_valid(number) == cards.reference_luhn_valid(number)


@given(st.text(max_size=25))
def test_compiled_agrees_with_reference_on_any_text(text: str) -> None:
    assert cards.luhn_valid(text) == cards.reference_luhn_valid(text)


@given(st.text(alphabet="0123456789", min_size=12, max_size=19))
def test_masking_hides_all_but_first_six_and_last_four(pan: str) -> None:
    masked = mask_pan(pan)
    assert len(masked) == len(pan)
    assert masked[-4:] == pan[-4:]
    shown = sum(c != "*" for c in masked)
    assert shown <= 10
    assert masked.count("*") >= 6 if len(pan) >= 16 else masked.count("*") == 6


def test_card_repr_is_masked() -> None:
    card = Card("4111111111111111", 12, 2030)
    assert "4111111111111111" not in repr(card)
    assert "4111111111111111" not in str(card)
    assert "411111******1111" in repr(card)
