"""The compiled Luhn check against the plain-Python reference, and PAN masking."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from switch import native
from switch.cards import luhn
from switch.domain.models import Card, mask_pan

VALID = ["4111111111111111", "5555555555554444", "378282246310005", "4000000000000002", "6011111111111117"]
FULLWIDTH_DIGITS = "\uff14\uff11\uff11\uff11"  # str.isdigit() says yes; a card number must not
INVALID = ["4111111111111112", "", "41111111111111a1", FULLWIDTH_DIGITS, "0000000000000001"]


@pytest.mark.parametrize("check", [luhn.luhn_valid, luhn.reference_luhn_valid], ids=["active", "reference"])
def test_known_numbers(check: object) -> None:
    assert callable(check)
    assert all(check(number) for number in VALID)
    assert not any(check(number) for number in INVALID)


def test_extension_is_built_unless_disabled() -> None:
    assert native.active() is not native.DISABLED


@given(st.text(alphabet="0123456789", max_size=25))
def test_compiled_agrees_with_reference_on_digits(number: str) -> None:
    assert luhn.luhn_valid(number) == luhn.reference_luhn_valid(number)


@given(st.text(max_size=25))
def test_compiled_agrees_with_reference_on_any_text(text: str) -> None:
    assert luhn.luhn_valid(text) == luhn.reference_luhn_valid(text)


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


# --- contains_card_number: a card number inside identifiers and free text -------------------

BOUNDARIES = st.sampled_from(["", " ", ".", ",", ":", ";", "/", "_", "=", "(", ")", "#", "\n", "\t", "é", "\u00a0"])


def luhn_complete(body: str) -> str:
    """body plus the check digit that makes it pass Luhn."""
    return next(body + d for d in "0123456789" if luhn.reference_luhn_valid(body + d))


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    """A Luhn-valid number of 12-19 digits starting as issuers' numbers do (2-9)."""
    length = draw(st.integers(min_value=12, max_value=19))
    body = draw(st.sampled_from("23456789")) + draw(st.text("0123456789", min_size=length - 2, max_size=length - 2))
    return luhn_complete(body)


def written(number: str, style: str) -> str:
    """The number as people write it: plain, or in groups of four split by spaces or dashes."""
    if style == "plain":
        return number
    separator = " " if style == "spaced" else "-"
    return separator.join(number[i : i + 4] for i in range(0, len(number), 4))


@settings(max_examples=500)
@given(
    prefix=st.text(max_size=40),
    before=BOUNDARIES,
    number=card_numbers(),
    style=st.sampled_from(["plain", "spaced", "dashed"]),
    after=BOUNDARIES,
    suffix=st.text(max_size=40),
)
def test_a_card_number_in_any_text_is_found(  # noqa: PLR0917  # one argument per drawn part
    prefix: str, before: str, number: str, style: str, after: str, suffix: str
) -> None:
    # A run of its own: nothing alphanumeric (or "+", or another digit) glued to it.
    if before == "" and prefix and ((prefix[-1].isascii() and prefix[-1].isalnum()) or prefix[-1] == "+"):
        before = " "
    if after == "" and suffix and suffix[0].isascii() and suffix[0].isalnum():
        after = " "
    text = prefix + before + written(number, style) + after + suffix
    assume(not luhn._UUID.search(text))  # a 12-digit number could complete a UUID, which is never one
    assert luhn.contains_card_number(text)


@given(st.text(max_size=200).filter(lambda text: sum("0" <= c <= "9" for c in text) < 12))
def test_text_with_fewer_than_twelve_digits_is_never_a_card_number(text: str) -> None:
    assert not luhn.contains_card_number(text)


@given(st.lists(st.text("0123456789", min_size=1, max_size=11), min_size=1, max_size=8), st.sampled_from("xyz.,/"))
def test_digit_runs_shorter_than_twelve_are_never_a_card_number(runs: list[str], glue: str) -> None:
    assert not luhn.contains_card_number(glue.join(runs))


@given(card_numbers(), st.sampled_from(["x", "a", "Z", "+", "9"]))
def test_a_number_glued_to_a_word_or_after_a_plus_is_not_one(number: str, glue: str) -> None:
    assert not luhn.contains_card_number(glue + number + ("" if glue in "+9" else glue))


@pytest.mark.parametrize(
    "text",
    [
        "+5511999990006",  # a phone number in E.164 form: its 13 digits pass Luhn
        "order-1718123456705",  # a millisecond timestamp, Luhn-valid
        "0000000000000000",  # zero padding, Luhn-valid
        "123e4567-e89b-12d3-a456-426614174008",  # a UUID whose last group passes Luhn
        "00000000-4111-4111-0006-000000000000",  # a UUID whose middle groups read 4111 4111 0006 (Luhn-valid)
        "k_3fa85f6457174562",
        "tx_06H4TCHYKE5FNPREH2WTQTB45R",
        "4111111111111112",  # fails Luhn
        "4111 1111 1111 1112",
        "42424242424242424242",  # 20 digits: longer than any card number
        "4111.1111.1111.1111",  # dots are not how card numbers are written
    ],
)
def test_what_only_resembles_a_card_number(text: str) -> None:
    assert not luhn.contains_card_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111111",
        "pan: 4111 1111 1111 1111 exp 12/29",
        "order-4111-1111-1111-1111",
        "k_4111111111111111",
        "Amex 3782 822463 10005",
        "4222 2222 2222 2",  # 13 digits, the last group of one
        "ref 12 5555555555554444",
        "6011 1111 1111 1117",
    ],
)
def test_card_numbers_as_callers_write_them(text: str) -> None:
    assert luhn.contains_card_number(text)
