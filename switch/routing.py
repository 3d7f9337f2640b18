"""Picks the route of an authorization: cards go to the card route, accounts to their rail.

A route is a name (shown in AuthorizeResponse.route and the journal) bound to one
adapter. Rule-based routing, failover and circuit breaking build on this.
"""

from __future__ import annotations

from collections.abc import Mapping

from switch.adapter import Adapter
from switch.models import Account, Authorization

CARD_ROUTE = "card"


class Router:
    def __init__(self, routes: Mapping[str, Adapter]) -> None:
        self._routes = dict(routes)

    def route_of(self, authorization: Authorization) -> str | None:
        """The route's name, or None when no route serves this source."""
        source = authorization.source
        name = source.rail if isinstance(source, Account) else CARD_ROUTE
        return name if name in self._routes else None

    def adapter(self, route: str) -> Adapter:
        return self._routes[route]

    @property
    def adapters(self) -> list[Adapter]:
        return list({id(a): a for a in self._routes.values()}.values())
