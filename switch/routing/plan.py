"""The route plan of one authorization: its rule's candidates, less the routes
whose breaker is open or that have no adapter, in the configured order.

Order (routing.order_by):
- "rules": as the rule lists them, the first drawn by weight;
- "success_rate": highest recent success rate first (switch.routing.breaker);
- "cost": cheapest first, by a cost(route, authorization) function (minor units,
  backed by FeeEngine quotes).
Both sorts are stable over the rule's order, so ties keep the weighted split.

Failover is decided by the pipeline (switch.flow.pipeline, Pipeline._send and
_call_adapters): an item moves to next_route only when nothing was sent for it,
i.e. the route's breaker refused the call (acquire() False) or the adapter raised
AdapterUnavailable. Never after a decline (an answer is an answer) and never after
an unknown outcome (a timeout, an adapter that broke mid-send, an answer marked
unknown): the network may have approved it, and a second route would charge the
customer twice. With no next route the item is declined 91. outcome_of turns each
send into what the route's breaker records.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from switch.adapters.contract import AdapterResult, AdapterUnavailable
from switch.domain.models import Authorization
from switch.routing.breaker import Breakers, CallOutcome
from switch.routing.rules import OrderBy, RoutingTable

Cost = Callable[[str, Authorization], int]


class RoutePlanner:
    """Builds plans from a routing table, the breakers and the routes that have adapters."""

    def __init__(
        self,
        table: RoutingTable,
        breakers: Breakers,
        routes: Collection[str],
        cost: Cost | None = None,
    ) -> None:
        if table.order_by is OrderBy.COST and cost is None:
            raise ValueError("routing.order_by = 'cost' needs a cost function")
        self._table = table
        self._breakers = breakers
        self._routes = frozenset(routes)
        self._cost = cost

    def plan(self, authorization: Authorization, card_bin: str | None) -> list[str]:
        """The routes to try, in order; empty when none is usable now."""
        usable = [
            route
            for route in self._table.candidates(authorization, card_bin)
            if route in self._routes and self._breakers.available(route)
        ]
        return self._ordered(usable, authorization)

    def next_route(self, plan: Sequence[str], failed: str) -> str | None:
        """The route after `failed` in the plan whose breaker lets a call through now."""
        index = plan.index(failed)
        return next((route for route in plan[index + 1 :] if self._breakers.available(route)), None)

    def _ordered(self, routes: list[str], authorization: Authorization) -> list[str]:
        if len(routes) < 2:
            return routes
        order_by = self._table.order_by
        if order_by is OrderBy.SUCCESS_RATE:
            return sorted(routes, key=lambda route: -self._breakers.success_rate(route))
        if order_by is OrderBy.COST:
            cost = self._cost
            assert cost is not None  # checked in __init__
            return sorted(routes, key=lambda route: cost(route, authorization))
        return routes


def outcome_of(answers: Sequence[AdapterResult] | None, error: BaseException | None = None) -> CallOutcome:
    """What one adapter send tells the breaker. error: what send() raised, if anything.

    AdapterUnavailable -> unavailable (nothing sent); any other error, a timeout or
    an answer marked unknown -> unknown; else success when anything was approved,
    declined otherwise (the route works either way)."""
    if isinstance(error, AdapterUnavailable):
        return CallOutcome.UNAVAILABLE
    if error is not None or answers is None or any(answer.unknown for answer in answers):
        return CallOutcome.UNKNOWN
    return CallOutcome.SUCCESS if any(answer.approved for answer in answers) else CallOutcome.DECLINED
