"""A circuit breaker per route: stop sending to a route that is failing, probe it
again after a cool-down. Pure logic: no I/O, no threads, the clock is injected.

    closed --(N consecutive failures, or timeout rate over the last M calls > R)--> open
    open --(cool-down elapsed)--> half_open
    half_open --(a probe succeeds)--> closed      (history cleared: a fresh start)
    half_open --(a probe fails)--> open           (a new cool-down)

A "call" is one adapter send to the route (one batch), recorded once with its
outcome: success, declined (the route works: a decline is an answer),
unavailable (AdapterUnavailable: nothing was sent) or unknown (sent, no answer in
time). Failures are unavailable and unknown; only unknown counts as a timeout
for the rate. The rate is judged only once the window holds M calls, so one early
timeout cannot open a quiet route (the consecutive count covers that case).

In half_open at most K probe calls are in flight: acquire() takes a slot and
record() gives it back. A probe that never records (its task was cancelled) is
forgotten after the cool-down, so a route can never stay half-open for ever.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CallOutcome(enum.Enum):
    SUCCESS = "success"
    DECLINED = "declined"
    UNAVAILABLE = "unavailable"
    UNKNOWN = "unknown"

    @property
    def failed(self) -> bool:
        return self in (CallOutcome.UNAVAILABLE, CallOutcome.UNKNOWN)


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    failure_threshold: int = 5  # N consecutive failures open the breaker
    window: int = 20  # M: the calls the timeout rate and the success rate look at
    max_timeout_rate: float = 0.5  # R: a timeout rate above it (over a full window) opens it
    cool_down_seconds: float = 30.0  # open this long before probing
    half_open_probes: int = 1  # K: probe calls let through at once while half-open


@dataclass(slots=True)
class CircuitBreaker:
    """One route's breaker. Not thread-safe: the switch runs it on one event loop."""

    settings: BreakerSettings
    clock: Callable[[], float]
    _state: BreakerState = BreakerState.CLOSED
    _opened_at: float = 0.0
    _consecutive: int = 0
    _recent: deque[CallOutcome] = field(default_factory=deque)
    _timeouts: int = 0  # unknown outcomes in _recent, kept so a record is O(1)
    _failures: int = 0  # failed outcomes in _recent
    _probes: list[float] = field(default_factory=list)  # start times of probes in flight

    @property
    def state(self) -> BreakerState:
        # Open turns half-open lazily, when someone looks: no timer needed.
        if self._state is BreakerState.OPEN and self.clock() - self._opened_at >= self.settings.cool_down_seconds:
            self._state = BreakerState.HALF_OPEN
            self._probes.clear()
        return self._state

    def available(self) -> bool:
        """Whether a call may go to this route now; takes nothing."""
        state = self.state
        if state is BreakerState.HALF_OPEN:
            self._forget_lost_probes()
            return len(self._probes) < self.settings.half_open_probes
        return state is BreakerState.CLOSED

    def acquire(self) -> bool:
        """Claims the right to send one call: always granted when closed, a probe slot when half-open."""
        if not self.available():
            return False
        if self._state is BreakerState.HALF_OPEN:
            self._probes.append(self.clock())
        return True

    def record(self, outcome: CallOutcome) -> None:
        state = self.state
        if state is BreakerState.HALF_OPEN:
            self._record_probe(outcome)
        elif state is BreakerState.CLOSED:
            self._record_closed(outcome)
        # Open: a late answer from before the breaker opened changes nothing.

    @property
    def success_rate(self) -> float:
        """Share of the last M calls that were answered; 1.0 with no history, so a
        new or freshly closed route is tried rather than starved."""
        if not self._recent:
            return 1.0
        return 1.0 - self._failures / len(self._recent)

    def _record_closed(self, outcome: CallOutcome) -> None:
        self._push(outcome)
        self._consecutive = self._consecutive + 1 if outcome.failed else 0
        if self._consecutive >= self.settings.failure_threshold or self._timeout_rate_exceeded():
            self._open()

    def _record_probe(self, outcome: CallOutcome) -> None:
        if self._probes:
            self._probes.pop(0)
        if outcome.failed:
            self._open()
        else:
            self._close()

    def _push(self, outcome: CallOutcome) -> None:
        if len(self._recent) == self.settings.window:
            evicted = self._recent.popleft()
            self._timeouts -= evicted is CallOutcome.UNKNOWN
            self._failures -= evicted.failed
        self._recent.append(outcome)
        self._timeouts += outcome is CallOutcome.UNKNOWN
        self._failures += outcome.failed

    def _timeout_rate_exceeded(self) -> bool:
        full = len(self._recent) == self.settings.window
        return full and self._timeouts / self.settings.window > self.settings.max_timeout_rate

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self.clock()
        self._probes.clear()

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._consecutive = self._timeouts = self._failures = 0
        self._recent.clear()
        self._probes.clear()

    def _forget_lost_probes(self) -> None:
        oldest = self.clock() - self.settings.cool_down_seconds
        self._probes = [started for started in self._probes if started > oldest]


class Breakers:
    """The breakers of every route, created on first use."""

    def __init__(self, settings: BreakerSettings, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, route: str) -> CircuitBreaker:
        found = self._breakers.get(route)
        if found is None:
            found = self._breakers[route] = CircuitBreaker(self._settings, self._clock)
        return found

    def available(self, route: str) -> bool:
        return self.breaker(route).available()

    def acquire(self, route: str) -> bool:
        return self.breaker(route).acquire()

    def record(self, route: str, outcome: CallOutcome) -> None:
        self.breaker(route).record(outcome)

    def state(self, route: str) -> BreakerState:
        return self.breaker(route).state

    def success_rate(self, route: str) -> float:
        found = self._breakers.get(route)
        return 1.0 if found is None else found.success_rate
