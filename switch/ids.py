"""Transaction ids: time-ordered (so journal inserts stay index-friendly) and unguessable.

Crockford base 32 rather than hex: hex ids hold long runs of digits, which log
scanners rightly flag as possible card numbers.
"""

from __future__ import annotations

import base64
import os
import time

# RFC 4648's base-32 alphabet, letter for letter onto Crockford's: the mapping keeps
# the order of values, so ids still sort by time.
_TO_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def new_transaction_id() -> str:
    """ "tx_" + 26 Crockford base-32 characters: 48 bits of milliseconds, then 80 random bits."""
    raw = (int(time.time() * 1000) & 0xFFFF_FFFF_FFFF).to_bytes(6, "big") + os.urandom(10)
    return "tx_" + base64.b32encode(raw).decode()[:26].translate(_TO_CROCKFORD)
