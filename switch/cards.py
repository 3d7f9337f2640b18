"""Card-number checks, compiled when cext is built, with the plain-Python reference.

luhn_valid is the compiled one when switch._cext is importable and
SWITCH_NO_EXTENSIONS is not set; reference_luhn_valid is always the slow,
obviously correct version the tests compare it with.
"""

from __future__ import annotations

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
_compiled = native.load("cards")
if _compiled is not None:
    luhn_valid = _compiled.luhn_valid
