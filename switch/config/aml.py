"""The [aml] table: which AML monitoring rules run, and their parameters.

    [aml]
    enabled = ["structuring", "fan_out", "fan_in", "spike", "dormant"]  # the default: all; [] runs none
    threshold_usd = 10000.0      # the reporting threshold structuring stays under
    near_ratio = 0.9             # near it: from 90 % of it, up to it (excluded)
    structuring_count = 3        # near-threshold payments in 24 h, this one included
    fan_out_destinations = 15    # distinct destinations a holder pays in 24 h, this one counted as new
    fan_in_sources = 10          # distinct holders a destination heard from in 24 h
    spike_ratio = 10.0           # a payment this many times the holder's 30-day mean...
    spike_min_history = 5        # ...with at least this many payments in 30 days...
    spike_min_usd = 3000.0       # ...and at least this much
    dormant_days = 90.0          # a holder silent this long...
    dormant_min_usd = 1000.0     # ...paying at least this much

Every key is optional; one left out keeps the default of switch.risk.aml.AmlPolicy (where
each default is justified). Amounts are in USD, major units. The rules raise alerts,
never declines: see switch.risk.aml.rules for each rule's exact definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from switch.config.checks import ConfigError, no_unknown_keys
from switch.risk.aml import RULES, AmlPolicy

_FIELDS = {field.name: field for field in fields(AmlPolicy)}
_KEYS = frozenset(_FIELDS)


def parse_aml(raw: Any) -> AmlPolicy | None:
    """The [aml] table, checked; None when there is none (no AML monitoring)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError("aml: must be a table")
    no_unknown_keys("aml", raw, _KEYS)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        values[key] = _enabled(value) if key == "enabled" else _number(key, value)
    try:
        return AmlPolicy(**values)
    except ValueError as error:  # the policy's own range checks name the field first
        raise ConfigError(f"aml.{error}") from None


def _enabled(value: Any) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(rule, str) for rule in value):
        raise ConfigError(f"aml.enabled: must be a list of rules ({', '.join(RULES)})")
    for rule in value:
        if rule not in RULES:
            raise ConfigError(f"aml.enabled: unknown rule {rule!r} (known: {', '.join(RULES)})")
    if len(set(value)) != len(value):
        raise ConfigError("aml.enabled: a rule is named twice")
    return frozenset(value)


def _number(key: str, value: Any) -> float | int:
    integer = _FIELDS[key].type == "int"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise ConfigError(f"aml.{key}: must be {'an integer' if integer else 'a number'}, not {value!r}")
    return value if integer else float(value)
