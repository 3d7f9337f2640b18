"""Routing rules: which routes may serve an authorization, in which order.

The [routing] table holds rules matched in file order (first match wins) on the
source (card or account), the account's rail, the card's BIN (first 6 digits)
and, through the BIN table, the card's country; on currency, amount and merchant.
A rule names its candidate routes in order: the first is tried first, the rest
are the failover order. Leading candidates may carry weights that split volume:
the first route is drawn among them by weight, the others follow in their order.

With no rule matching (or no [routing] at all) a card goes to the "card" route
and an account to the route named after its rail, so a switch needs no rules to run.

The card's BIN reaches this module as 6 digits the pipeline cuts inside the
tokenizer boundary; the PAN itself never comes here, and nothing here logs.
"""

from __future__ import annotations

import bisect
import enum
import itertools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from switch.domain.models import Account, Authorization
from switch.routing.breaker import BreakerSettings

CARD_ROUTE = "card"
_BIN = re.compile(r"[0-9]{6}")


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

    def find(self, number: int) -> BinRange | None:
        """The range holding this BIN, given as an integer."""
        index = bisect.bisect_right(self._lows, number) - 1
        if index < 0:
            return None
        found = self._ranges[index]
        return found if number <= found.high else None


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


def _cumulative(candidates: tuple[Candidate, ...]) -> tuple[int, ...]:
    totals: list[int] = []
    for candidate in candidates:
        if candidate.weight is None:
            break
        totals.append((totals[-1] if totals else 0) + candidate.weight)
    return tuple(totals)


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
        country = self._country(number)
        for rule in self.rules:
            if rule.matches(authorization, kind, number, country):
                return rule.ordered(self.rng)
        return [source.rail if isinstance(source, Account) else CARD_ROUTE]

    def card_country(self, card_bin: str | None) -> str:
        """The card's country from the BIN table; "" when there is no table, no BIN or no range."""
        return self._country(int(card_bin) if card_bin and _BIN.fullmatch(card_bin) else None) or ""

    def _country(self, number: int | None) -> str | None:
        if number is None or self.bin_table is None:
            return None
        found = self.bin_table.find(number)
        return found.country if found else None

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
