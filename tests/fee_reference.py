"""A slow, obviously correct model of the fee specification in Decimal: the oracle
that tests/test_fees.py holds both arithmetic cores (compiled and pure) against.

It shares nothing with switch.money.fees but the parsed dataclasses: no scaled
integers, no split products. Every Decimal operation runs with the Inexact trap
on, so a rounding anywhere but the one the specification asks for is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from decimal import (
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)

from switch.domain import currency
from switch.domain.models import INT64_MAX, Money, MoneyOverflow
from switch.money.fees import FeeQuote, FeeSchedule, FxTable, Rounding, Share

_MODES = {
    Rounding.HALF_EVEN: ROUND_HALF_EVEN,
    Rounding.HALF_UP: ROUND_HALF_UP,
    Rounding.DOWN: ROUND_DOWN,
    Rounding.UP: ROUND_UP,
}


def _exact() -> AbstractContextManager[Context]:
    return localcontext(Context(prec=200, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow]))


def _to_int(value: Decimal, rounding: str) -> int:
    # The one rounding the specification asks for: the only place Inexact may happen.
    result = int(value.quantize(Decimal(1), rounding=rounding, context=Context(prec=200)))
    if result > INT64_MAX:
        raise MoneyOverflow(f"{result} does not fit in int64")
    return result


def fee(schedule: FeeSchedule, amount: int, cross_border: bool) -> int:
    percent, fixed = schedule.percent, schedule.fixed
    for tier in schedule.tiers:
        if tier.up_to is None or amount <= tier.up_to:
            percent, fixed = tier.percent, tier.fixed
            break
    if cross_border:
        percent += schedule.cross_border_percent
    with _exact():
        part = _to_int(Decimal(amount) * percent / 100, _MODES[schedule.rounding])
    total = part + fixed
    if total > INT64_MAX:
        raise MoneyOverflow(f"{total} does not fit in int64")
    if schedule.min_fee is not None and total < schedule.min_fee:
        total = schedule.min_fee
    if schedule.max_fee is not None and total > schedule.max_fee:
        total = schedule.max_fee
    return total


def allocate(total: int, percents: Sequence[Decimal]) -> list[int]:
    """Largest remainder: floors first, then one unit each to the largest fractions, earlier first on ties."""
    with _exact():
        exact = [Decimal(total) * p / 100 for p in percents]
        parts = [int(e.to_integral_value(rounding=ROUND_FLOOR)) for e in exact]
        fractions = [e - part for e, part in zip(exact, parts, strict=True)]
    left = total - sum(parts)
    for index in sorted(range(len(parts)), key=lambda i: (-fractions[i], i))[:left]:
        parts[index] += 1
    return parts


def split(total: int, shares: Sequence[Share]) -> list[tuple[str, int]]:
    """Depth-first: each party, then (for a parent, what it keeps first) its children."""
    result: list[tuple[str, int]] = []
    for share, received in zip(shares, allocate(total, [s.percent for s in shares]), strict=True):
        result.extend(split_one(share, received))
    return result


def split_one(share: Share, received: int) -> list[tuple[str, int]]:
    """A party that received `received`: the same rule as one level of split()."""
    if not share.shares:
        return [(share.party, received)]
    kept = Decimal(100) - sum((child.percent for child in share.shares), Decimal(0))
    parts = allocate(received, [kept, *(child.percent for child in share.shares)])
    result = [(share.party, parts[0])]
    for child, part in zip(share.shares, parts[1:], strict=True):
        result.extend(split_one(child, part))
    return result


def convert(fx: FxTable, amount: Money, to_currency: str) -> Money:
    if to_currency == amount.currency:
        return amount
    rate = fx.find(amount.currency, to_currency)
    if rate is None:
        raise LookupError(f"no rate {amount.currency}/{to_currency}")
    with _exact():
        major = Decimal(amount.minor_units) / Decimal(10) ** currency.exponent(amount.currency)
        converted = major * rate.rate * (1 - fx.markup_percent / 100)
        minor = converted * Decimal(10) ** currency.exponent(to_currency)
        return Money(_to_int(minor, ROUND_HALF_EVEN), to_currency)


def quote(
    schedules: Sequence[FeeSchedule],
    fx: FxTable,
    merchant_id: str,
    amount: Money,
    rail: str,
    *,
    card_country: str = "",
    merchant_country: str = "",
    settlement_currency: str = "",
) -> FeeQuote:
    settlement = convert(fx, amount, settlement_currency) if settlement_currency else None
    for schedule in schedules:
        if (
            schedule.rail in (None, rail)
            and schedule.merchant_id in (None, merchant_id)
            and schedule.currency in (None, amount.currency)
        ):
            cross_border = bool(card_country) and bool(merchant_country) and card_country != merchant_country
            total = fee(schedule, amount.minor_units, cross_border)
            shares = tuple(split(total, schedule.shares)) if schedule.shares else ()
            return FeeQuote(Money(total, amount.currency), shares, schedule.name, settlement)
    return FeeQuote(Money(0, amount.currency), (), "", settlement)
