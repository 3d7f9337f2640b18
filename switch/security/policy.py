"""Roles and merchant scopes: which caller may make which call, for which merchants.

A policy is an ordered list of rules; the first whose identity pattern matches the
caller grants its roles and merchants. A pattern's `*` matches any run of characters
(`spiffe://wallet.example/payments/*`, `m-br-*`); nothing else is special. A caller
no rule matches has no grant: every call is refused. Lookups are cached per caller,
so the per-call cost is one dictionary read.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass


class Role(enum.Enum):
    AUTHORIZE = "authorize"  # Authorize, AuthorizeBatch, AuthorizeStream
    OPERATE = "operate"  # Capture, Void, Refund
    READ = "read"  # GetTransaction
    QUOTE = "quote"  # QuoteFee
    TOKENIZE = "tokenize"  # Tokens.Tokenize
    DETOKENIZE = "detokenize"  # the one way back to a card number
    ADMIN = "admin"  # operating the switch itself
    COMPLIANCE = "compliance"  # ListAlerts: what risk flagged


def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in text.split("*")), re.DOTALL)


@dataclass(frozen=True, slots=True)
class CallerRule:
    identity: str  # a pattern over the caller's identity
    roles: frozenset[Role]
    merchants: tuple[str, ...]  # patterns over merchant ids; empty: none


@dataclass(frozen=True, slots=True)
class Grant:
    """What one caller may do: its roles, and the merchants it may act for (exact ids,
    id prefixes from patterns ending in `*`, and other patterns)."""

    caller: str
    roles: frozenset[Role]
    every_merchant: bool
    merchants: frozenset[str]
    prefixes: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...]

    def may_act_for(self, merchant_id: str) -> bool:
        # Checked for every item of a batch: set and prefix tests first, regexes last.
        return (
            self.every_merchant
            or merchant_id in self.merchants
            or merchant_id.startswith(self.prefixes)
            or any(pattern.fullmatch(merchant_id) for pattern in self.patterns)
        )


_CACHE_LIMIT = 4096  # distinct callers remembered; past it the cache starts again


class Policy:
    def __init__(self, rules: Iterable[CallerRule]) -> None:
        self.rules = tuple(rules)
        self._compiled = [(_pattern(rule.identity), rule) for rule in self.rules]
        self._grants: dict[str, Grant | None] = {}

    def grant(self, caller: str) -> Grant | None:
        """The caller's grant: the first rule whose pattern matches; None when none does."""
        try:
            return self._grants[caller]
        except KeyError:
            pass
        found = next((rule for pattern, rule in self._compiled if pattern.fullmatch(caller)), None)
        grant = None if found is None else _grant(caller, found)
        if len(self._grants) >= _CACHE_LIMIT:
            self._grants.clear()
        self._grants[caller] = grant
        return grant


def _grant(caller: str, rule: CallerRule) -> Grant:
    wild = [merchant for merchant in rule.merchants if "*" in merchant]
    prefixes = tuple(m[:-1] for m in wild if m.endswith("*") and m.count("*") == 1 and len(m) > 1)
    return Grant(
        caller=caller,
        roles=rule.roles,
        every_merchant="*" in rule.merchants,
        merchants=frozenset(m for m in rule.merchants if "*" not in m),
        prefixes=prefixes,
        patterns=tuple(_pattern(m) for m in wild if m != "*" and m[:-1] not in prefixes),
    )
