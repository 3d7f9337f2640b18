"""The circuit breaker with a fake clock: consecutive failures, timeout rate,
cool-down, half-open probes limited to K, closing and re-opening."""

from __future__ import annotations

import pytest

from switch.routing.breaker import Breakers, BreakerSettings, BreakerState, CallOutcome, CircuitBreaker

SUCCESS, DECLINED = CallOutcome.SUCCESS, CallOutcome.DECLINED
UNAVAILABLE, UNKNOWN = CallOutcome.UNAVAILABLE, CallOutcome.UNKNOWN
CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def breaker(clock: FakeClock, **settings: float) -> CircuitBreaker:
    defaults: dict[str, float] = {
        "failure_threshold": 3,
        "window": 10,
        "max_timeout_rate": 0.5,
        "cool_down_seconds": 30.0,
        "half_open_probes": 1,
    }
    return CircuitBreaker(BreakerSettings(**{**defaults, **settings}), clock)  # type: ignore[arg-type]


def record(b: CircuitBreaker, *outcomes: CallOutcome) -> None:
    for outcome in outcomes:
        b.record(outcome)


def opened(clock: FakeClock, **settings: float) -> CircuitBreaker:
    b = breaker(clock, **settings)
    record(b, UNAVAILABLE, UNAVAILABLE, UNAVAILABLE)
    assert b.state is OPEN
    return b


@pytest.mark.parametrize("failure", [UNAVAILABLE, UNKNOWN])
def test_n_consecutive_failures_open_it(clock: FakeClock, failure: CallOutcome) -> None:
    b = breaker(clock)
    record(b, failure, failure)
    assert b.state is CLOSED and b.available()
    b.record(failure)
    assert b.state is OPEN and not b.available()


def test_mixed_failures_count_as_consecutive(clock: FakeClock) -> None:
    b = breaker(clock)
    record(b, UNKNOWN, UNAVAILABLE, UNKNOWN)
    assert b.state is OPEN


@pytest.mark.parametrize("answer", [SUCCESS, DECLINED])
def test_an_answer_resets_the_consecutive_count(clock: FakeClock, answer: CallOutcome) -> None:
    b = breaker(clock)
    record(b, UNAVAILABLE, UNAVAILABLE, answer, UNAVAILABLE, UNAVAILABLE)
    assert b.state is CLOSED


def test_declines_never_open_it(clock: FakeClock) -> None:
    b = breaker(clock, failure_threshold=1, window=2, max_timeout_rate=0.0)
    record(b, *[DECLINED] * 1000)
    assert b.state is CLOSED and b.available()
    assert b.success_rate == 1.0


def test_a_timeout_rate_above_r_over_a_full_window_opens_it(clock: FakeClock) -> None:
    b = breaker(clock, failure_threshold=100, window=10, max_timeout_rate=0.5)
    record(b, *[UNKNOWN, SUCCESS] * 3)  # 3 of 6: the window is not full yet
    assert b.state is CLOSED
    record(b, UNKNOWN, SUCCESS, UNKNOWN, SUCCESS)  # 5 of 10 = 0.5: not above R
    assert b.state is CLOSED
    b.record(UNKNOWN)  # evicts an UNKNOWN: still 5 of 10
    assert b.state is CLOSED
    b.record(UNKNOWN)  # evicts a SUCCESS: 6 of 10
    assert b.state is OPEN


def test_unavailable_does_not_count_as_a_timeout(clock: FakeClock) -> None:
    b = breaker(clock, failure_threshold=100, window=4, max_timeout_rate=0.5)
    record(b, *[UNAVAILABLE, SUCCESS] * 10)
    assert b.state is CLOSED


def test_old_timeouts_slide_out_of_the_window(clock: FakeClock) -> None:
    b = breaker(clock, failure_threshold=100, window=4, max_timeout_rate=0.5)
    record(b, UNKNOWN, UNKNOWN, SUCCESS, SUCCESS)  # 2 of 4
    record(b, SUCCESS, SUCCESS, UNKNOWN, UNKNOWN)  # the old two left: 2 of 4
    assert b.state is CLOSED


def test_it_stays_open_for_the_cool_down_then_half_opens(clock: FakeClock) -> None:
    b = opened(clock)
    clock.now += 29.999
    assert b.state is OPEN and not b.available() and not b.acquire()
    clock.now += 0.001
    assert b.state is HALF_OPEN and b.available()


def test_half_open_lets_k_probes_through(clock: FakeClock) -> None:
    b = opened(clock, half_open_probes=2)
    clock.now += 30
    assert b.acquire() and b.available()
    assert b.acquire()
    assert not b.available() and not b.acquire()


@pytest.mark.parametrize("answer", [SUCCESS, DECLINED])
def test_a_probe_answer_closes_it_with_a_fresh_history(clock: FakeClock, answer: CallOutcome) -> None:
    b = opened(clock)
    clock.now += 30
    assert b.acquire()
    b.record(answer)
    assert b.state is CLOSED and b.available()
    assert b.success_rate == 1.0
    record(b, UNAVAILABLE, UNAVAILABLE)  # the failures before it opened are forgotten
    assert b.state is CLOSED


@pytest.mark.parametrize("failure", [UNAVAILABLE, UNKNOWN])
def test_a_probe_failure_reopens_it_for_a_new_cool_down(clock: FakeClock, failure: CallOutcome) -> None:
    b = opened(clock)
    clock.now += 30
    assert b.acquire()
    b.record(failure)
    assert b.state is OPEN and not b.available()
    clock.now += 29
    assert b.state is OPEN
    clock.now += 1
    assert b.state is HALF_OPEN and b.acquire()


def test_a_lost_probe_frees_its_slot_after_the_cool_down(clock: FakeClock) -> None:
    b = opened(clock)
    clock.now += 30
    assert b.acquire()
    clock.now += 29
    assert not b.available()
    clock.now += 1
    assert b.available()


def test_a_late_answer_while_open_changes_nothing(clock: FakeClock) -> None:
    b = opened(clock)
    b.record(SUCCESS)
    assert b.state is OPEN


def test_acquire_while_closed_is_always_granted(clock: FakeClock) -> None:
    b = breaker(clock)
    assert all(b.acquire() for _ in range(100))


def test_success_rate_over_the_window(clock: FakeClock) -> None:
    b = breaker(clock, failure_threshold=100, window=4, max_timeout_rate=1.0)
    assert b.success_rate == 1.0  # no history yet
    record(b, SUCCESS, UNAVAILABLE, DECLINED, UNKNOWN)
    assert b.success_rate == 0.5
    record(b, SUCCESS, SUCCESS)  # evicts SUCCESS, UNAVAILABLE
    assert b.success_rate == 0.75


def test_breakers_keep_one_per_route(clock: FakeClock) -> None:
    breakers = Breakers(BreakerSettings(failure_threshold=2), clock)
    assert breakers.available("a") and breakers.success_rate("never-seen") == 1.0
    breakers.record("a", UNKNOWN)
    breakers.record("a", UNKNOWN)
    breakers.record("b", SUCCESS)
    assert breakers.state("a") is OPEN and not breakers.available("a") and not breakers.acquire("a")
    assert breakers.state("b") is CLOSED and breakers.available("b") and breakers.acquire("b")
    assert breakers.success_rate("a") == 0.0
    assert breakers.breaker("a") is breakers.breaker("a")
