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


def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in text.split("*")), re.DOTALL)


@dataclass(frozen=True, slots=True)
class CallerRule:
    identity: str  # a pattern over the caller's identity
    roles: frozenset[Role]
    merchants: tuple[str, ...]  # patterns over merchant ids; empty: none


@dataclass(frozen=True, slots=True)
class Grant:
    """What one caller may do: its roles, and the merchants it may act for."""

    caller: str
    roles: frozenset[Role]
    merchants: tuple[re.Pattern[str], ...]
    every_merchant: bool

    def may_act_for(self, merchant_id: str) -> bool:
        return self.every_merchant or any(pattern.fullmatch(merchant_id) for pattern in self.merchants)


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
    return Grant(
        caller=caller,
        roles=rule.roles,
        merchants=tuple(_pattern(merchant) for merchant in rule.merchants),
        every_merchant="*" in rule.merchants,
    )
