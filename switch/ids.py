"""Transaction ids: time-ordered (so journal inserts stay index-friendly) and unguessable."""

from __future__ import annotations

import os
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_transaction_id() -> str:
    """ "tx_" + 26 Crockford base-32 characters: 48 bits of milliseconds, 80 random bits."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "tx_" + "".join(reversed(chars))
