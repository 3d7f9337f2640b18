"""An issuer on the far side of the ISO 8583 link, for tests and local runs.

It answers 0100 with the built-in simulated issuer's rules (the same test
cards), 0220, 0400 and 0420 with approvals, and 0800 sign-ons and echoes. One
more test card, 4000000000000119, approves but only after late_delay seconds,
to exercise unknown outcomes. Options make the network misbehave: latency and jitter
(every answer), drop_rate (no answer at all), slow_rate (answer after late_delay) and
disconnect_after (close each connection after that many requests). extra_fields
answers as many networks do, with data elements the switch never asked for: field
32 echoed, 43 (the acceptor as the network has it), 44 and 54.

    simulator, port = await start_simulator("127.0.0.1", 0, latency=0.01)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from switch.adapters.contract import AdapterRequest
from switch.domain.models import Card, Money, OperationKind

from ..simulated import SimulatedIssuer
from ..simulator_server import SimulatorServer
from . import framing, mapping, spec
from .framing import Message

log = logging.getLogger(__name__)

LATE_CARD = "4000000000000119"

# Request fields an answer does not repeat: bitmaps, expiry, original data, the acceptor's.
_NOT_ECHOED = frozenset({"p", "1", "14", "18", "22", "25", "32", "43", "90"})
# What extra_fields adds: the acceptor as the network knows it, and an available balance (54).
EXTRA_ACCEPTOR = "NETWORK VIEW OF MERCHANT".ljust(25) + "SOMEWHERE".ljust(13) + "US"
EXTRA_AMOUNTS = "0002840C000000012345"


class IssuerSimulator(SimulatorServer):
    def __init__(
        self, *, jitter: float = 0.0, disconnect_after: int = 0, extra_fields: bool = False, **behaviour: Any
    ) -> None:
        """jitter: up to this many seconds more per answer; disconnect_after: drop each
        connection after this many requests (0: never); extra_fields: see the module;
        behaviour: see SimulatorServer."""
        super().__init__(**behaviour)  # received: by MTI, and "echo" / "sign-on" for 0800s
        self.jitter = jitter
        self.disconnect_after = disconnect_after
        self.extra_fields = extra_fields
        self._issuer = SimulatedIssuer("iso8583-simulator")

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests = 0
        with contextlib.suppress(framing.FramingError):
            while True:
                message = await framing.read_message(reader)
                self._count(message)
                if message.get("t") != spec.NETWORK:
                    requests += 1
                    if self.disconnect_after and requests >= self.disconnect_after:
                        log.info("disconnecting a client after %d requests", requests)
                        return
                self.answer_later(self._answer(message, writer))

    def _count(self, message: Message) -> None:
        kind = message.get("t", "?")
        if kind == spec.NETWORK:
            kind = "echo" if message.get("70") == spec.ECHO else "sign-on"
        self.received[kind] += 1
        log.debug("received %s", mapping.describe(message))

    async def _answer(self, request: Message, writer: asyncio.StreamWriter) -> None:
        delay = self.latency
        if request.get("t") != spec.NETWORK:
            if self.drops():
                log.debug("dropping %s", mapping.describe(request))
                return
            # Only the late card's authorization is late: its reversal, which carries the card too, is not.
            delay = self.delay(late=request.get("t") == spec.AUTHORIZATION and request.get("2") == LATE_CARD)
        # Jitter makes answers overtake each other, as they do on a real network.
        delay += self._random.uniform(0.0, self.jitter)
        answer = await self._decide(request)
        if await self.reply(writer, framing.encode(answer), delay):
            log.debug("answered %s", mapping.describe(answer))

    async def _decide(self, request: Message) -> Message:
        kind = request["t"]
        answer = {key: value for key, value in request.items() if key not in _NOT_ECHOED}
        answer["t"] = spec.RESPONSE_TO.get(kind, kind[:2] + "10")
        if self.extra_fields and kind != spec.NETWORK:
            answer |= {"32": request.get("32", "1"), "43": EXTRA_ACCEPTOR, "44": "A5", "54": EXTRA_AMOUNTS}
        if kind != spec.AUTHORIZATION:
            answer["39"] = "00" if kind in spec.RESPONSE_TO else "12"
            return answer
        (result,) = await self._issuer.send([_adapter_request(request)], time_left=60.0)
        answer["39"] = result.response_code
        if result.authorization_code:
            answer["38"] = result.authorization_code
        return answer


def _adapter_request(message: Message) -> AdapterRequest:
    """The authorization the simulated issuer decides on, rebuilt from an 0100."""
    expiry = message.get("14", "0000")
    card = Card(message["2"], expiry_month=int(expiry[2:]), expiry_year=2000 + int(expiry[:2]))
    currency = mapping.ALPHA_CURRENCY.get(message.get("49", ""), "USD")
    return AdapterRequest(
        kind=OperationKind.AUTHORIZE,
        transaction_id=message.get("37", ""),
        merchant_id=message.get("42", "").strip(),
        amount=Money(int(message.get("4", "0")), currency),
        card=card,
    )


start_simulator = IssuerSimulator.listening  # the `switch.simulators` entry point
