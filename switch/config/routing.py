"""The [routing] table, its BIN table file and its [routing.breaker] settings, parsed into
the router's types; ConfigError names the key, or the file and line."""

from __future__ import annotations

import csv
import itertools
import random
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from switch.config.checks import ConfigError, no_unknown_keys, optional_currency, optional_text
from switch.routing.breaker import BreakerSettings
from switch.routing.rules import BinRange, BinTable, Candidate, OrderBy, RoutingTable, Rule, SourceKind

_BIN = re.compile(r"[0-9]{6}")
_BIN_HEADER = ["low", "high", "scheme", "country", "type"]
_ROUTING_KEYS = frozenset({"bin_table", "order_by", "rules", "breaker"})
_RULE_KEYS = frozenset(
    {"name", "source", "rail", "bin_ranges", "card_country", "currency", "min_amount", "max_amount", "merchant_id"}
    | {"candidates"}
)
_CANDIDATE_KEYS = frozenset({"route", "weight"})


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


def check_routes(table: RoutingTable, known: Collection[str]) -> None:
    """ConfigError naming the first candidate whose route has no adapter."""
    for index, rule in enumerate(table.rules):
        for position, candidate in enumerate(rule.candidates):
            if candidate.route not in known:
                where = f"routing.rules[{index}].candidates[{position}].route"
                raise ConfigError(f"{where}: unknown route {candidate.route!r} (rule {rule.name})")


_SETTING_KEYS = {
    "failures": "failure_threshold",
    "window": "window",
    "timeout_rate": "max_timeout_rate",
    "cool_down_seconds": "cool_down_seconds",
    "probes": "half_open_probes",
}


def parse_breaker_settings(raw: Mapping[str, Any], where: str = "routing.breaker") -> BreakerSettings:
    """The [routing.breaker] table: failures, window, timeout_rate, cool_down_seconds, probes."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a table")
    unknown = sorted(set(raw) - set(_SETTING_KEYS))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key")
    defaults = BreakerSettings()
    return BreakerSettings(
        failure_threshold=_count(f"{where}.failures", raw.get("failures", defaults.failure_threshold)),
        window=_count(f"{where}.window", raw.get("window", defaults.window)),
        max_timeout_rate=_number(f"{where}.timeout_rate", raw.get("timeout_rate", defaults.max_timeout_rate), 1.0),
        cool_down_seconds=_number(
            f"{where}.cool_down_seconds", raw.get("cool_down_seconds", defaults.cool_down_seconds), None
        ),
        half_open_probes=_count(f"{where}.probes", raw.get("probes", defaults.half_open_probes)),
    )


def _count(where: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}: must be an integer >= 1")
    return value


def _number(where: str, value: Any, upper: float | None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}: must be a number >= 0")
    if upper is not None and value > upper:
        raise ConfigError(f"{where}: must be <= {upper:g}")
    return float(value)
