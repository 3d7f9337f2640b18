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
  (switch.currency exponents), rounded half-even once.

Integer scales, shared with the arithmetic core: a percent is an integer in
units of 10^-4 percent (PERCENT_SCALE; "2.9" -> 29_000, i.e. parts per 10^6 of
the amount), a rate one in units of 10^-8 (RATE_SCALE). Any result that leaves
int64 raises MoneyOverflow. The core is switch._cext.fees when built, else its
twin switch.fees_core (SWITCH_NO_EXTENSIONS=1 forces the twin).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType, ModuleType
from typing import Any

from switch import currency, fees_core, native
from switch.config import ConfigError, no_unknown_keys, optional_currency, optional_text
from switch.models import INT64_MAX, Money

PERCENT_SCALE = fees_core.PERCENT_SCALE
RATE_SCALE = fees_core.RATE_SCALE
PERCENT_DECIMALS = 4
RATE_DECIMALS = 8
MAX_RATE = Decimal(fees_core.MAX_RATE_UNITS) / RATE_SCALE
_HUNDRED = Decimal(100)
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_MATCH_CACHE_LIMIT = 65_536

CORE: ModuleType = native.load("fees") or fees_core


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


@dataclass(slots=True)  # built per authorization, so not frozen: see switch.models
class FeeQuote:
    fee: Money  # in the amount's currency; zero when no schedule matched
    shares: tuple[tuple[str, int], ...]  # (party, minor units), depth-first; they sum to fee
    schedule: str  # the matching schedule's name; "" for none
    settlement: Money | None  # the amount converted to the settlement currency; None if none asked


@dataclass(slots=True)  # built per authorization, so not frozen: see switch.models
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


# --- parsing and validation -------------------------------------------------------------------------------------

_SCHEDULE_KEYS = frozenset(
    {"name", "rail", "merchant_id", "currency", "percent", "fixed", "min", "max", "rounding"}
    | {"cross_border_percent", "tiers", "shares"}
)
_TIER_KEYS = frozenset({"up_to", "percent", "fixed"})
_SHARE_KEYS = frozenset({"party", "percent", "shares"})


def parse_fee_schedules(raw: Sequence[Mapping[str, Any]]) -> tuple[FeeSchedule, ...]:
    """The [[fee_schedule]] tables, validated; ConfigError names schedule and key."""
    if not isinstance(raw, Sequence) or not all(isinstance(item, Mapping) for item in raw):
        raise ConfigError("fee_schedule: must be an array of tables ([[fee_schedule]])")
    schedules: list[FeeSchedule] = []
    for index, item in enumerate(raw):
        schedule = _schedule(index, item)
        if any(s.name == schedule.name for s in schedules):
            raise ConfigError(f"fee_schedule[{schedule.name}].name: duplicate schedule name")
        schedules.append(schedule)
    return tuple(schedules)


def parse_fx(raw: Mapping[str, Any]) -> FxTable:
    """The [fx] table: "BASE/QUOTE" = "rate" entries and an optional markup_percent."""
    if not isinstance(raw, Mapping):
        raise ConfigError("fx: must be a table")
    rates: list[FxRate] = []
    markup = Decimal(0)
    for key, value in raw.items():
        where = f"fx.{key}"
        if key == "markup_percent":
            markup = _decimal(where, value, PERCENT_DECIMALS)
            if not 0 <= markup < _HUNDRED:
                raise ConfigError(f"{where}: must be >= 0 and < 100")
        elif isinstance(key, str) and "/" in key:
            rates.append(_rate(where, key, value))
        else:
            raise ConfigError(f'{where}: unknown key (rates are written "BASE/QUOTE" = "rate")')
    return FxTable(rates=tuple(rates), markup_percent=markup)


def _schedule(index: int, item: Mapping[str, Any]) -> FeeSchedule:
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"fee_schedule[{index}].name: must be a non-empty string")
    where = f"fee_schedule[{name}]"
    no_unknown_keys(where, item, _SCHEDULE_KEYS)
    schedule = FeeSchedule(
        name=name,
        rail=optional_text(f"{where}.rail", item.get("rail")),
        merchant_id=optional_text(f"{where}.merchant_id", item.get("merchant_id")),
        currency=optional_currency(f"{where}.currency", item.get("currency")),
        percent=_percent(f"{where}.percent", item.get("percent", "0")),
        fixed=_minor_units(f"{where}.fixed", item.get("fixed", 0)),
        min_fee=None if item.get("min") is None else _minor_units(f"{where}.min", item["min"]),
        max_fee=None if item.get("max") is None else _minor_units(f"{where}.max", item["max"]),
        rounding=_rounding(f"{where}.rounding", item.get("rounding", "half_even")),
        cross_border_percent=_percent(f"{where}.cross_border_percent", item.get("cross_border_percent", "0")),
        tiers=_tiers(f"{where}.tiers", item.get("tiers", [])),
        shares=_top_shares(f"{where}.shares", item.get("shares")),
    )
    if schedule.min_fee is not None and schedule.max_fee is not None and schedule.min_fee > schedule.max_fee:
        raise ConfigError(f"{where}.min: must be <= max ({schedule.max_fee}), not {schedule.min_fee}")
    return schedule


def _tiers(where: str, raw: Any) -> tuple[Tier, ...]:
    tiers: list[Tier] = []
    for index, item in enumerate(_tables(where, raw)):
        here = f"{where}[{index}]"
        no_unknown_keys(here, item, _TIER_KEYS)
        up_to = None if item.get("up_to") is None else _minor_units(f"{here}.up_to", item["up_to"])
        if tiers and tiers[-1].up_to is None:
            raise ConfigError(f"{where}[{index - 1}].up_to: only the last tier may leave it out")
        previous = tiers[-1].up_to if tiers else None
        if up_to is not None and previous is not None and up_to <= previous:
            raise ConfigError(f"{here}.up_to: must be greater than {previous}")
        percent = _percent(f"{here}.percent", item.get("percent", "0"))
        tiers.append(Tier(up_to=up_to, percent=percent, fixed=_minor_units(f"{here}.fixed", item.get("fixed", 0))))
    return tuple(tiers)


def _top_shares(where: str, raw: Any) -> tuple[Share, ...]:
    if raw is None:
        return ()
    shares = _shares(where, raw, total=_HUNDRED)
    _unique_parties(where, shares)
    return shares


def _shares(where: str, raw: Any, total: Decimal | None) -> tuple[Share, ...]:
    """total: what the percents must sum to exactly; None: at most 100."""
    shares: list[Share] = []
    for index, item in enumerate(_tables(where, raw)):
        here = f"{where}[{index}]"
        no_unknown_keys(here, item, _SHARE_KEYS)
        party = item.get("party")
        if not isinstance(party, str) or not party:
            raise ConfigError(f"{here}.party: must be a non-empty string")
        percent = _percent(f"{here}.percent", item.get("percent"))
        children = _shares(f"{here}.shares", item.get("shares", []), total=None)
        shares.append(Share(party=party, percent=percent, shares=children))
    summed = sum((s.percent for s in shares), Decimal(0))
    if total is not None and summed != total:
        raise ConfigError(f"{where}: percents must sum to {total}, not {_show(summed)}")
    if total is None and summed > _HUNDRED:
        raise ConfigError(f"{where}: percents must sum to at most 100, not {_show(summed)}")
    return tuple(shares)


def _unique_parties(where: str, shares: Iterable[Share]) -> None:
    seen: set[str] = set()
    for party, _, _ in _flatten(tuple(shares)):
        if party in seen:
            raise ConfigError(f"{where}: party {party!r} appears more than once")
        seen.add(party)


def _rate(where: str, key: str, value: Any) -> FxRate:
    base, _, quote = key.partition("/")
    for code in (base, quote):
        if not currency.is_known(code):
            raise ConfigError(f"{where}: unknown currency {code!r}")
    if base == quote:
        raise ConfigError(f"{where}: a rate needs two different currencies")
    rate = _decimal(where, value, RATE_DECIMALS)
    if not 0 < rate <= MAX_RATE:
        raise ConfigError(f"{where}: must be > 0 and <= {MAX_RATE}")
    return FxRate(base=base, quote=quote, rate=rate)


def _percent(where: str, value: Any) -> Decimal:
    percent = _decimal(where, value, PERCENT_DECIMALS)
    if not 0 <= percent <= _HUNDRED:
        raise ConfigError(f"{where}: must be between 0 and 100, not {value}")
    return percent


def _decimal(where: str, value: Any, decimals: int) -> Decimal:
    # Floats are refused: TOML's 2.9 is a binary fraction, not the 2.9 the operator wrote.
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise ConfigError(f'{where}: must be a decimal string such as "2.9"')
    if "." in value and len(value.partition(".")[2]) > decimals:
        raise ConfigError(f"{where}: at most {decimals} decimals, not {value}")
    return Decimal(value)


def _minor_units(where: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= INT64_MAX:
        raise ConfigError(f"{where}: must be an integer of minor units, 0 to {INT64_MAX}")
    return value


def _rounding(where: str, value: Any) -> Rounding:
    try:
        return Rounding(value)
    except ValueError:
        raise ConfigError(f"{where}: must be one of {', '.join(r.value for r in Rounding)}") from None


def _tables(where: str, raw: Any) -> list[Mapping[str, Any]]:
    if not isinstance(raw, list) or not all(isinstance(item, Mapping) for item in raw):
        raise ConfigError(f"{where}: must be an array of tables")
    return raw


def _show(percent: Decimal) -> str:
    """90.50 -> "90.5", 90.0 -> "90": how an operator would write it."""
    text = f"{percent:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


# --- the engine -------------------------------------------------------------------------------------------------


def scaled(value: Decimal, scale: int) -> int:
    """value x scale as an exact integer; ValueError when it has more decimals than the scale holds."""
    result = value * scale
    if result != result.to_integral_value():
        raise ValueError(f"{value} has more decimals than 1/{scale} allows")
    return int(result)


def _flatten(shares: tuple[Share, ...], parent: int = -1, start: int = 0) -> list[tuple[str, int, Decimal]]:
    """(party, parent index, percent) in depth-first pre-order."""
    nodes: list[tuple[str, int, Decimal]] = []
    for share in shares:
        index = start + len(nodes)
        nodes.append((share.party, parent, share.percent))
        nodes.extend(_flatten(share.shares, index, index + 1))
    return nodes


@dataclass(slots=True)  # built per authorization, so not frozen: see switch.models
class _Priced:
    schedule: FeeSchedule
    pricing: Any  # CORE.Pricing
    parties: tuple[str, ...]


class FeeEngine:
    """Quotes fees, shares and settlement amounts; build one per configuration.

    core: the arithmetic module (switch._cext.fees or switch.fees_core); the
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
        nodes = _flatten(schedule.shares)
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
