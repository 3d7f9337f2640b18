"""ConfigError and the validators every section's parser shares: one wording for
the same mistake everywhere. The bottom of the config package: it imports no engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from switch.domain import currency


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


def no_unknown_keys(where: str, item: Mapping[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(item) - known)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key")


def optional_text(where: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{where}: must be a non-empty string")
    return value


def optional_currency(where: str, value: Any) -> str | None:
    if value is not None and not (isinstance(value, str) and currency.is_known(value)):
        raise ConfigError(f"{where}: unknown ISO 4217 currency {value!r}")
    return value


def unit_score(where: str, value: Any) -> float:
    """A score or threshold: a number above 0 and at most 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
        raise ConfigError(f"{where}: must be a number above 0 and at most 1")
    return float(value)
