"""Transaction ids: time-ordered (so journal inserts stay index-friendly) and unguessable."""

from __future__ import annotations

import os
import time


def new_transaction_id() -> str:
    """ "tx_" + 32 hex digits: 48 bits of milliseconds, then 80 random bits; sorts by time."""
    return f"tx_{int(time.time() * 1000) & 0xFFFF_FFFF_FFFF:012x}{os.urandom(10).hex()}"
