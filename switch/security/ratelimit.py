"""A rate per caller: a token bucket each, refilled at `per_second` up to `burst`.

Each worker keeps its own buckets, so a caller spread over N workers gets up to N
times the rate; the bound is what matters here (tokenization as an oracle), and it
costs no store round trip per call."""

from __future__ import annotations

import time
from collections.abc import Callable

_MAX_CALLERS = 10_000  # buckets kept per worker; past it they start full again


class CallerRateLimit:
    def __init__(self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, at)

    def allows(self, caller: str) -> bool:
        if self.per_second <= 0:
            return True
        now = self._clock()
        tokens, at = self._buckets.get(caller, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.per_second)
        if tokens < 1.0:
            self._buckets[caller] = (tokens, now)
            return False
        if len(self._buckets) >= _MAX_CALLERS and caller not in self._buckets:
            self._buckets.clear()
        self._buckets[caller] = (tokens - 1.0, now)
        return True
