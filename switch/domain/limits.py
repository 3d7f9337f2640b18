"""Velocity limits: how many authorizations, or how much money, one instrument or one
merchant may move in a sliding window."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class LimitScope(enum.Enum):
    INSTRUMENT = "instrument"
    MERCHANT = "merchant"


@dataclass(frozen=True, slots=True)
class Limit:
    scope: LimitScope
    window_seconds: int
    max_count: int | None
    max_amount: int | None
