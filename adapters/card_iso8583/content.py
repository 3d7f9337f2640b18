"""Character types of outgoing fields, checked before encoding (spec.TYPES).

A value of the wrong type would encode (pyiso8583 checks only length and ASCII) and
be refused by the network, or worse, read as something else. The error names the
data element and its type, never the value: field 2 is a card number.
"""

from __future__ import annotations

import string

from . import spec
from .framing import Message

_ALPHANUMERIC = frozenset(string.ascii_letters + string.digits)
_PRINTABLE = frozenset(chr(code) for code in range(0x20, 0x7F))


class BadContent(ValueError):
    """A field holds characters its ISO 8583:1987 type does not allow."""


def check(message: Message) -> None:
    for field, value in message.items():
        kind = spec.TYPES.get(field)
        if kind is not None and not _fits(value, field, kind):
            raise BadContent(f"data element {field} must be {_NAMES[kind]}")


def _fits(value: str, field: str, kind: str) -> bool:
    if kind == spec.NUMERIC:
        return value.isascii() and value.isdigit()
    if kind == spec.ALPHANUMERIC:
        if field == "38":  # an authorization code shorter than 6 is right-padded
            value = value.rstrip(" ")
        return bool(value) and set(value) <= _ALPHANUMERIC
    return set(value) <= _PRINTABLE


_NAMES = {
    spec.NUMERIC: "numeric (n)",
    spec.ALPHANUMERIC: "alphanumeric (an)",
    spec.PRINTABLE: "printable ASCII (ans)",
}
