"""Route plans: breaker filtering, ordering by success rate and by cost, and what
each send tells the breaker. When an item fails over is the pipeline's decision,
tested on the real path in tests/e2e/test_routing.py."""

from __future__ import annotations

import random
from typing import Any

import pytest

from switch.adapters.contract import AdapterResult, AdapterUnavailable
from switch.config.fees import parse_fee_schedules
from switch.config.routing import parse_routing
from switch.domain.models import Account, Authorization, Card, Money
from switch.money.fees import FeeEngine
from switch.routing.breaker import Breakers, BreakerSettings, CallOutcome
from switch.routing.plan import RoutePlanner, outcome_of
from switch.routing.rules import RoutingTable

CARD = Card("4111111111111111", 12, 2030)
ROUTES = ("a", "b", "c")
APPROVED = AdapterResult("00")
DECLINED = AdapterResult("05")


class FakeClock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def auth(amount: int = 1000) -> Authorization:
    return Authorization("k-1", "m-1", Money(amount, "USD"), CARD)


def routing(order_by: str = "rules", routes: tuple[str, ...] = ROUTES) -> RoutingTable:
    rule: dict[str, Any] = {"name": "all", "candidates": [{"route": r} for r in routes]}
    return parse_routing({"order_by": order_by, "rules": [rule]}, None, random.Random(1))


def breakers(clock: FakeClock | None = None) -> Breakers:
    return Breakers(BreakerSettings(failure_threshold=2, window=4, cool_down_seconds=10), clock or FakeClock())


def fail(b: Breakers, route: str, times: int = 2) -> None:
    for _ in range(times):
        b.record(route, CallOutcome.UNAVAILABLE)


def test_the_plan_follows_the_rule() -> None:
    assert RoutePlanner(routing(), breakers(), ROUTES).plan(auth(), "411111") == ["a", "b", "c"]


def test_routes_with_an_open_breaker_are_left_out() -> None:
    b = breakers()
    fail(b, "a")
    assert RoutePlanner(routing(), b, ROUTES).plan(auth(), "411111") == ["b", "c"]


def test_a_half_open_route_returns_while_a_probe_slot_is_free() -> None:
    clock = FakeClock()
    b = breakers(clock)
    fail(b, "a")
    planner = RoutePlanner(routing(), b, ROUTES)
    clock.now = 10
    assert planner.plan(auth(), None) == ["a", "b", "c"]
    assert b.acquire("a")  # the pipeline takes the probe
    assert planner.plan(auth(), None) == ["b", "c"]


def test_routes_without_an_adapter_are_left_out() -> None:
    planner = RoutePlanner(routing(), breakers(), {"b", "card"})
    assert planner.plan(auth(), None) == ["b"]
    # the default route of an account whose rail has no adapter: nothing, as today's router
    unknown_rail = Authorization("k", "m-1", Money(1, "USD"), Account("sepa", "x"))
    default = RoutePlanner(parse_routing({}, None), breakers(), {"card", "pix"})
    assert default.plan(unknown_rail, None) == []
    assert default.plan(auth(), None) == ["card"]


def test_an_empty_plan_when_every_breaker_is_open() -> None:
    b = breakers()
    for route in ROUTES:
        fail(b, route)
    assert RoutePlanner(routing(), b, ROUTES).plan(auth(), None) == []


def test_order_by_success_rate_is_highest_first_and_stable() -> None:
    b = breakers()
    for outcome in (CallOutcome.SUCCESS, CallOutcome.UNKNOWN, CallOutcome.SUCCESS, CallOutcome.SUCCESS):
        b.record("a", outcome)  # 0.75
    for outcome in (CallOutcome.DECLINED, CallOutcome.SUCCESS):
        b.record("b", outcome)  # 1.0
    b.record("c", CallOutcome.SUCCESS)  # 1.0, after b in the rule: stays after b
    planner = RoutePlanner(routing("success_rate"), b, ROUTES)
    assert planner.plan(auth(), None) == ["b", "c", "a"]


def test_order_by_success_rate_keeps_the_rule_order_on_ties() -> None:
    assert RoutePlanner(routing("success_rate"), breakers(), ROUTES).plan(auth(), None) == ["a", "b", "c"]


def test_order_by_cost_is_cheapest_first_and_stable() -> None:
    costs = {"a": 30, "b": 10, "c": 30}
    planner = RoutePlanner(routing("cost"), breakers(), ROUTES, cost=lambda route, _: costs[route])
    assert planner.plan(auth(), None) == ["b", "a", "c"]


def test_order_by_cost_with_fee_engine_quotes() -> None:
    schedules = parse_fee_schedules(
        [
            {"name": "a", "rail": "a", "percent": "3.0"},
            {"name": "b", "rail": "b", "fixed": 25},
            {"name": "c", "rail": "c", "percent": "1.0", "fixed": 5},
        ]
    )
    engine = FeeEngine(schedules)

    def cost(route: str, authorization: Authorization) -> int:
        return engine.quote(authorization.merchant_id, authorization.amount, route).fee.minor_units

    planner = RoutePlanner(routing("cost"), breakers(), ROUTES, cost=cost)
    assert planner.plan(auth(1000), None) == ["c", "b", "a"]  # fees 15, 25, 30
    assert planner.plan(auth(100), None) == ["a", "c", "b"]  # fees 3, 6, 25


def test_order_by_cost_needs_a_cost_function() -> None:
    with pytest.raises(ValueError, match="needs a cost function"):
        RoutePlanner(routing("cost"), breakers(), ROUTES)


def test_next_route_skips_routes_whose_breaker_opened_since() -> None:
    b = breakers()
    planner = RoutePlanner(routing(), b, ROUTES)
    plan = planner.plan(auth(), None)
    assert planner.next_route(plan, "a") == "b"
    fail(b, "b")
    assert planner.next_route(plan, "a") == "c"
    assert planner.next_route(plan, "c") is None


@pytest.mark.parametrize(
    ("answers", "error", "outcome"),
    [
        (None, AdapterUnavailable("down"), CallOutcome.UNAVAILABLE),  # nothing was sent
        (None, TimeoutError(), CallOutcome.UNKNOWN),  # sent, no answer in time
        (None, RuntimeError("broke mid-send"), CallOutcome.UNKNOWN),
        ([APPROVED, AdapterResult.timed_out()], None, CallOutcome.UNKNOWN),
        ([DECLINED, DECLINED], None, CallOutcome.DECLINED),  # a decline is an answer
        ([APPROVED, DECLINED], None, CallOutcome.SUCCESS),
        ([APPROVED], None, CallOutcome.SUCCESS),
    ],
)
def test_call_outcomes(answers: list[AdapterResult] | None, error: BaseException | None, outcome: CallOutcome) -> None:
    assert outcome_of(answers, error) is outcome
