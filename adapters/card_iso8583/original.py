"""What a reversal must say about its original 0100, derived from the transaction id alone.

A reversal's field 90 names the original's MTI, STAN, transmission date-time (field 7)
and acquirer, which is how an acquirer matches it to the authorization. The switch
sends reversals from its journal, possibly after a crash, with only the transaction
id, merchant, amount and authorization code (switch.flow.reversals): nothing keeps
the 0100's STAN or field 7. So the 0100 takes both from the transaction id, and the
reversal computes them again: no state to lose.

- STAN: a hash of the transaction id, 1..999999. Unlike a counter it may repeat
  among messages in flight, so the client pairs answers by STAN and RRN together.
- Field 7: the millisecond the switch minted the id (switch.domain.ids puts it in the
  id's first 48 bits), to the second: the authorization left within its deadline of
  that moment. An id in another format (a remote caller's) has no time: its 0100
  carries the clock and its reversal zeros, leaving the RRN (field 37) to match it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from switch.domain.ids import minted_at

MAX_STAN = 999_999


def stan(transaction_id: str) -> int:
    """The original authorization's STAN, 1..999999 (0 is not valid on most networks)."""
    digest = int.from_bytes(hashlib.sha256(b"stan:" + transaction_id.encode()).digest()[:8], "big")
    return digest % MAX_STAN + 1


def sent_at(transaction_id: str) -> datetime | None:
    """When the switch minted the id, to the second, in UTC; None for an id in another format."""
    minted = minted_at(transaction_id)
    return None if minted is None else datetime.fromtimestamp(int(minted), UTC)
