"""The adapter contract: how the switch talks to a card network, an acquirer or a rail.

An adapter is one small async object with one method, send(), that takes a batch
of requests and returns one result per request, in order. It declares what it
can do; the core finds it through the "switch.adapters" entry-point group and
never imports a concrete adapter.

A decline is a result. An adapter raises AdapterUnavailable only when nothing was
sent (the route is down: failing over is safe). A request sent but not answered
in time is an unknown outcome: a result with unknown=True, never a decline the
switch could forget, because the network may have approved it.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol

from switch.domain.errors import Violation
from switch.domain.models import Account, Authorization, Card, Instrument, Money, OperationKind
from switch.domain.response_codes import ResponseCode

ENTRY_POINT_GROUP = "switch.adapters"


class Capability(enum.Enum):
    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    PARTIAL_CAPTURE = "partial_capture"
    VOID = "void"
    REFUND = "refund"
    REVERSE = "reverse"
    STATUS_INQUIRY = "status_inquiry"
    # An approval moves the money at once (an instant push payment): the switch records
    # it settled (captured in full), nothing is captured or voided, and money goes back
    # by Refund (a return).
    SETTLES_ON_AUTHORIZE = "settles_on_authorize"
    # The network matches a reversal by the card (ISO 8583 DE 2 on an 0420): the switch
    # hands a REVERSE the clear card again, from the transaction's token, inside the
    # tokenizer boundary.
    CARD_ON_REVERSAL = "card_on_reversal"
    # The network sends money back on its own initiative (a return that follows an
    # accepted recall): the adapter delivers each return to the handler the switch
    # gives listen(), and acknowledges it to the network only once that returns.
    RETURNS = "returns"


@dataclass(frozen=True, slots=True, repr=False)
class AdapterRequest:
    kind: OperationKind
    transaction_id: str
    merchant_id: str
    amount: Money
    instrument: Instrument | None = None  # None for a capture, void or refund
    # The clear card: for an authorization from a card, and for a reversal on a network
    # that matches reversals by the card (Capability.CARD_ON_REVERSAL).
    card: Card | None = None
    account: Account | None = None
    destination: Account | None = None
    authorization_code: str = ""  # of the original authorization, for captures, voids, refunds
    # A capture's, void's or refund's own id, the same on every send of it: networks
    # apply an operation once per reference and answer a repeat with the first answer,
    # which makes resending one whose outcome is unknown safe. "" for authorizations.
    reference: str = ""

    def __repr__(self) -> str:
        shown = self.instrument.masked if self.instrument else self.authorization_code
        return f"AdapterRequest({self.kind.value} {self.transaction_id} {shown} {self.amount})"


@dataclass(slots=True)  # built per authorization, so not frozen: see switch.domain.models
class AdapterResult:
    response_code: str
    message: str = ""
    authorization_code: str = ""
    network_reference: str = ""
    unknown: bool = False  # sent, but no answer in time: the outcome is unknown
    # An approved reversal whose money comes back later, in a return the adapter
    # delivers (Capability.RETURNS): a recall the receiving bank accepted.
    settles_later: bool = False

    @property
    def approved(self) -> bool:
        return self.response_code == ResponseCode.APPROVED.code and not self.unknown

    @classmethod
    def timed_out(cls) -> AdapterResult:
        code = ResponseCode.ISSUER_UNAVAILABLE
        return cls(code.code, "no answer in time; outcome unknown", unknown=True)


@dataclass(frozen=True, slots=True)
class Return:
    """Money a network sent back for one of the switch's transactions: the return that
    completes an accepted recall."""

    transaction_id: str
    amount: Money
    reference: str  # the network's id of the return, the same on every delivery of it
    reason: str = ""  # the network's reason code


# What the switch gives listen(): it raises when the returns are not yet durable, and the
# adapter then leaves them unacknowledged, for the network to deliver again.
DeliverReturns = Callable[[Sequence[Return]], Awaitable[None]]


class AdapterUnavailable(Exception):
    """Nothing was sent: the route cannot be reached. Failing over is safe."""


class Adapter(Protocol):
    name: str
    capabilities: frozenset[Capability]

    async def start(self) -> None: ...

    async def send(self, requests: Sequence[AdapterRequest], time_left: float) -> list[AdapterResult]:
        """One result per request, in order, within time_left seconds."""
        ...

    async def close(self) -> None: ...


class CheckedAdapter(Adapter, Protocol):
    """An adapter whose network limits what its messages carry (an ISO 20022 id's length
    and character set). The switch asks when it plans the route, before anything is sent
    or stored: a route that cannot carry an authorization is skipped, and when no route
    of its plan can, the caller gets INVALID_ARGUMENT naming the fields, and the key and
    counters are given back."""

    def violations(self, authorization: Authorization) -> list[Violation]:
        """The fields this network cannot carry, by their path in the API request ("source.account.id")
        and why, never quoting the value; [] when it can carry them all."""
        ...


class ReturnsAdapter(Adapter, Protocol):
    """An adapter with Capability.RETURNS."""

    def listen(self, deliver: DeliverReturns) -> None:
        """Called once, before start(): where the returns the network sends go."""
        ...


class AdapterFactory(Protocol):
    def __call__(self, name: str, options: Mapping[str, Any]) -> Adapter: ...


def discover() -> dict[str, AdapterFactory]:
    """Every installed adapter, by entry-point name. Installed is not enabled: the
    configuration's routes name the ones that run."""
    return {ep.name: ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP)}
