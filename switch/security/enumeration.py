"""Tokenization must not be an oracle: a token keeps a card's first 6 and last 4
digits, and tokenizing is deterministic, so whoever can tokenize (or authorize,
which answers with the token) every Luhn-valid card number with those digits
finds the card behind a token: about 100,000 candidates for 16 digits.

The guard counts, per caller and per pattern (length, first 6, last 4), the
different card numbers it sent within a sliding window, and refuses the caller's
next new one on that pattern past the limit. A legitimate caller rarely sends many
cards sharing a pattern in a window; an enumeration sends nothing else. Each worker
counts on its own: with N workers an enumeration gets at most N times the limit
before every worker refuses it, a small fraction of the candidates.

Card numbers are remembered only as keyed digests under a key made at start and
never stored, and only for the window. Patterns are evicted least recently used
first, so a caller cannot push its own enumeration out by sending other patterns.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable

log = logging.getLogger("switch.security")

_MAX_PATTERNS = 100_000  # tracked (caller, pattern) pairs per worker


class EnumerationGuard:
    def __init__(self, max_distinct: int, window_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_distinct = max_distinct
        self.window = window_seconds
        self._clock = clock
        self._key = os.urandom(32)
        self._seen: OrderedDict[tuple[str, str], dict[bytes, float]] = OrderedDict()

    def allows(self, caller: str, pan: str) -> bool:
        """Whether this caller may send this card number now; a repeat of one it sent
        within the window always may. Refusals are logged as security events."""
        if self.max_distinct <= 0 or len(pan) < 10:
            return True
        pattern = f"{len(pan)}:{pan[:6]}:{pan[-4:]}"
        now = self._clock()
        seen = self._seen.get((caller, pattern))
        if seen is None:
            seen = self._seen[(caller, pattern)] = {}
            if len(self._seen) > _MAX_PATTERNS:
                self._seen.popitem(last=False)
        else:
            self._seen.move_to_end((caller, pattern))
        digest = hashlib.blake2b(pan.encode("ascii", "replace"), key=self._key, digest_size=16).digest()
        if digest in seen:
            seen[digest] = now
            return True
        _forget_older_than(seen, now - self.window)
        if len(seen) >= self.max_distinct:
            log.warning(
                "security event: refused a card number to caller %r: %d different ones with the pattern "
                "%s******%s within %.0f s look like an enumeration of a token",
                caller,
                len(seen),
                pan[:6],
                pan[-4:],
                self.window,
            )
            return False
        seen[digest] = now
        return True


def _forget_older_than(seen: dict[bytes, float], horizon: float) -> None:
    for digest in [digest for digest, at in seen.items() if at < horizon]:
        del seen[digest]
