"""Velocity and amount limits, turned into the counters a claim must fit under.

Windows are fixed and aligned to the epoch (an hour-long window runs from one
full hour to the next): each counter's name carries its window's bucket, so a
claim and its later release move the same counter. The state store checks and
moves all of an item's counters atomically.
"""

from __future__ import annotations

from collections.abc import Sequence

from switch.config import Limit, LimitScope
from switch.models import Authorization, Instrument
from switch.stores.base import Counter


class RiskRules:
    def __init__(self, limits: Sequence[Limit]) -> None:
        self._limits = tuple(limits)

    def counters(self, authorization: Authorization, instrument: Instrument, now: float) -> tuple[Counter, ...]:
        counters: list[Counter] = []
        for limit in self._limits:
            if limit.scope is LimitScope.INSTRUMENT:
                subject = f"i:{instrument.fingerprint}"
            else:
                subject = f"m:{authorization.merchant_id}"
            bucket = int(now // limit.window_seconds)
            if limit.max_count is not None:
                name = f"c{limit.window_seconds}:{bucket}"
                counters.append(Counter(subject, name, limit.window_seconds, limit.max_count, by_amount=False))
            if limit.max_amount is not None:
                name = f"a{limit.window_seconds}:{authorization.amount.currency}:{bucket}"
                counters.append(Counter(subject, name, limit.window_seconds, limit.max_amount, by_amount=True))
        return tuple(counters)
