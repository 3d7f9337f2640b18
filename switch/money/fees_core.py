"""The fee engine's arithmetic core in plain Python: the twin of _fees_core.pyx beside it.

Everything here is integer math on minor units, with the same algorithm, names
and signatures as the compiled module (switch.money._fees_core); switch.money.fees
picks one of the two. Python ints never wrap, so each result is checked against int64
explicitly where the C code checks its __int128 intermediates.

Scales (shared with the compiled core and documented in switch.money.fees):

- a percent is an int scaled by PERCENT_SCALE (10^4): "2.9" % -> 29_000, so a
  scaled percent counts parts per PERCENT_DENOMINATOR (10^6) of the amount;
- an FX rate is an int scaled by RATE_SCALE (10^8): "0.9231" -> 92_310_000.

Amounts are never negative here: fees are quoted and converted on authorized
amounts, and a negative one is a bug upstream (ValueError).
"""

from __future__ import annotations

from collections.abc import Sequence

from switch.domain.models import INT64_MAX, checked_int64

HALF_EVEN = 0
HALF_UP = 1
DOWN = 2
UP = 3

PERCENT_SCALE = 10_000
PERCENT_DENOMINATOR = 100 * PERCENT_SCALE
RATE_SCALE = 10**8
MAX_RATE_UNITS = 10**15  # rate <= 10^7: keeps amount x rate x markup x 10^4 exact in __int128
MAX_EXPONENT_SHIFT = 4  # ISO 4217 exponents run from 0 to 4


def round_quotient(quotient: int, remainder: int, divisor: int, rounding: int) -> int:
    """Rounds quotient + remainder / divisor (0 <= remainder < divisor) to an integer."""
    if remainder == 0 or rounding == DOWN:
        return quotient
    if rounding == UP:
        return quotient + 1
    twice = 2 * remainder
    if twice > divisor or (twice == divisor and (rounding == HALF_UP or quotient % 2 == 1)):
        return quotient + 1
    return quotient


def percent_of(amount: int, percent: int, rounding: int) -> int:
    """round(amount x percent / 10^6) with the given rounding; MoneyOverflow past int64."""
    check_amount(amount)
    quotient, remainder = divmod(amount * percent, PERCENT_DENOMINATOR)
    return checked_int64(round_quotient(quotient, remainder, PERCENT_DENOMINATOR, rounding))


def convert(amount: int, rate_units: int, markup: int, shift: int) -> int:
    """amount x (rate_units / 10^8) x (1 - markup / 10^6) x 10^shift, rounded half-even.

    shift is the target currency's exponent minus the source's; markup is a scaled
    percent taken off the converted amount.
    """
    check_amount(amount)
    check_fx(rate_units, markup, shift)
    numerator = amount * rate_units * (PERCENT_DENOMINATOR - markup) * 10 ** max(shift, 0)
    divisor = RATE_SCALE * PERCENT_DENOMINATOR * 10 ** max(-shift, 0)
    quotient, remainder = divmod(numerator, divisor)
    return checked_int64(round_quotient(quotient, remainder, divisor, HALF_EVEN))


def convert_many(amounts: Sequence[int], rate_units: int, markup: int, shift: int) -> list[int]:
    """convert() over many amounts at one rate."""
    return [convert(amount, rate_units, markup, shift) for amount in amounts]


def largest_remainder(total: int, percents: Sequence[int]) -> list[int]:
    """Splits total by percents summing to 10^6: floors, then one unit each to the
    largest remainders (ties to the earlier entry), so the parts sum to total."""
    parts: list[int] = []
    remainders: list[int] = []
    for percent in percents:
        part, remainder = divmod(total * percent, PERCENT_DENOMINATOR)
        parts.append(part)
        remainders.append(remainder)
    left = total - sum(parts)
    for index in sorted(range(len(parts)), key=lambda i: (-remainders[i], i))[:left]:
        parts[index] += 1
    return parts


class SharePlan:
    """A revenue-share tree, flattened in depth-first (pre-)order.

    parents[i] is the index of node i's parent (-1 at the top), always < i;
    percents[i] is its percent of what its parent receives. The top level sums
    to exactly 10^6; a parent keeps 10^6 minus its children's sum. split() gives,
    per node in this order, what a leaf receives or what a parent keeps.
    """

    __slots__ = ("_children", "_percents", "_top", "size")

    def __init__(self, parents: Sequence[int], percents: Sequence[int]) -> None:
        check_share_plan(parents, percents)
        self.size = len(parents)
        self._percents = list(percents)
        self._top = [node for node, parent in enumerate(parents) if parent == -1]
        self._children: list[list[int]] = [[] for _ in parents]
        for node, parent in enumerate(parents):
            if parent != -1:
                self._children[parent].append(node)

    def split(self, total: int) -> list[int]:
        check_amount(total)
        received = [0] * self.size
        result = [0] * self.size
        for node, part in zip(self._top, largest_remainder(total, [self._percents[i] for i in self._top]), strict=True):
            received[node] = result[node] = part
        # Pre-order: a parent's share is known before its children's group is split.
        for node, kids in enumerate(self._children):
            if kids:
                kept = PERCENT_DENOMINATOR - sum(self._percents[i] for i in kids)
                parts = largest_remainder(received[node], [kept, *(self._percents[i] for i in kids)])
                result[node] = parts[0]
                for kid, part in zip(kids, parts[1:], strict=True):
                    received[kid] = result[kid] = part
        return result


class Pricing:
    """One schedule's fee rule in scaled integers.

    Tiers are checked in order and the first whose up_to >= amount applies; the
    last up_to must be INT64_MAX so every amount finds one (switch.money.fees appends the
    schedule's own percent and fixed as that catch-all). min_fee and max_fee are
    always set: 0 and INT64_MAX when the schedule has none.
    """

    __slots__ = ("_cross_border", "_fixed", "_max", "_min", "_percent", "_plan", "_rounding", "_up_to")

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
    ) -> None:
        check_pricing(
            up_to,
            percents,
            fixed,
            cross_border_percent=cross_border_percent,
            min_fee=min_fee,
            max_fee=max_fee,
            rounding=rounding,
        )
        self._up_to = list(up_to)
        self._percent = list(percents)
        self._fixed = list(fixed)
        self._cross_border = cross_border_percent
        self._min = min_fee
        self._max = max_fee
        self._rounding = rounding
        self._plan = plan

    def fee(self, amount: int, cross_border: bool) -> int:
        """clamp(round(amount x percent / 10^6) + fixed, min, max); MoneyOverflow past int64."""
        check_amount(amount)
        tier = next(i for i, limit in enumerate(self._up_to) if amount <= limit)
        percent = self._percent[tier] + (self._cross_border if cross_border else 0)
        total = checked_int64(percent_of(amount, percent, self._rounding) + self._fixed[tier])
        return min(max(total, self._min), self._max)

    def quote(self, amount: int, cross_border: bool) -> tuple[int, tuple[int, ...]]:
        """The fee and its split in the plan's order (empty without a plan)."""
        fee = self.fee(amount, cross_border)
        return fee, () if self._plan is None else tuple(self._plan.split(fee))


def quote_many(
    pricings: Sequence[Pricing], amounts: Sequence[int], cross_border: Sequence[bool]
) -> list[tuple[int, tuple[int, ...]]]:
    """Pricing.quote over a batch: item i is priced by pricings[i]."""
    if not len(pricings) == len(amounts) == len(cross_border):
        raise ValueError("pricings, amounts and cross_border must be of one length")
    return [pricing.quote(amount, xb) for pricing, amount, xb in zip(pricings, amounts, cross_border, strict=True)]


def check_amount(amount: int) -> None:
    checked_int64(amount)
    if amount < 0:
        raise ValueError(f"amount must be >= 0, not {amount}")


def check_fx(rate_units: int, markup: int, shift: int) -> None:
    if not 0 < rate_units <= MAX_RATE_UNITS:
        raise ValueError(f"rate_units must be in 1..{MAX_RATE_UNITS}")
    if not 0 <= markup < PERCENT_DENOMINATOR:
        raise ValueError(f"markup must be in 0..{PERCENT_DENOMINATOR - 1}")
    if not -MAX_EXPONENT_SHIFT <= shift <= MAX_EXPONENT_SHIFT:
        raise ValueError(f"shift must be in -{MAX_EXPONENT_SHIFT}..{MAX_EXPONENT_SHIFT}")


def check_pricing(
    up_to: Sequence[int],
    percents: Sequence[int],
    fixed: Sequence[int],
    *,
    cross_border_percent: int,
    min_fee: int,
    max_fee: int,
    rounding: int,
) -> None:
    if not up_to or not len(up_to) == len(percents) == len(fixed) or up_to[-1] != INT64_MAX:
        raise ValueError("tiers must be non-empty, of one length, the last up to INT64_MAX")
    if any(not 0 <= p <= PERCENT_DENOMINATOR for p in (*percents, cross_border_percent)):
        raise ValueError("percents must be in 0..10^6")
    if any(not 0 <= f <= INT64_MAX for f in fixed) or not 0 <= min_fee <= max_fee <= INT64_MAX:
        raise ValueError("fixed, min and max must be in 0..INT64_MAX with min <= max")
    if rounding not in (HALF_EVEN, HALF_UP, DOWN, UP):
        raise ValueError(f"unknown rounding {rounding}")


def check_share_plan(parents: Sequence[int], percents: Sequence[int]) -> None:
    if len(parents) != len(percents) or not parents:
        raise ValueError("parents and percents must be non-empty and of one length")
    sums = [0] * len(parents)
    top = 0
    for node, (parent, percent) in enumerate(zip(parents, percents, strict=True)):
        if not -1 <= parent < node:
            raise ValueError(f"node {node}: parent {parent} must come before it")
        if not 0 <= percent <= PERCENT_DENOMINATOR:
            raise ValueError(f"node {node}: percent {percent} out of range")
        if parent == -1:
            top += percent
        else:
            sums[parent] += percent
    if top != PERCENT_DENOMINATOR or max(sums) > PERCENT_DENOMINATOR:
        raise ValueError("the top level must sum to 10^6 and each node's children to at most 10^6")
