"""The [kyc] table: the tiers, their caps per currency, and the tier of an unclassified holder.

    [kyc]
    default_tier = "class_i"          # a holder compliance has not classified (SetHolderTier)

    [kyc.tiers.class_i.CNY]           # caps in minor units; a cap left out is no cap
    lifetime = 100000                 # 1,000.00 CNY over the holder's lifetime

    [kyc.tiers.class_ii.CNY]
    yearly = 10000000                 # 100,000.00 CNY a calendar year (UTC)

    [kyc.tiers.class_iii.CNY]
    per_transaction = 5000000
    daily = 5000000
    yearly = 20000000

A currency a tier does not name is not capped by it. Tier names are lower-case
letters, digits and underscores: the state store keeps them beside a sequence number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from switch.config.checks import ConfigError, no_unknown_keys, optional_currency
from switch.risk.kyc import CAPS, KycPolicy, TierLimits

_KEYS = frozenset({"default_tier", "tiers"})
_TIER = re.compile(r"[a-z0-9_]{1,32}")
_MAX_CAP = 2**53  # the Redis script compares caps as doubles: exact below this


def parse_kyc(raw: Any) -> KycPolicy | None:
    """The [kyc] table, checked; None when there is none (no tiers, no caps)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError("kyc: must be a table")
    no_unknown_keys("kyc", raw, _KEYS)
    tiers = raw.get("tiers")
    if not isinstance(tiers, Mapping) or not tiers:
        raise ConfigError("kyc.tiers: must be a table of at least one tier")
    parsed = {_tier_name(name): _tier(f"kyc.tiers.{name}", caps) for name, caps in tiers.items()}
    default = raw.get("default_tier")
    if not isinstance(default, str) or default not in parsed:
        raise ConfigError(f"kyc.default_tier: must name one of the tiers ({', '.join(sorted(parsed))})")
    return KycPolicy(default, MappingProxyType(parsed))


def _tier_name(name: str) -> str:
    if not _TIER.fullmatch(name):
        raise ConfigError(f"kyc.tiers.{name}: a tier's name is 1 to 32 of a-z, 0-9 and _")
    return name


def _tier(where: str, raw: Any) -> Mapping[str, TierLimits]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a table of currencies")
    by_currency = {}
    for code, caps in raw.items():
        at = f"{where}.{code}"
        optional_currency(at, code)
        if not isinstance(caps, Mapping):
            raise ConfigError(f"{at}: must be a table of caps ({', '.join(CAPS)})")
        no_unknown_keys(at, caps, frozenset(CAPS))
        by_currency[code] = TierLimits(**{cap: _cap(f"{at}.{cap}", value) for cap, value in caps.items()})
    return MappingProxyType(by_currency)


def _cap(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_CAP:
        raise ConfigError(f"{where}: must be an amount in minor units, 0 to 2**53 - 1")
    return value
