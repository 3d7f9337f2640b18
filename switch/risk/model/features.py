"""The fraud model's features, in their fixed order, and the reference online calculator.

OnlineFeatures is the plain, exact definition of each feature: the production feature
store (Redis) is checked against it. Given payment events in chronological order, it
gives each event the vector as it stood when the event arrived.

Window rule, the same for every window: the features of an event at time t count the
events that came before it in the stream (never the event itself) whose time lies in
(t - W, t]. An event exactly W before is outside; an earlier event at the same instant
is inside. Sums are exact (math.fsum over the window), counts come from deques of the
window's events.

Features (FEATURES gives their order):
- amount_log: log1p(amount_usd).
- cross_border, card: 1.0 or 0.0, from the request.
- holder_count_1h: the holder's events in the last hour.
- holder_declines_1h: how many of those were declined.
- holder_sum_24h_log: log1p of the holder's USD sum over 24 h.
- holder_destinations_24h: distinct destinations the holder paid over 24 h (fan-out).
- destination_sources_24h: distinct holders who paid this destination over 24 h (fan-in).
- holder_age_days_log: log1p of the days since the holder's first event (0 for a first),
  capped at AGE_CAP_DAYS: past it a holder is established, and an uncapped age would
  grow with the stream and drift forever.
- amount_vs_mean: amount_usd / the holder's mean amount over 30 days, capped at
  AMOUNT_RATIO_CAP; 1.0 without history; a mean under MIN_MEAN_USD counts as MIN_MEAN_USD.

The same windows give each event its switch.risk.activity.Activity (push_activity,
reference_activities): what the production store answers, and the AML rules read. The
model's vector is a function of that Activity and the request (model_row), so the store
and this reference share one definition of the transforms. One difference is deliberate:
the store stops its distinct counts at DISTINCT_KEPT, and so does reference_activities,
while feature_rows counts them exactly, as the shipped model was trained; the two agree
while a holder pays at most DISTINCT_KEPT destinations (and a destination hears from at
most DISTINCT_KEPT holders) in 24 h, which legitimate synthetic traffic never exceeds.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from switch.risk.activity import DISTINCT_KEPT, Activity

FEATURES: tuple[str, ...] = (
    "amount_log",
    "cross_border",
    "card",
    "holder_count_1h",
    "holder_declines_1h",
    "holder_sum_24h_log",
    "holder_destinations_24h",
    "destination_sources_24h",
    "holder_age_days_log",
    "amount_vs_mean",
)

HOUR = 3600.0
DAY = 24 * HOUR
MONTH = 30 * DAY
AMOUNT_RATIO_CAP = 50.0
AGE_CAP_DAYS = 7.0
MIN_MEAN_USD = 0.01  # a history of zero amounts must not divide by zero


@dataclass(frozen=True, slots=True)
class Event:
    """One payment as the model sees it; declined is its outcome, used only for later events."""

    at: float  # epoch seconds
    holder: str
    destination: str
    amount_usd: float  # major units
    cross_border: bool
    card: bool
    declined: bool

    def __post_init__(self) -> None:
        if not math.isfinite(self.at):
            raise ValueError(f"at must be finite, not {self.at}")
        if not (math.isfinite(self.amount_usd) and self.amount_usd >= 0):
            raise ValueError(f"amount_usd must be finite and >= 0, not {self.amount_usd}")


class _Window:
    """The entries of the last `span` seconds, oldest first; expire(t) keeps (t - span, t]."""

    __slots__ = ("entries", "span")

    def __init__(self, span: float) -> None:
        self.span = span
        self.entries: deque[tuple[float, Event]] = deque()

    def expire(self, now: float, on_drop: Counter[str] | None = None, key: str = "") -> None:
        cutoff = now - self.span
        while self.entries and self.entries[0][0] <= cutoff:
            _, old = self.entries.popleft()
            if on_drop is not None:
                name = getattr(old, key)
                on_drop[name] -= 1
                if not on_drop[name]:
                    del on_drop[name]


@dataclass
class _Holder:
    first_at: float
    last_at: float | None = None  # None until the holder's first event joins the history
    hour: _Window = field(default_factory=lambda: _Window(HOUR))
    day: _Window = field(default_factory=lambda: _Window(DAY))
    month: _Window = field(default_factory=lambda: _Window(MONTH))
    destinations: Counter[str] = field(default_factory=Counter)  # over `day`


@dataclass
class _Destination:
    day: _Window = field(default_factory=lambda: _Window(DAY))
    holders: Counter[str] = field(default_factory=Counter)  # over `day`


class OnlineFeatures:
    """Feature vectors (push) or Activities (push_activity) for a chronological stream of
    events, one event at a time.

    near_threshold says which amounts Activity.near_threshold_24h counts (none without
    it); distinct_kept, where the distinct counts stop (exact without it, as the model was
    trained)."""

    def __init__(self, near_threshold: Callable[[float], bool] | None = None, distinct_kept: int | None = None) -> None:
        self._holders: dict[str, _Holder] = {}
        self._destinations: dict[str, _Destination] = {}
        self._last_at = -math.inf
        self._near_threshold = near_threshold
        self._distinct_kept = distinct_kept

    def push(self, event: Event) -> list[float]:
        """The event's features (from the events before it), then the event joins the history."""
        return model_row(self.push_activity(event), event.amount_usd, event.cross_border, event.card)

    def push_activity(self, event: Event) -> Activity:
        """The event's Activity (from the events before it), then the event joins the history."""
        if event.at < self._last_at:
            raise ValueError(f"events must be chronological: {event.at} after {self._last_at}")
        self._last_at = event.at
        holder = self._holders.get(event.holder)
        if holder is None:
            holder = self._holders[event.holder] = _Holder(first_at=event.at)
        destination = self._destinations.setdefault(event.destination, _Destination())
        activity = self._activity(event, holder, destination)
        for window in (holder.hour, holder.day, holder.month, destination.day):
            window.entries.append((event.at, event))
        holder.destinations[event.destination] += 1
        holder.last_at = event.at
        destination.holders[event.holder] += 1
        return activity

    def _activity(self, event: Event, holder: _Holder, destination: _Destination) -> Activity:
        now = event.at
        holder.hour.expire(now)
        holder.day.expire(now, holder.destinations, "destination")
        holder.month.expire(now)
        destination.day.expire(now, destination.holders, "holder")
        near = self._near_threshold
        near_count = 0 if near is None else sum(1 for _, e in holder.day.entries if near(e.amount_usd))
        kept = self._distinct_kept
        destinations, sources = len(holder.destinations), len(destination.holders)
        if kept is not None:
            destinations, sources = min(destinations, kept), min(sources, kept)
        return Activity(
            first=holder.last_at is None,
            count_1h=float(len(holder.hour.entries)),
            declines_1h=float(sum(1 for _, e in holder.hour.entries if e.declined)),
            sum_24h_usd=math.fsum(e.amount_usd for _, e in holder.day.entries),
            near_threshold_24h=float(near_count),
            destinations_24h=destinations,
            sources_24h=sources,
            count_30d=float(len(holder.month.entries)),
            sum_30d_usd=math.fsum(e.amount_usd for _, e in holder.month.entries),
            age_seconds=now - holder.first_at,
            idle_seconds=0.0 if holder.last_at is None else now - holder.last_at,
        )


def model_row(activity: Activity, amount_usd: float, cross_border: bool, card: bool) -> list[float]:
    """The model's vector (FEATURES order) for a payment of amount_usd, from its holder's
    Activity before it: the transforms the module docstring defines. No feature reads the
    clock: the UTC hour says nothing of a holder's own night, and a score that moved with
    it would decline the same payment at one hour and not at another."""
    mean = activity.mean_30d_usd
    ratio = 1.0 if mean is None else min(amount_usd / max(mean, MIN_MEAN_USD), AMOUNT_RATIO_CAP)
    return [
        math.log1p(amount_usd),
        1.0 if cross_border else 0.0,
        1.0 if card else 0.0,
        float(activity.count_1h),
        float(activity.declines_1h),
        math.log1p(activity.sum_24h_usd),
        float(activity.destinations_24h),
        float(activity.sources_24h),
        math.log1p(min(activity.age_seconds / DAY, AGE_CAP_DAYS)),
        ratio,
    ]


def reference_activities(events: Iterable[Event], near_threshold: Callable[[float], bool]) -> list[Activity]:
    """Each event's Activity as it stood before the event, for a chronological stream, from a
    fresh calculator: the exact reference the production store's estimates are checked against
    (distinct counts stop at DISTINCT_KEPT, as the store's do)."""
    online = OnlineFeatures(near_threshold, DISTINCT_KEPT)
    return [online.push_activity(event) for event in events]


def feature_rows(events: Iterable[Event]) -> list[list[float]]:
    """The feature vector of each event of a chronological stream, from a fresh calculator."""
    online = OnlineFeatures()
    return [online.push(event) for event in events]
