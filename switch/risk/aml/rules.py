"""The AML rules: which of a payment's behaviours compliance wants to look at.

Each rule reads the holder's (and the destination's) Activity before the payment and the
payment's amount in USD, and raises an alert kind (ALERTS, in this fixed order):

- aml_structuring: the payment is near the reporting threshold (in [near_ratio *
  threshold_usd, threshold_usd)) and near_threshold_24h >= structuring_count - 1: with
  this one, structuring_count such payments within 24 h.
- aml_fan_out: destinations_24h >= fan_out_destinations - 1. Activity does not say whether
  this payment's destination is among those already paid, so this payment counts as a new
  one: once a holder has paid fan_out_destinations - 1 distinct destinations in 24 h,
  each further payment alerts (a repeat as well as a new one).
- aml_fan_in: sources_24h >= fan_in_sources: the destination already heard from that
  many distinct holders in 24 h (this payment's holder may be one of them).
- aml_spike: count_30d >= spike_min_history, amount_usd >= spike_min_usd and amount_usd
  >= spike_ratio * mean_30d_usd.
- aml_dormant: not first, idle_seconds >= dormant_days days and amount_usd >= dormant_min_usd.

The defaults keep the legitimate traffic of switch.risk.model.synthetic silent
(tests/risk_aml) and catch the scenarios of switch.risk.aml.scenarios.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from itertools import compress, product

from switch.risk.activity import DAY, DISTINCT_KEPT, Activity

RULES: tuple[str, ...] = ("structuring", "fan_out", "fan_in", "spike", "dormant")
ALERTS: tuple[str, ...] = tuple(f"aml_{rule}" for rule in RULES)

# Every combination of alerts, indexed by a bit mask (bit i: ALERTS[i]): evaluate allocates
# nothing per payment, and the payments that raise nothing share the one empty tuple.
_COMBINATIONS: tuple[tuple[str, ...], ...] = tuple(
    tuple(compress(ALERTS, reversed(bits))) for bits in product((False, True), repeat=len(ALERTS))
)


@dataclass(frozen=True, slots=True)
class AmlPolicy:
    """The rules' parameters (USD amounts in major units); a rule left out of `enabled` never alerts."""

    enabled: frozenset[str] = frozenset(RULES)
    # The US currency transaction report threshold (31 CFR 1010.311), the classic target of structuring.
    threshold_usd: float = 10_000.0
    # Near: within 10 % below it ($9,000 to $9,999.99), where structured cash deposits cluster.
    near_ratio: float = 0.9
    # Three near-threshold payments in 24 h: two can be chance, a third is a pattern.
    structuring_count: int = 3
    # Fifteen destinations in 24 h: legitimate synthetic holders reach at most 9 (2 to 6 regulars, the odd new one).
    fan_out_destinations: int = 15
    # Ten payers in 24 h: a synthetic destination hears from at most 6 legitimate ones, a mule ring from 10 to 30.
    fan_in_sources: int = 10
    # Ten times the 30-day mean: a common monitoring multiple (legitimate synthetic holders reach
    # 18 times on small amounts, which spike_min_usd leaves alone).
    spike_ratio: float = 10.0
    # Five payments in 30 days: a mean from fewer is too noisy to compare against.
    spike_min_history: int = 5
    # $3,000: above every legitimate synthetic payment (about $2,300 at most); below it a
    # tenfold payment is an occasional larger purchase.
    spike_min_usd: float = 3_000.0
    # 90 days idle: three times the 30-day window, the usual start of "inactive" in bank monitoring.
    dormant_days: float = 90.0
    # $1,000: a small payment after a silence is a returning customer; a large one, a reactivated mule.
    dormant_min_usd: float = 1_000.0

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, frozenset):
            raise ValueError(f"enabled: must be a frozenset of rules, not {self.enabled!r}")
        unknown = sorted(set(self.enabled) - set(RULES))
        if unknown:
            raise ValueError(f"enabled: unknown rule {unknown[0]!r} (known: {', '.join(RULES)})")
        for name, low, high, bounds in _RANGES:
            value: float = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, _TYPES[name]) or not _within(value, low, high, bounds):
                raise ValueError(f"{name}: {_describe(name, low, high, bounds)}, not {value!r}")


# Each number's range, its bounds written as in mathematics: "(]" excludes low, includes high.
_RANGES: tuple[tuple[str, float, float, str], ...] = (
    ("threshold_usd", 0.0, math.inf, "()"),
    ("near_ratio", 0.0, 1.0, "()"),
    ("structuring_count", 1, 1_000, "[]"),
    ("fan_out_destinations", 1, DISTINCT_KEPT, "[]"),  # the store counts no further
    ("fan_in_sources", 1, DISTINCT_KEPT, "[]"),
    ("spike_ratio", 1.0, math.inf, "()"),
    ("spike_min_history", 1, 100_000, "[]"),
    ("spike_min_usd", 0.0, math.inf, "[)"),
    ("dormant_days", 0.0, math.inf, "()"),
    ("dormant_min_usd", 0.0, math.inf, "[)"),
)
_TYPES: dict[str, type | tuple[type, ...]] = {
    field.name: int if field.type == "int" else (int, float) for field in fields(AmlPolicy) if field.name != "enabled"
}


def _within(value: float, low: float, high: float, bounds: str) -> bool:
    above = low < value if bounds[0] == "(" else low <= value
    below = value < high if bounds[1] == ")" else value <= high
    return math.isfinite(value) and above and below


def _describe(name: str, low: float, high: float, bounds: str) -> str:
    kind = "an integer" if _TYPES[name] is int else "a finite number"
    if high == math.inf:
        return f"must be {kind} {'>' if bounds[0] == '(' else '>='} {low:g}"
    return f"must be {kind} in {bounds[0]}{low:g}, {high:g}{bounds[1]}"


class AmlRules:
    """The rules of one policy, run once per batch over its payments."""

    __slots__ = ("_near_high", "_near_low", "policy")

    def __init__(self, policy: AmlPolicy) -> None:
        self.policy = policy
        self._near_low = policy.near_ratio * policy.threshold_usd
        self._near_high = policy.threshold_usd

    def near_threshold(self, amount_usd: float) -> bool:
        """The amount is just below the reporting threshold: in [near_ratio * threshold_usd, threshold_usd)."""
        return self._near_low <= amount_usd < self._near_high

    def evaluate(self, items: Sequence[tuple[Activity, float]]) -> list[tuple[str, ...]]:
        """For each (Activity before a payment, its amount in USD), the alert kinds it raises,
        in ALERTS order; () when none."""
        return [_COMBINATIONS[mask] for mask in self.masks(items)]

    @staticmethod
    def alerts(mask: int) -> tuple[str, ...]:
        """The alert kinds of a mask (bit i: ALERTS[i]), in ALERTS order."""
        return _COMBINATIONS[mask]

    @property
    def numbers(self) -> tuple[int, float, float, float, float, float, float, float, float, float, float]:
        """What the rules compare, as the compiled twin of masks (switch.risk._assess) reads it:
        the enabled rules (bit i: RULES[i]), the near-threshold band's low and high ends, the
        near-threshold payments, destinations and sources that alert, the spike's ratio,
        history and least amount, the dormant idle seconds and least amount."""
        policy = self.policy
        enabled = sum(1 << bit for bit, rule in enumerate(RULES) if rule in policy.enabled)
        return (
            enabled,
            self._near_low,
            self._near_high,
            float(policy.structuring_count - 1),
            float(policy.fan_out_destinations - 1),
            float(policy.fan_in_sources),
            policy.spike_ratio,
            float(policy.spike_min_history),
            policy.spike_min_usd,
            policy.dormant_days * DAY,
            policy.dormant_min_usd,
        )

    def masks(self, items: Sequence[tuple[Activity, float]]) -> list[int]:
        """For each (Activity before a payment, its amount in USD), the alerts it raises as a
        mask, bit i for ALERTS[i]."""
        enabled, near_low, near_high, near_before, destinations_before, sources, *rest = self.numbers
        spike_ratio, spike_history, spike_usd, idle, dormant_usd = rest
        structuring, fan_out, fan_in, spike, dormant = (bool(enabled >> bit & 1) for bit in range(len(RULES)))
        out: list[int] = []
        append = out.append
        for activity, amount in items:
            mask = 0
            if structuring and near_low <= amount < near_high and activity.near_threshold_24h >= near_before:
                mask = 1
            if fan_out and activity.destinations_24h >= destinations_before:
                mask |= 2
            if fan_in and activity.sources_24h >= sources:
                mask |= 4
            if (
                spike
                and amount >= spike_usd
                and activity.count_30d >= spike_history
                and amount >= spike_ratio * (activity.sum_30d_usd / activity.count_30d)
            ):
                mask |= 8
            if dormant and amount >= dormant_usd and not activity.first and activity.idle_seconds >= idle:
                mask |= 16
            append(mask)
        return out
