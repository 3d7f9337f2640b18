"""Card-number checks, compiled when the extensions are built, with the plain-Python reference.

luhn_valid is the compiled one when switch.cards._luhn is importable and
SWITCH_NO_EXTENSIONS is not set; reference_luhn_valid is always the slow,
obviously correct version the tests compare it with. contains_card_number finds
a card number written inside other text, for the fields that must not hold one.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from switch import native


def reference_luhn_valid(number: str) -> bool:
    if not number or not all("0" <= c <= "9" for c in number):
        return False
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char) * (2 if position % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


luhn_valid: Callable[[str], bool] = reference_luhn_valid
_compiled = native.load("switch.cards._luhn")
if _compiled is not None:
    luhn_valid = _compiled.luhn_valid


# Finding a card number inside identifiers and free text (idempotency keys, merchant
# ids, metadata, names), where a caller must not put one: it would be stored and
# echoed in clear. A candidate is a run of 12-19 ASCII digits, or one written in
# groups of digits split by single spaces or dashes ("4111 1111 1111 1111",
# "3782-822463-10005"; the first group has 4 digits, as every brand prints them),
# that passes the Luhn check. Any 12-19 digit number passes Luhn one time in ten,
# so the rules below keep out what only resembles a card number:
#  - a group glued to a letter is part of a longer word (a hex or base-32 id), and
#    one after "+" is a phone number in E.164 form (+5511999990006);
#  - no card number starts with 0 or 1 (ISO/IEC 7812: 1 is UATP airline cards
#    alone), while millisecond timestamps, snowflake ids and zero-padded counters
#    do: without this rule 1 in 10 of them would be refused;
#  - a UUID is never a card number, yet its last group or its middle three groups
#    pass Luhn about once in 1,500 UUIDs, the commonest idempotency keys.
# On the hot path one precompiled regex answers for nearly every identifier: only
# text with 12 digits in a row, or 4 and a separator, the first of them an issuer
# digit (2-9: what the slower look accepts a group to start with, so zero-padded
# counters and timestamps stay on the fast path) goes on to the slower look.
# (Its first item a plain class: the regex engine then skips other characters in C.)
_MAYBE = re.compile(r"[2-9][0-9]{3}(?:[0-9]{8}|[ -][0-9])")
_RUN = re.compile(r"[0-9]+(?:[ -][0-9]+)*")
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_ISSUER_DIGITS = frozenset("23456789")
CARD_NUMBER_LENGTHS = range(12, 20)


def contains_card_number(text: str) -> bool:
    """Whether text holds something that is probably a card number (see above)."""
    if len(text) < CARD_NUMBER_LENGTHS.start or _MAYBE.search(text) is None:
        return False
    if text.count("-") >= 4:
        if len(text) == 36 and _UUID.fullmatch(text):  # the common case, and a quick one
            return False
        text = _UUID.sub("_", text)
    for run in _RUN.finditer(text):
        start, end = run.span()
        if end - start < CARD_NUMBER_LENGTHS.start:
            continue
        groups = run.group().replace(" ", "-").split("-")
        if start and (_in_word(text[start - 1]) or text[start - 1] == "+"):
            del groups[0]
        if end < len(text) and _in_word(text[end]):
            del groups[-1:]
        for index, group in enumerate(groups):
            if group[0] not in _ISSUER_DIGITS:
                continue
            if len(group) in CARD_NUMBER_LENGTHS and luhn_valid(group):
                return True
            if len(group) == 4 and _grouped_card(group, groups[index + 1 :]):
                return True
    return False


def _in_word(char: str) -> bool:
    """Whether a digit group glued to char belongs to a longer word."""
    return char.isascii() and char.isalnum()


def _grouped_card(digits: str, rest: list[str]) -> bool:
    """Whether digits and some of the groups after it make a card number written in groups."""
    for group in rest:
        digits += group
        if len(group) > 6 or len(digits) > CARD_NUMBER_LENGTHS.stop - 1:
            return False
        if len(digits) >= CARD_NUMBER_LENGTHS.start and luhn_valid(digits):
            return True
    return False


def quoted(value: str) -> str:
    """repr(value), for a message that names a caller's identifier, unless the value
    holds a card number: that is never echoed (parsing refuses such identifiers; this
    keeps messages safe whatever reaches them)."""
    return "(a value holding a card number)" if contains_card_number(value) else repr(value)
