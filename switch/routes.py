"""Routing rules: which routes may serve an authorization, in which order.

The [routing] table holds rules matched in file order (first match wins) on the
source (card or account), the account's rail, the card's BIN (first 6 digits)
and, through the BIN table, the card's country; on currency, amount and merchant.
A rule names its candidate routes in order: the first is tried first, the rest
are the failover order. Leading candidates may carry weights that split volume:
the first route is drawn among them by weight, the others follow in their order.

With no rule matching (or no [routing] at all) a card goes to the "card" route
and an account to the route named after its rail: the behaviour of the router
before rules existed.

The card's BIN reaches this module as 6 digits the pipeline cuts inside the
tokenizer boundary; the PAN itself never comes here, and nothing here logs.
"""

from __future__ import annotations

import bisect
import csv
import enum
import itertools
import random
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switch.breaker import BreakerSettings, parse_breaker_settings
from switch.config import ConfigError, no_unknown_keys, optional_currency, optional_text
from switch.models import Account, Authorization

CARD_ROUTE = "card"
_BIN = re.compile(r"[0-9]{6}")
_BIN_HEADER = ["low", "high", "scheme", "country", "type"]
_ROUTING_KEYS = frozenset({"bin_table", "order_by", "rules", "breaker"})
_RULE_KEYS = frozenset(
    {"name", "source", "rail", "bin_ranges", "card_country", "currency", "min_amount", "max_amount", "merchant_id"}
    | {"candidates"}
)
_CANDIDATE_KEYS = frozenset({"route", "weight"})


class OrderBy(enum.Enum):
    RULES = "rules"  # the rule's order (with its weighted first pick)
    SUCCESS_RATE = "success_rate"  # highest recent success rate first
    COST = "cost"  # cheapest fee first


class SourceKind(enum.Enum):
    CARD = "card"  # a card or a token standing for one
    ACCOUNT = "account"


# --- the BIN table ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BinRange:
    low: int
    high: int  # inclusive
    scheme: str
    country: str
    card_type: str


class BinTable:
    """Non-overlapping BIN ranges, looked up by bisection."""

    def __init__(self, ranges: Sequence[BinRange]) -> None:
        self._ranges = sorted(ranges, key=lambda r: r.low)
        self._lows = [r.low for r in self._ranges]
        for before, after in itertools.pairwise(self._ranges):
            if after.low <= before.high:
                raise ValueError(f"{after.low:06d}-{after.high:06d} overlaps {before.low:06d}-{before.high:06d}")

    def __len__(self) -> int:
        return len(self._ranges)

    def lookup(self, card_bin: str) -> BinRange | None:
        """The range holding these 6 digits; None when no range does or it is not 6 digits."""
        if not _BIN.fullmatch(card_bin):
            return None
        return self.find(int(card_bin))

    def find(self, number: int) -> BinRange | None:
        """The range holding this BIN, given as an integer."""
        index = bisect.bisect_right(self._lows, number) - 1
        if index < 0:
            return None
        found = self._ranges[index]
        return found if number <= found.high else None


def load_bin_table(path: str | Path) -> BinTable:
    """Reads `low,high,scheme,country,type` rows (a header first); errors name the file and line."""
    try:
        with Path(path).open(newline="") as file:
            rows = list(csv.reader(file))
    except OSError as exc:
        raise ConfigError(f"routing.bin_table: {path}: {exc.strerror or exc}") from exc
    if not rows or [cell.strip() for cell in rows[0]] != _BIN_HEADER:
        raise ConfigError(f"{path} line 1: the header must be {','.join(_BIN_HEADER)}")
    ranges: list[tuple[int, BinRange]] = []
    for number, row in enumerate(rows[1:], start=2):
        if row and any(cell.strip() for cell in row):
            ranges.append((number, _bin_row(f"{path} line {number}", row)))
    _no_overlap(str(path), ranges)
    return BinTable([r for _, r in ranges])


def _bin_row(where: str, row: list[str]) -> BinRange:
    if len(row) != len(_BIN_HEADER):
        raise ConfigError(f"{where}: expected {len(_BIN_HEADER)} columns, found {len(row)}")
    low, high, scheme, country, card_type = (cell.strip() for cell in row)
    for value in (low, high):
        if not _BIN.fullmatch(value):
            raise ConfigError(f"{where}: {value!r} is not a 6-digit BIN")
    if int(low) > int(high):
        raise ConfigError(f"{where}: low {low} is above high {high}")
    if not re.fullmatch(r"[A-Z]{2}", country):
        raise ConfigError(f"{where}: country {country!r} is not an ISO 3166 alpha-2 code")
    return BinRange(int(low), int(high), scheme, country, card_type)


def _no_overlap(path: str, ranges: list[tuple[int, BinRange]]) -> None:
    ordered = sorted(ranges, key=lambda item: item[1].low)
    for (before_line, before), (line, after) in itertools.pairwise(ordered):
        if after.low <= before.high:
            first, second = sorted((before_line, line))
            raise ConfigError(f"{path} line {second}: its range overlaps line {first}")


# --- rules ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    route: str
    weight: int | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    candidates: tuple[Candidate, ...]
    source: SourceKind | None = None
    rail: str | None = None
    bin_ranges: tuple[tuple[int, int], ...] = ()
    card_country: str | None = None
    currency: str | None = None
    min_amount: int | None = None
    max_amount: int | None = None
    merchant_id: str | None = None
    # Cumulative weights of the leading weighted candidates, for one draw per pick.
    _cumulative: tuple[int, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cumulative", _cumulative(self.candidates))

    def matches(self, authorization: Authorization, kind: SourceKind, number: int | None, country: str | None) -> bool:
        """number: the BIN as an integer (None: not a card, or none given); country: the card's, from the BIN table."""
        source = authorization.source
        amount = authorization.amount
        return (
            self.source in (None, kind)
            and (self.rail is None or (isinstance(source, Account) and source.rail == self.rail))
            and self.currency in (None, amount.currency)
            and self.merchant_id in (None, authorization.merchant_id)
            and (self.min_amount is None or amount.minor_units >= self.min_amount)
            and (self.max_amount is None or amount.minor_units <= self.max_amount)
            and (not self.bin_ranges or (number is not None and _in_ranges(number, self.bin_ranges)))
            and self.card_country in (None, country)
        )

    def ordered(self, rng: random.Random) -> list[str]:
        """The candidates in try order: the first drawn by weight, the others as written."""
        routes = [c.route for c in self.candidates]
        if len(self._cumulative) > 1:
            drawn = bisect.bisect_right(self._cumulative, rng.randrange(self._cumulative[-1]))
            routes.insert(0, routes.pop(drawn))
        return routes


def _in_ranges(number: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= number <= high for low, high in ranges)


@dataclass(frozen=True, slots=True)
class RoutingTable:
    rules: tuple[Rule, ...] = ()
    bin_table: BinTable | None = None
    order_by: OrderBy = OrderBy.RULES
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def candidates(self, authorization: Authorization, card_bin: str | None) -> list[str]:
        """The ordered candidate routes: the first matching rule's, else the default route."""
        source = authorization.source
        kind = SourceKind.ACCOUNT if isinstance(source, Account) else SourceKind.CARD
        number = int(card_bin) if kind is SourceKind.CARD and card_bin and _BIN.fullmatch(card_bin) else None
        country: str | None = None
        if number is not None and self.bin_table is not None:
            found = self.bin_table.find(number)
            country = found.country if found else None
        for rule in self.rules:
            if rule.matches(authorization, kind, number, country):
                return rule.ordered(self.rng)
        return [source.rail if isinstance(source, Account) else CARD_ROUTE]

    def routes_all(self, kind: SourceKind, rail: str | None = None) -> bool:
        """Whether a rule takes every authorization of this source kind (and rail), whatever
        its amount, merchant, currency or BIN: the default route is then never used."""
        return any(
            rule.source in (None, kind)
            and rule.rail in (None, rail)
            and not rule.bin_ranges
            and rule.card_country is rule.currency is rule.merchant_id is None
            and rule.min_amount is rule.max_amount is None
            for rule in self.rules
        )

    def check_routes(self, known: Collection[str]) -> None:
        """ConfigError naming the first candidate whose route has no adapter."""
        for index, rule in enumerate(self.rules):
            for position, candidate in enumerate(rule.candidates):
                if candidate.route not in known:
                    where = f"routing.rules[{index}].candidates[{position}].route"
                    raise ConfigError(f"{where}: unknown route {candidate.route!r} (rule {rule.name})")


# --- parsing ----------------------------------------------------------------------------------------------------


def parse_routing(raw: Mapping[str, Any], bin_table: BinTable | None, rng: random.Random | None = None) -> RoutingTable:
    """The [routing] table, validated. bin_table: loaded by the caller from routing.bin_table
    (a path it resolves); rng: the weighted draws' source (seed it in tests)."""
    if not isinstance(raw, Mapping):
        raise ConfigError("routing: must be a table")
    no_unknown_keys("routing", raw, _ROUTING_KEYS)
    path = raw.get("bin_table")
    if path is not None and (not isinstance(path, str) or not path):
        raise ConfigError("routing.bin_table: must be a non-empty string (a CSV file's path)")
    try:
        order_by = OrderBy(raw.get("order_by", "rules"))
    except ValueError:
        raise ConfigError(f"routing.order_by: must be one of {', '.join(o.value for o in OrderBy)}") from None
    items = raw.get("rules", [])
    if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
        raise ConfigError("routing.rules: must be an array of tables ([[routing.rules]])")
    rules = tuple(_rule(f"routing.rules[{i}]", item, bin_table) for i, item in enumerate(items))
    _unique_names(rules)
    return RoutingTable(
        rules=rules,
        bin_table=bin_table,
        order_by=order_by,
        breaker=parse_breaker_settings(raw.get("breaker", {})),
        rng=rng or random.Random(),
    )


def _rule(where: str, item: Mapping[str, Any], bin_table: BinTable | None) -> Rule:
    no_unknown_keys(where, item, _RULE_KEYS)
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.name: must be a non-empty string")
    source = _source(f"{where}.source", item.get("source"))
    card_country = _country(f"{where}.card_country", item.get("card_country"))
    if card_country is not None and bin_table is None:
        raise ConfigError(f"{where}.card_country: needs routing.bin_table to know a card's country")
    min_amount = _amount(f"{where}.min_amount", item.get("min_amount"))
    max_amount = _amount(f"{where}.max_amount", item.get("max_amount"))
    if min_amount is not None and max_amount is not None and min_amount > max_amount:
        raise ConfigError(f"{where}.min_amount: must be <= max_amount ({max_amount}), not {min_amount}")
    candidates = _candidates(f"{where}.candidates", item.get("candidates"))
    rule = Rule(
        name=name,
        candidates=candidates,
        source=source,
        rail=optional_text(f"{where}.rail", item.get("rail")),
        bin_ranges=_bin_ranges(f"{where}.bin_ranges", item.get("bin_ranges", [])),
        card_country=card_country,
        currency=optional_currency(f"{where}.currency", item.get("currency")),
        min_amount=min_amount,
        max_amount=max_amount,
        merchant_id=optional_text(f"{where}.merchant_id", item.get("merchant_id")),
    )
    _consistent_source(where, rule)
    return rule


def _consistent_source(where: str, rule: Rule) -> None:
    # A rule that can never match is a configuration mistake, not a silent no-op.
    if rule.rail is not None and rule.source is SourceKind.CARD:
        raise ConfigError(f"{where}.rail: only accounts have a rail, but source is 'card'")
    card_only = "bin_ranges" if rule.bin_ranges else "card_country" if rule.card_country else None
    if card_only and (rule.source is SourceKind.ACCOUNT or rule.rail is not None):
        raise ConfigError(f"{where}.{card_only}: only cards have one, but the rule matches accounts")


def _candidates(where: str, raw: Any) -> tuple[Candidate, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: must be a non-empty array of {{ route = ..., weight = ... }}")
    candidates: list[Candidate] = []
    for index, item in enumerate(raw):
        here = f"{where}[{index}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{here}: must be a table {{ route = ..., weight = ... }}")
        no_unknown_keys(here, item, _CANDIDATE_KEYS)
        route = optional_text(f"{here}.route", item.get("route"))
        if route is None:
            raise ConfigError(f"{here}.route: must be a non-empty string")
        if any(c.route == route for c in candidates):
            raise ConfigError(f"{here}.route: {route!r} appears more than once")
        weight = item.get("weight")
        if weight is not None:
            if not isinstance(weight, int) or isinstance(weight, bool) or weight < 1:
                raise ConfigError(f"{here}.weight: must be an integer >= 1")
            if candidates and candidates[-1].weight is None:
                raise ConfigError(f"{here}.weight: only the leading candidates may have weights")
        candidates.append(Candidate(route, weight))
    return tuple(candidates)


def _cumulative(candidates: tuple[Candidate, ...]) -> tuple[int, ...]:
    totals: list[int] = []
    for candidate in candidates:
        if candidate.weight is None:
            break
        totals.append((totals[-1] if totals else 0) + candidate.weight)
    return tuple(totals)


def _bin_ranges(where: str, raw: Any) -> tuple[tuple[int, int], ...]:
    if not isinstance(raw, list):
        raise ConfigError(f'{where}: must be an array of "NNNNNN-NNNNNN" strings')
    ranges: list[tuple[int, int]] = []
    for index, value in enumerate(raw):
        low, _, high = value.partition("-") if isinstance(value, str) else ("", "", "")
        high = high or low  # "411111" is the range of one BIN
        if not (_BIN.fullmatch(low) and _BIN.fullmatch(high)):
            raise ConfigError(f'{where}[{index}]: must be "NNNNNN-NNNNNN" (6-digit BINs), not {value!r}')
        if int(low) > int(high):
            raise ConfigError(f"{where}[{index}]: {low} is above {high}")
        ranges.append((int(low), int(high)))
    return tuple(ranges)


def _source(where: str, value: Any) -> SourceKind | None:
    if value is None:
        return None
    try:
        return SourceKind(value)
    except ValueError:
        raise ConfigError(f"{where}: must be one of 'card', 'account'") from None


def _country(where: str, value: Any) -> str | None:
    if value is not None and not (isinstance(value, str) and re.fullmatch(r"[A-Z]{2}", value)):
        raise ConfigError(f"{where}: must be an ISO 3166 alpha-2 code such as 'BR'")
    return value


def _amount(where: str, value: Any) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ConfigError(f"{where}: must be an integer of minor units >= 0")
    return value


def _unique_names(rules: tuple[Rule, ...]) -> None:
    seen: set[str] = set()
    for index, rule in enumerate(rules):
        if rule.name in seen:
            raise ConfigError(f"routing.rules[{index}].name: duplicate rule name {rule.name!r}")
        seen.add(rule.name)
