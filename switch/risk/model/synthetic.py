"""Labelled synthetic payment traffic, seeded and deterministic, to train and test the model.

Legitimate holders keep their own habits: a typical amount (lognormal around a median of
their own), a few regular destinations, activity around a favourite daytime hour, a
share of card payments and of cross-border ones, and the odd decline. Into that traffic
go three labelled fraud patterns (PATTERNS):

- card_testing: a fresh card fires a burst of small payments within minutes, many declined;
- account_takeover: an established holder pays a new destination large amounts, several
  in a row, at night;
- mule_fan_in: many holders each pay one new destination within a day.

traffic() returns the events in time order with a label each: None for a legitimate
payment, else the pattern's name. Fraud is a few percent of events.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from switch.risk.model.features import DAY, HOUR, Event

CARD_TESTING = "card_testing"
ACCOUNT_TAKEOVER = "account_takeover"
MULE_FAN_IN = "mule_fan_in"
PATTERNS = (CARD_TESTING, ACCOUNT_TAKEOVER, MULE_FAN_IN)

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z: a fixed origin keeps streams reproducible
MERCHANTS = 4000
WARMUP_DAYS = 7

# Fraud episodes per 1,000 holders per day.
CARD_TESTS_RATE = 1.5
TAKEOVERS_RATE = 3.5
MULE_RINGS_RATE = 0.6

Label = str | None


@dataclass(frozen=True, slots=True)
class _Habits:
    holder: str
    median_usd: float
    spread: float  # sigma of log(amount)
    per_day: float
    destinations: tuple[str, ...]
    hour: float  # favourite UTC hour
    card_share: float
    cross_border_share: float
    joined: float  # seconds after the start


def _habits(rng: random.Random, index: int, days: int) -> _Habits:
    joined = 0.0 if rng.random() < 0.7 else rng.uniform(0, days * DAY)
    return _Habits(
        holder=f"h{index}",
        median_usd=math.exp(rng.gauss(3.4, 0.8)),
        spread=rng.uniform(0.3, 0.8),
        per_day=rng.uniform(0.3, 3.0),
        destinations=tuple(f"m{rng.randrange(MERCHANTS)}" for _ in range(rng.randint(2, 6))),
        hour=rng.uniform(9, 20),
        card_share=rng.uniform(0.2, 0.95),
        cross_border_share=0.3 if rng.random() < 0.2 else 0.02,
        joined=joined,
    )


def _time_of_day(rng: random.Random, day: int, hour: float, spread: float) -> float:
    return START + day * DAY + ((rng.gauss(hour, spread) % 24) * HOUR)


def _legitimate(rng: random.Random, habits: _Habits, days: int) -> list[tuple[Event, Label]]:
    out: list[tuple[Event, Label]] = []
    for day in range(days):
        for _ in range(_poisson(rng, habits.per_day)):
            at = _time_of_day(rng, day, habits.hour, 3.0)
            if at < START + habits.joined:
                continue
            regular = rng.random() < 0.85
            destination = rng.choice(habits.destinations) if regular else f"m{rng.randrange(MERCHANTS)}"
            amount = round(habits.median_usd * math.exp(rng.gauss(0, habits.spread)), 2)
            declined = rng.random() < (0.02 if amount < 200 else 0.05)
            event = Event(
                at=at,
                holder=habits.holder,
                destination=destination,
                amount_usd=amount,
                cross_border=rng.random() < habits.cross_border_share,
                card=rng.random() < habits.card_share,
                declined=declined,
            )
            out.append((event, None))
    return out


def _card_testing(rng: random.Random, index: int, days: int) -> list[tuple[Event, Label]]:
    holder = f"ct{index}"
    at = START + rng.uniform(0, days * DAY)
    destinations = [f"m{rng.randrange(MERCHANTS)}" for _ in range(rng.randint(1, 3))]
    cross_border = rng.random() < 0.5
    out: list[tuple[Event, Label]] = []
    for _ in range(rng.randint(6, 20)):
        at += rng.uniform(5, 180)
        event = Event(
            at,
            holder,
            rng.choice(destinations),
            round(rng.uniform(0.5, 5.0), 2),
            cross_border,
            True,
            rng.random() < 0.7,
        )
        out.append((event, CARD_TESTING))
    return out


def _takeover(rng: random.Random, index: int, victim: _Habits, days: int) -> list[tuple[Event, Label]]:
    day = rng.randrange(max(1, days // 4), days) if days > 1 else 0
    at = START + day * DAY + rng.uniform(0, 5) * HOUR
    destination = f"ato{index}"
    cross_border = rng.random() < 0.6
    card = rng.random() < 0.3
    out: list[tuple[Event, Label]] = []
    for _ in range(rng.randint(2, 5)):
        at += rng.uniform(60, 1800)
        amount = round(max(victim.median_usd, 40.0) * rng.uniform(6, 30), 2)
        event = Event(at, victim.holder, destination, amount, cross_border, card, rng.random() < 0.2)
        out.append((event, ACCOUNT_TAKEOVER))
    return out


def _mule_ring(rng: random.Random, index: int, payers: list[_Habits], days: int) -> list[tuple[Event, Label]]:
    start = START + rng.uniform(0, days * DAY)
    destination = f"mule{index}"
    out: list[tuple[Event, Label]] = []
    for payer in payers:
        at = start + rng.uniform(0, 20 * HOUR)
        amount = round(rng.uniform(100, 900), 2)
        event = Event(at, payer.holder, destination, amount, rng.random() < 0.2, False, rng.random() < 0.05)
        out.append((event, MULE_FAN_IN))
    return out


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: exact for the small means used here.
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def traffic(days: int, seed: int = 0, holders: int = 2000) -> tuple[list[Event], list[Label]]:
    """`days` of traffic from `holders` legitimate holders plus the fraud patterns, in time
    order, with a label per event (None: legitimate; else the pattern's name)."""
    if days < 1 or holders < 50:
        raise ValueError("traffic needs at least one day and 50 holders")
    rng = random.Random(seed)
    people = [_habits(rng, index, days) for index in range(holders)]
    labelled: list[tuple[Event, Label]] = []
    for habits in people:
        labelled.extend(_legitimate(rng, habits, days))
    scale = holders / 1000 * days
    established = [p for p in people if p.joined == 0.0]
    for index in range(max(1, round(CARD_TESTS_RATE * scale))):
        labelled.extend(_card_testing(rng, index, days))
    for index in range(max(1, round(TAKEOVERS_RATE * scale))):
        labelled.extend(_takeover(rng, index, rng.choice(established), days))
    for index in range(max(1, round(MULE_RINGS_RATE * scale))):
        labelled.extend(_mule_ring(rng, index, rng.sample(people, rng.randint(10, 30)), days))
    labelled.sort(key=lambda pair: pair[0].at)  # stable: ties keep the generation order
    return [event for event, _ in labelled], [label for _, label in labelled]


def periods(events: list[Event], held_out_fraction: float = 0.3) -> tuple[int, int]:
    """The indexes where training starts and the held-out period starts. The first
    WARMUP_DAYS only fill the feature windows (every holder starts the stream without
    history, which real traffic never shows); the held-out period is the last
    `held_out_fraction` of the rest. Features are computed over the whole stream first,
    so every event sees the history before it, as it would online."""
    if not 0 < held_out_fraction < 1:
        raise ValueError(f"held_out_fraction must be in (0, 1), not {held_out_fraction}")
    warm = START + WARMUP_DAYS * DAY
    if not events or events[-1].at <= warm:
        raise ValueError(f"traffic must run past the {WARMUP_DAYS}-day warm-up")
    start = next(i for i, event in enumerate(events) if event.at >= warm)
    cutoff = warm + (1 - held_out_fraction) * (events[-1].at - warm)
    return start, next(i for i, event in enumerate(events) if event.at >= cutoff)
