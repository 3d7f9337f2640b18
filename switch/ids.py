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

import base64
import os
import time

# RFC 4648's base-32 alphabet, letter for letter onto Crockford's: the mapping keeps
# the order of values, so ids still sort by time.
_TO_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789ABCDEFGHJKMNPQRSTVWXYZ")

_ALPHABET = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PREFIX = b"tx_"
_MS_MASK = 0xFFFF_FFFF_FFFF
# One id as bytes before the alphabet is applied: "tx_" (bytes the table leaves
# alone), then one byte per character holding its 5-bit value. 26 characters of 5
# bits are 130 bits: chars 0-8 are 45 bits of the time, char 9 is its last 3 bits
# and 2 random bits, chars 10-24 are 75 random bits, char 25 is 3 random bits
# followed by the 2 zero bits. 2 + 75 + 3 = 80 random bits, as new_transaction_id.
_RECORD = len(_PREFIX) + 26
_RANDOM_MASK = bytes(len(_PREFIX) + 9) + b"\x03" + b"\x1f" * 15 + b"\x1c"
# Values 0-31 become the alphabet; every other byte (the "tx_" prefix) stays itself.
_ENCODE = bytes(range(256)).translate(None, b"")  # identity, replaced below
_ENCODE = _ALPHABET + _ENCODE[32:]


def new_transaction_id() -> str:
    """ "tx_" + 26 Crockford base-32 characters: 48 bits of milliseconds, then 80 random bits."""
    raw = (int(time.time() * 1000) & _MS_MASK).to_bytes(6, "big") + os.urandom(10)
    return "tx_" + base64.b32encode(raw).decode()[:26].translate(_TO_CROCKFORD)


def new_transaction_ids(count: int) -> list[str]:
    """count ids in new_transaction_id's format, all stamped with the same millisecond."""
    if count <= 0:
        return []
    ms = int(time.time() * 1000) & _MS_MASK
    # The fixed part of every record: the prefix, the 9 characters of the time's
    # first 45 bits, and the time's last 3 bits at the top of character 9.
    fixed = _PREFIX + bytes((ms >> shift) & 31 for shift in range(43, -1, -5)) + bytes([(ms & 7) << 2]) + bytes(16)
    size = _RECORD * count
    value = int.from_bytes(os.urandom(size), "big") & int.from_bytes(_RANDOM_MASK * count, "big")
    value |= int.from_bytes(fixed * count, "big")
    text = value.to_bytes(size, "big").translate(_ENCODE).decode("ascii")
    return [text[start : start + _RECORD] for start in range(0, size, _RECORD)]
