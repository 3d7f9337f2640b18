"""Seeded streams of the behaviours the AML rules look for, for development and tests.

Each generator hides one behaviour in legitimate background traffic (the legitimate
events of switch.risk.model.synthetic, whose patterns of fraud are left out) and returns
a Scenario: the chronological events, which of them are the behaviour's own payments,
and which of those the rule must alert on. The behaviours are sized from the policy, so
that each raises its own alert and no other:

- structuring: a new holder makes several payments just below the reporting threshold
  within hours, to one or two new accounts;
- fan_out: a new holder pays many new accounts within hours, modest amounts each;
- fan_in: many holders of the background pay one new account within a day (mules);
- spike: the most active holder of the background suddenly pays a new account many
  times their usual amount;
- dormant: a holder of the background stops paying, and after longer than dormant_days
  pays a new account a large amount (needs dormant_days >= 30, so that no 30-day history
  is left to make it a spike too).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from switch.risk.activity import DAY, HOUR, MONTH
from switch.risk.aml.rules import AmlPolicy, AmlRules
from switch.risk.model import synthetic
from switch.risk.model.features import Event


@dataclass(frozen=True, slots=True)
class Scenario:
    """A stream with one behaviour in it."""

    kind: str  # the alert kind the behaviour must raise
    events: list[Event]  # chronological
    own: tuple[int, ...]  # indexes in events of the behaviour's payments, in time order
    alerting: frozenset[int]  # those of `own` the rule must alert on; the others alert on nothing


def background(seed: int, days: int, holders: int = 200) -> list[Event]:
    """`days` of legitimate synthetic traffic from `holders` holders (at least 50)."""
    events, labels = synthetic.traffic(days, seed=seed, holders=holders)
    return [event for event, label in zip(events, labels, strict=True) if label is None]


def structuring(seed: int = 0, policy: AmlPolicy | None = None, days: int = 14) -> Scenario:
    policy = policy or AmlPolicy()
    rng = random.Random(f"structuring/{seed}")
    near = AmlRules(policy).near_threshold
    holder = f"structurer{seed}"
    accounts = [f"{holder}-account{j}" for j in range(rng.randint(1, 2))]
    at = synthetic.START + rng.uniform(2, days - 1) * DAY
    count = policy.structuring_count + rng.randint(1, 3)
    own = []
    for _ in range(count):
        at += rng.uniform(0.2, 1.0) * 20 * HOUR / count  # all within 20 h
        own.append(_event(rng, at, holder, rng.choice(accounts), _near_amount(rng, policy, near)))
    return _scenario("aml_structuring", background(seed, days), own, lambda k: k >= policy.structuring_count - 1)


def fan_out(seed: int = 0, policy: AmlPolicy | None = None, days: int = 14) -> Scenario:
    policy = policy or AmlPolicy()
    rng = random.Random(f"fan_out/{seed}")
    holder = f"disperser{seed}"
    at = synthetic.START + rng.uniform(2, days - 1) * DAY
    count = policy.fan_out_destinations + rng.randint(2, 10)
    own = []
    for j in range(count):
        at += rng.uniform(0.05, 1.0) * 8 * HOUR / count  # all within 8 h
        own.append(_event(rng, at, holder, f"{holder}-account{j}", _modest_amount(rng, policy)))
    return _scenario("aml_fan_out", background(seed, days), own, lambda k: k >= policy.fan_out_destinations - 1)


def fan_in(seed: int = 0, policy: AmlPolicy | None = None, days: int = 14) -> Scenario:
    policy = policy or AmlPolicy()
    rng = random.Random(f"fan_in/{seed}")
    events = background(seed, days)
    mule = f"mule{seed}"
    payers = rng.sample(sorted({event.holder for event in events}), policy.fan_in_sources + rng.randint(3, 15))
    start = synthetic.START + rng.uniform(2, days - 1) * DAY
    times = sorted(start + rng.uniform(0, 20 * HOUR) for _ in payers)
    own = [_event(rng, at, payer, mule, _modest_amount(rng, policy)) for at, payer in zip(times, payers, strict=True)]
    return _scenario("aml_fan_in", events, own, lambda k: k >= policy.fan_in_sources)


def spike(seed: int = 0, policy: AmlPolicy | None = None, days: int = 14) -> Scenario:
    policy = policy or AmlPolicy()
    rng = random.Random(f"spike/{seed}")
    events = background(seed, days)
    at = synthetic.START + (days - rng.uniform(0.5, 1.5)) * DAY
    history: dict[str, list[float]] = {}
    for event in events:
        if at - MONTH < event.at < at:
            history.setdefault(event.holder, []).append(event.amount_usd)
    holder, amounts = max(history.items(), key=lambda item: (len(item[1]), item[0]))
    if len(amounts) < policy.spike_min_history:
        raise ValueError(f"no holder has {policy.spike_min_history} payments in the 30 days before the spike")
    # Twice the ratio over the largest amount: the mean is at most that amount.
    amount = round(max(2 * policy.spike_ratio * max(amounts), 1.5 * policy.spike_min_usd), 2)
    own = [_event(rng, at, holder, f"{holder}-new-account", amount)]
    return _scenario("aml_spike", events, own, lambda k: True)


def dormant(seed: int = 0, policy: AmlPolicy | None = None) -> Scenario:
    policy = policy or AmlPolicy()
    if policy.dormant_days < 30:
        raise ValueError("the dormant scenario needs dormant_days >= 30 (no 30-day history left)")
    rng = random.Random(f"dormant/{seed}")
    active_days, late_days = 10, rng.uniform(1, 10)
    days = active_days + math.ceil(policy.dormant_days + late_days) + 5
    events = background(seed, days, holders=100)
    silent_from = synthetic.START + active_days * DAY
    early = {event.holder for event in events if event.at < synthetic.START + 2 * DAY}
    holder = rng.choice(sorted(early))
    events = [event for event in events if event.holder != holder or event.at < silent_from]
    last = max(event.at for event in events if event.holder == holder)
    at = last + (policy.dormant_days + late_days) * DAY
    amount = round(rng.uniform(1.5, 5.0) * policy.dormant_min_usd, 2)
    own = [_event(rng, at, holder, f"{holder}-new-account", amount)]
    return _scenario("aml_dormant", events, own, lambda k: True)


GENERATORS: dict[str, Callable[..., Scenario]] = {
    "aml_structuring": structuring,
    "aml_fan_out": fan_out,
    "aml_fan_in": fan_in,
    "aml_spike": spike,
    "aml_dormant": dormant,
}


def _event(rng: random.Random, at: float, holder: str, destination: str, amount_usd: float) -> Event:
    return Event(at, holder, destination, amount_usd, rng.random() < 0.3, False, False)


def _near_amount(rng: random.Random, policy: AmlPolicy, near: Callable[[float], bool]) -> float:
    while True:
        amount = round(rng.uniform(policy.near_ratio, 1.0) * policy.threshold_usd, 2)
        if near(amount):
            return amount


def _modest_amount(rng: random.Random, policy: AmlPolicy) -> float:
    """Below every amount the other rules look at (a spike, a dormant holder's, a near-threshold one)."""
    ceiling = min(policy.spike_min_usd, policy.dormant_min_usd, policy.near_ratio * policy.threshold_usd)
    return round(rng.uniform(0.1, 0.9) * ceiling, 2)


def _scenario(kind: str, events: list[Event], own: list[Event], alerts: Callable[[int], bool]) -> Scenario:
    """Merges the behaviour's payments into the background (after a background event at the
    same instant); alerts(k) says whether the k-th of them must alert."""
    tagged = sorted(
        [(event.at, 0, event) for event in events] + [(event.at, 1, event) for event in own],
        key=lambda item: (item[0], item[1]),
    )
    merged = [event for _, _, event in tagged]
    mine = tuple(i for i, (_, is_own, _) in enumerate(tagged) if is_own)
    return Scenario(kind, merged, mine, frozenset(i for k, i in enumerate(mine) if alerts(k)))
