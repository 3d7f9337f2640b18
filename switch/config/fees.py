"""The [[fee_schedule]] tables and the [fx] table, parsed into the fee engine's types;
ConfigError names the schedule and the key."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from switch.config.checks import ConfigError, no_unknown_keys, optional_currency, optional_text
from switch.domain import currency
from switch.domain.models import INT64_MAX
from switch.money.fees import (
    MAX_RATE,
    PERCENT_DECIMALS,
    RATE_DECIMALS,
    FeeSchedule,
    FxRate,
    FxTable,
    Rounding,
    Share,
    Tier,
    flatten_shares,
)

_HUNDRED = Decimal(100)
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")

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
    for party, _, _ in flatten_shares(tuple(shares)):
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
