"""The compiled fee core (_fees_core.pyx); its plain-Python twin is switch.money.fees_core."""

from collections.abc import Sequence

HALF_EVEN: int
HALF_UP: int
DOWN: int
UP: int
PERCENT_SCALE: int
PERCENT_DENOMINATOR: int
RATE_SCALE: int
MAX_RATE_UNITS: int
MAX_EXPONENT_SHIFT: int

def percent_of(amount: int, percent: int, rounding: int) -> int: ...
def convert(amount: int, rate_units: int, markup: int, shift: int) -> int: ...
def convert_many(amounts: Sequence[int], rate_units: int, markup: int, shift: int) -> list[int]: ...
def largest_remainder(total: int, percents: Sequence[int]) -> list[int]: ...

class SharePlan:
    size: int
    def __init__(self, parents: Sequence[int], percents: Sequence[int]) -> None: ...
    def split(self, total: int) -> list[int]: ...

class Pricing:
    def __init__(
        self,
        up_to: Sequence[int],
        percents: Sequence[int],
        fixed: Sequence[int],
        *,
        cross_border_percent: int,
        min_fee: int,
        max_fee: int,
        rounding: int,
        plan: SharePlan | None = None,
    ) -> None: ...
    def fee(self, amount: int, cross_border: bool) -> int: ...
    def quote(self, amount: int, cross_border: bool) -> tuple[int, tuple[int, ...]]: ...

def quote_many(
    pricings: Sequence[Pricing], amounts: Sequence[int], cross_border: Sequence[bool]
) -> list[tuple[int, tuple[int, ...]]]: ...
