"""Transaction ids: time-ordered (so journal inserts stay index-friendly) and unguessable.

Crockford base 32 rather than hex: hex ids hold long runs of digits, which log
scanners rightly flag as possible card numbers.

An id is "tx_" + 26 Crockford base-32 characters encoding 128 bits, most
significant first: 48 bits of milliseconds since the epoch, then 80 random bits
(then 2 zero bits to fill the last character). new_transaction_ids(n) makes a
batch's ids at once: one clock read, one os.urandom call, and a handful of
whole-buffer operations in C instead of an encoding loop per id.
"""

from __future__ import annotations

import os
import time

_MS_MASK = 0xFFFF_FFFF_FFFF
# Values 0-31 become Crockford's alphabet (the other 224 bytes never occur).
_ENCODE = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ" + bytes(range(32, 256))
# 26 characters of 5 bits are 130 bits: characters 0-8 are the time's first 45
# bits, the same for a whole batch. The other 17 are one byte each, holding its
# 5-bit value: character 9 is the time's last 3 bits and 2 random bits, 10-24 are
# 75 random bits, 25 is 3 random bits and the 2 zero bits. 2 + 75 + 3 = 80 random
# bits.
_TAIL = 17
_RANDOM_BITS = b"\x03" + b"\x1f" * 15 + b"\x1c"


def new_transaction_ids(count: int) -> list[str]:
    """count ids in the module's format, all stamped with the same millisecond."""
    if count <= 0:
        return []
    ms = int(time.time() * 1000) & _MS_MASK
    head = "tx_" + bytes((ms >> shift) & 31 for shift in range(43, -1, -5)).translate(_ENCODE).decode("ascii")
    size = _TAIL * count
    value = int.from_bytes(os.urandom(size), "big") & int.from_bytes(_RANDOM_BITS * count, "big")
    value |= int.from_bytes((bytes([(ms & 7) << 2]) + bytes(_TAIL - 1)) * count, "big")
    tails = value.to_bytes(size, "big").translate(_ENCODE).decode("ascii")
    return [head + tails[start : start + _TAIL] for start in range(0, size, _TAIL)]


_PREFIX = "tx_"
_LENGTH = 26
_PADDING_AND_RANDOM_BITS = 82


def minted_at(transaction_id: str) -> float | None:
    """When an id of this module's format was made (seconds since the epoch, to the
    millisecond); None for an id in another format."""
    body = transaction_id.removeprefix(_PREFIX)
    if len(body) != _LENGTH or len(transaction_id) != _LENGTH + len(_PREFIX):
        return None
    value = 0
    for character in body.encode("ascii", "replace"):
        digit = _DECODE.get(character)
        if digit is None:
            return None
        value = value * 32 + digit
    return (value >> _PADDING_AND_RANDOM_BITS) / 1000.0


_DECODE = {character: digit for digit, character in enumerate(_ENCODE[:32])}
