"""A holder's activity in Python: the embedded store's twin of switch.stores.holder_lua.

The same numbers, windows and answers as the Lua the Redis scripts run, computed in
the same order, so that the risk step reads the same doubles from either store.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

from switch.stores.base import Payment
from switch.stores.holder_lua import DISTINCT_KEPT

HOUR, DAY, MONTH = 3600, 86_400, 2_592_000
_ANSWER = struct.Struct("<10d")  # a payer's activity before a payment
_ONE = struct.Struct("<d")  # a destination's distinct payers before it


@dataclass(slots=True)
class _Window:
    """Two fixed windows of `span`: the current one (slot) and the one before it."""

    span: int
    slot: int = 0
    previous: list[float] = field(default_factory=lambda: [0.0, 0.0])
    current: list[float] = field(default_factory=lambda: [0.0, 0.0])

    def roll(self, now: float) -> None:
        slot = math.floor(now / self.span)
        if self.slot >= slot:
            return  # a clock behind the one that moved it last moves nothing
        if self.slot == slot - 1:
            self.previous, self.current = self.current, [0.0, 0.0]
        else:
            self.previous, self.current = [0.0, 0.0], [0.0, 0.0]
        self.slot = slot

    def sliding(self, which: int, now: float) -> float:
        # Lua's a % b, written out: Python's float % rounds differently in the last bit.
        into = now - math.floor(now / self.span) * self.span
        return self.previous[which] * (1 - into / self.span) + self.current[which]


@dataclass(slots=True)
class HolderActivity:
    first: float = 0.0
    last: float = 0.0
    hour: _Window = field(default_factory=lambda: _Window(HOUR))  # attempts, declines
    day: _Window = field(default_factory=lambda: _Window(DAY))  # USD cents, near-threshold payments
    month: _Window = field(default_factory=lambda: _Window(MONTH))  # payments, USD cents
    destinations: dict[str, int] = field(default_factory=dict)  # id -> hour last paid
    sources: dict[str, int] = field(default_factory=dict)  # id -> hour last paid by

    def record(self, payment: Payment, now: float) -> bytes:
        """The payment joins this party's activity; returns the activity before it."""
        hour = math.floor(now / HOUR)
        if payment.receiving:
            before = _recent(self.sources, hour)
            _remember(self.sources, payment.counterparty, hour)
            return _ONE.pack(before)
        for window in (self.hour, self.day, self.month):
            window.roll(now)
        first = self.first == 0
        answer = (
            1 if first else 0,
            self.hour.sliding(0, now),
            self.hour.sliding(1, now),
            self.day.sliding(0, now),
            self.day.sliding(1, now),
            _recent(self.destinations, hour),
            self.month.sliding(0, now),
            self.month.sliding(1, now),
            0 if first else now - self.first,
            0 if first else now - self.last,
        )
        self.hour.current[0] += 1
        self.day.current[0] += payment.usd_cents
        self.day.current[1] += 1 if payment.near_threshold else 0
        self.month.current[0] += 1
        self.month.current[1] += payment.usd_cents
        if first:
            self.first = now
        self.last = now
        if payment.counterparty:
            _remember(self.destinations, payment.counterparty, hour)
        return _ANSWER.pack(*answer)

    def declined(self, now: float) -> None:
        """One of its payments was declined: it counts in the hour it is completed in."""
        self.hour.roll(now)
        self.hour.current[1] += 1


def _recent(seen: dict[str, int], hour: int) -> int:
    return sum(1 for last in seen.values() if last > hour - 24)


def _remember(seen: dict[str, int], party: str, hour: int) -> None:
    seen[party] = hour
    for old in [key for key, last in seen.items() if last <= hour - 24]:
        del seen[old]
    if len(seen) > DISTINCT_KEPT:
        for old in sorted(seen, key=seen.__getitem__)[: len(seen) - DISTINCT_KEPT]:
            del seen[old]
