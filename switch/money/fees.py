"""Fees, multi-level revenue shares and FX conversion: schedules parsed from the
configuration, and the engine that quotes them on authorized amounts.

Schedules ([[fee_schedule]]) are matched in file order on rail, merchant_id and
currency (each optional); the first match prices the amount, no match means no
fee. For a schedule (or the tier that applies):

    fee = clamp(round(amount x (percent + cross_border_percent) / 100) + fixed, min, max)

- Tiers: the first whose up_to >= amount replaces percent and fixed; a tier
  without up_to (only the last may leave it out) catches the rest; an amount
  above every closed tier falls back to the schedule's own percent and fixed.
- cross_border_percent is added when both the card's and the merchant's country
  are given and differ. Rounding (half_even, half_up, down, up; half-up and up
  go away from zero) applies to the percent part only; fixed, min and max are
  minor units of the amount's currency, all >= 0, so a fee is never negative.
- Shares: the fee is split among the top-level parties (percents summing to
  100); a party's own shares split what it receives and it keeps the rest. Each
  level is allocated by largest remainder (ties to the earlier entry, a parent's
  kept part counting as its first entry), so the parts always sum to the fee.
  FeeQuote.shares lists (party, amount) depth-first: a parent's kept amount
  before its children's. Party names are unique within a schedule.
- FX ([fx]): "BASE/QUOTE" = "rate" means 1 BASE buys rate QUOTE. Only quoted
  pairs convert (no implied inverse: an operator quotes each direction with its
  own spread). markup_percent works against the customer: the converted amount
  is amount x rate x (1 - markup_percent / 100), so the customer's money buys
  less of the target currency. The result is exact to the target's minor unit
  (switch.domain.currency exponents), rounded half-even once.

Integer scales, shared with the arithmetic core: a percent is an integer in
units of 10^-4 percent (PERCENT_SCALE; "2.9" -> 29_000, i.e. parts per 10^6 of
the amount), a rate one in units of 10^-8 (RATE_SCALE). Any result that leaves
int64 raises MoneyOverflow. The core is switch.money._fees_core when built, else its
twin switch.money.fees_core (SWITCH_NO_EXTENSIONS=1 forces the twin).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType, ModuleType
from typing import Any

from switch import native
from switch.domain import currency
from switch.domain.models import INT64_MAX, Money
from switch.money import fees_core

PERCENT_SCALE = fees_core.PERCENT_SCALE
RATE_SCALE = fees_core.RATE_SCALE
PERCENT_DECIMALS = 4
RATE_DECIMALS = 8
MAX_RATE = Decimal(fees_core.MAX_RATE_UNITS) / RATE_SCALE
_MATCH_CACHE_LIMIT = 65_536

CORE: ModuleType = native.load("switch.money._fees_core") or fees_core


class Rounding(enum.Enum):
    HALF_EVEN = "half_even"
    HALF_UP = "half_up"
    DOWN = "down"
    UP = "up"

    @property
    def code(self) -> int:
        """The arithmetic core's number for this mode."""
        return _ROUNDING_CODES[self]


_ROUNDING_CODES = MappingProxyType(
    {
        Rounding.HALF_EVEN: fees_core.HALF_EVEN,
        Rounding.HALF_UP: fees_core.HALF_UP,
        Rounding.DOWN: fees_core.DOWN,
        Rounding.UP: fees_core.UP,
    }
)


class FxRateMissing(LookupError):
    """No rate is configured from one currency to the other."""


@dataclass(frozen=True, slots=True)
class Tier:
    up_to: int | None  # None: every amount above the previous tier
    percent: Decimal
    fixed: int = 0


@dataclass(frozen=True, slots=True)
class Share:
    party: str
    percent: Decimal  # of what the parent receives (of the fee at the top level)
    shares: tuple[Share, ...] = ()


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    name: str
    rail: str | None = None
    merchant_id: str | None = None
    currency: str | None = None
    percent: Decimal = Decimal(0)
    fixed: int = 0
    min_fee: int | None = None  # the `min` key
    max_fee: int | None = None  # the `max` key
    rounding: Rounding = Rounding.HALF_EVEN
    cross_border_percent: Decimal = Decimal(0)
    tiers: tuple[Tier, ...] = ()
    shares: tuple[Share, ...] = ()

    def matches(self, merchant_id: str, currency_code: str, rail: str) -> bool:
        return (
            self.rail in (None, rail)
            and self.merchant_id in (None, merchant_id)
            and self.currency in (None, currency_code)
        )


@dataclass(frozen=True, slots=True)
class FxRate:
    base: str
    quote: str
    rate: Decimal  # 1 base buys `rate` quote


@dataclass(frozen=True, slots=True)
class FxTable:
    rates: tuple[FxRate, ...] = ()
    markup_percent: Decimal = Decimal(0)

    def find(self, base: str, quote: str) -> FxRate | None:
        return next((r for r in self.rates if (r.base, r.quote) == (base, quote)), None)


@dataclass(slots=True)  # built per authorization, so not frozen: see switch.domain.models
class FeeQuote:
    fee: Money  # in the amount's currency; zero when no schedule matched
    shares: tuple[tuple[str, int], ...]  # (party, minor units), depth-first; they sum to fee
    schedule: str  # the matching schedule's name; "" for none
    settlement: Money | None  # the amount converted to the settlement currency; None if none asked


@dataclass(slots=True)  # built per authorization, so not frozen: see switch.domain.models
class QuoteRequest:
    merchant_id: str
    amount: Money
    rail: str
    card_country: str = ""
    merchant_country: str = ""
    settlement_currency: str = ""

    @property
    def cross_border(self) -> bool:
        return bool(self.card_country and self.merchant_country) and self.card_country != self.merchant_country


def scaled(value: Decimal, scale: int) -> int:
    """value x scale as an exact integer; ValueError when it has more decimals than the scale holds."""
    result = value * scale
    if result != result.to_integral_value():
        raise ValueError(f"{value} has more decimals than 1/{scale} allows")
    return int(result)


def flatten_shares(shares: tuple[Share, ...], parent: int = -1, start: int = 0) -> list[tuple[str, int, Decimal]]:
    """(party, parent index, percent) in depth-first pre-order."""
    nodes: list[tuple[str, int, Decimal]] = []
    for share in shares:
        index = start + len(nodes)
        nodes.append((share.party, parent, share.percent))
        nodes.extend(flatten_shares(share.shares, index, index + 1))
    return nodes


@dataclass(slots=True)  # built per authorization, so not frozen: see switch.domain.models
class _Priced:
    schedule: FeeSchedule
    pricing: Any  # CORE.Pricing
    parties: tuple[str, ...]


class FeeEngine:
    """Quotes fees, shares and settlement amounts; build one per configuration.

    core: the arithmetic module (switch.money._fees_core or switch.money.fees_core); the
    default is the compiled one when available. The tests pass each explicitly.
    """

    def __init__(self, schedules: Sequence[FeeSchedule] = (), fx: FxTable | None = None, core: ModuleType = CORE):
        self._core = core
        self._priced = tuple(self._price(s) for s in schedules)
        self._fx = fx or FxTable()
        self._markup = scaled(self._fx.markup_percent, PERCENT_SCALE)
        self._matches: dict[tuple[str, str, str], int] = {}

    def quote(
        self,
        merchant_id: str,
        amount: Money,
        rail: str,
        *,
        card_country: str = "",
        merchant_country: str = "",
        settlement_currency: str = "",
    ) -> FeeQuote:
        request = QuoteRequest(merchant_id, amount, rail, card_country, merchant_country, settlement_currency)
        return self.quote_many([request])[0]

    def quote_many(self, requests: Sequence[QuoteRequest]) -> list[FeeQuote]:
        """One quote per request, in order; the core prices the whole batch in one call."""
        matched = [self._match(r) for r in requests]
        priced = [(r, p) for r, p in zip(requests, matched, strict=True) if p is not None]
        results: list[tuple[int, tuple[int, ...]]] = self._core.quote_many(
            [p.pricing for _, p in priced],
            [r.amount.minor_units for r, _ in priced],
            [r.cross_border for r, _ in priced],
        )
        by_request = iter(results)
        return [
            self._quote(r, p, next(by_request) if p is not None else (0, ()))
            for r, p in zip(requests, matched, strict=True)
        ]

    def convert(self, amount: Money, to_currency: str) -> Money:
        """amount in to_currency at the configured rate and markup; FxRateMissing when none is quoted."""
        if to_currency == amount.currency:
            return amount
        rate = self._fx.find(amount.currency, to_currency)
        if rate is None:
            raise FxRateMissing(f"no FX rate from {amount.currency} to {to_currency}")
        shift = currency.exponent(to_currency) - currency.exponent(amount.currency)
        units: int = self._core.convert(amount.minor_units, scaled(rate.rate, RATE_SCALE), self._markup, shift)
        return Money(units, to_currency)

    def _quote(self, request: QuoteRequest, priced: _Priced | None, result: tuple[int, tuple[int, ...]]) -> FeeQuote:
        fee, parts = result
        settlement = self.convert(request.amount, request.settlement_currency) if request.settlement_currency else None
        return FeeQuote(
            fee=Money(fee, request.amount.currency),
            shares=tuple(zip(priced.parties, parts, strict=True)) if priced else (),
            schedule=priced.schedule.name if priced else "",
            settlement=settlement,
        )

    def _match(self, request: QuoteRequest) -> _Priced | None:
        # First match depends only on these three, so it is looked up once per combination.
        key = (request.merchant_id, request.amount.currency, request.rail)
        index = self._matches.get(key)
        if index is None:
            index = next((i for i, p in enumerate(self._priced) if p.schedule.matches(*key)), -1)
            if len(self._matches) >= _MATCH_CACHE_LIMIT:
                self._matches.clear()
            self._matches[key] = index
        return None if index < 0 else self._priced[index]

    def _price(self, schedule: FeeSchedule) -> _Priced:
        tiers = [(INT64_MAX if t.up_to is None else t.up_to, t.percent, t.fixed) for t in schedule.tiers]
        if not schedule.tiers or schedule.tiers[-1].up_to is not None:
            tiers.append((INT64_MAX, schedule.percent, schedule.fixed))  # above every closed tier
        nodes = flatten_shares(schedule.shares)
        plan = (
            self._core.SharePlan([n[1] for n in nodes], [scaled(n[2], PERCENT_SCALE) for n in nodes]) if nodes else None
        )
        pricing = self._core.Pricing(
            [t[0] for t in tiers],
            [scaled(t[1], PERCENT_SCALE) for t in tiers],
            [t[2] for t in tiers],
            cross_border_percent=scaled(schedule.cross_border_percent, PERCENT_SCALE),
            min_fee=schedule.min_fee or 0,
            max_fee=INT64_MAX if schedule.max_fee is None else schedule.max_fee,
            rounding=schedule.rounding.code,
            plan=plan,
        )
        return _Priced(schedule, pricing, tuple(n[0] for n in nodes))
