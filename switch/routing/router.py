"""The routes a switch runs: each one's adapter and rail, the plan of routes to try
for an authorization, and a circuit breaker per route.

Which routes an authorization may take comes from the routing rules
(switch.routing.rules); which of them to try, in what order, from switch.routing.plan;
whether a route takes calls right now, from its breaker (switch.routing.breaker). The
pipeline asks for a plan, keeps the routes whose networks can carry the
authorization's fields, sends to the first, reports every send's outcome here, and
fails over along the plan only when nothing was sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

from switch.adapters.contract import Adapter, Capability, CheckedAdapter
from switch.domain.errors import Violation
from switch.domain.models import Authorization
from switch.routing.breaker import Breakers, BreakerState, CallOutcome
from switch.routing.plan import Cost, RoutePlanner
from switch.routing.rules import RoutingTable


class Router:
    def __init__(
        self,
        adapters: Mapping[str, Adapter],
        rails: Mapping[str, str],
        table: RoutingTable,
        breakers: Breakers,
        cost: Cost | None = None,
    ) -> None:
        self._adapters = dict(adapters)
        self._rails = dict(rails)
        self._table = table
        self._breakers = breakers
        self._planner = RoutePlanner(table, breakers, self._adapters, cost)
        # The routes whose networks limit what their messages carry (CheckedAdapter).
        self._checks = {
            route: cast(CheckedAdapter, adapter).violations
            for route, adapter in self._adapters.items()
            if callable(getattr(adapter, "violations", None))
        }

    def plan(self, authorization: Authorization, card_bin: str | None) -> list[str]:
        """The routes to try, best first; empty when none can take it now."""
        return self._planner.plan(authorization, card_bin)

    def carriers(self, plan: list[str], authorization: Authorization) -> tuple[list[str], list[Violation]]:
        """The routes of plan whose networks can carry the authorization's fields, in order; when
        none can, [] and why the first cannot."""
        checks = self._checks
        if not checks or not any(route in checks for route in plan):
            return plan, []
        carrying: list[str] = []
        first: list[Violation] = []
        for route in plan:
            check = checks.get(route)
            violations = check(authorization) if check is not None else []
            if not violations:
                carrying.append(route)
            elif not first:
                first = violations
        return carrying, first if not carrying else []

    def routable(self, authorization: Authorization, card_bin: str | None) -> bool:
        """Whether any route serves this authorization at all (open breakers aside)."""
        return any(route in self._adapters for route in self._table.candidates(authorization, card_bin))

    def card_country(self, card_bin: str | None) -> str:
        """The card's country, from the routing's BIN table ("" when unknown)."""
        return self._table.card_country(card_bin)

    def next_route(self, plan: Sequence[str], failed: str) -> str | None:
        return self._planner.next_route(plan, failed)

    def acquire(self, route: str) -> bool:
        """Asks the route's breaker for one call; False: send nothing there now."""
        return self._breakers.acquire(route)

    def record(self, route: str, outcome: CallOutcome) -> None:
        self._breakers.record(route, outcome)

    def breaker_states(self) -> dict[str, BreakerState]:
        """Every route's breaker state, for operators."""
        return {route: self._breakers.state(route) for route in self._adapters}

    def adapter(self, route: str) -> Adapter:
        return self._adapters[route]

    def settles(self, route: str) -> bool:
        """Whether an approval on route moves the money at once (see Capability.SETTLES_ON_AUTHORIZE)."""
        adapter = self._adapters.get(route)
        return adapter is not None and Capability.SETTLES_ON_AUTHORIZE in adapter.capabilities

    def rail(self, route: str) -> str:
        return self._rails[route]

    @property
    def adapters(self) -> list[Adapter]:
        return list({id(a): a for a in self._adapters.values()}.values())
