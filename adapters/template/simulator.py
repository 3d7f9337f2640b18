"""The network on the far side of the template's protocol, for tests and local runs.

Authorizations are approved except for these test instruments; every other
operation is approved:

    card 4000000000000002        declined "do_not_honor"
    card 4000000000009995        declined "insufficient_funds"
    card 4000000000000119        approved, but only after late_delay seconds
    account "...-insufficient"   declined "insufficient_funds"
    account "...-closed"         declined "unknown_account"
    account "...-timeout"        approved, but only after late_delay seconds

Options make the network misbehave, with the same names `switch sim` passes:
latency (every answer), drop_rate (no answer at all), slow_rate (answer after
late_delay); seed makes them repeatable.

    simulator, port = await start_simulator("127.0.0.1", 0, latency=0.01)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import string
from typing import Any

from switch.domain.models import OperationKind

from ..simulator_server import SimulatorServer
from . import framing, mapping
from .framing import Message

log = logging.getLogger(__name__)

DECLINED_CARDS = {"4000000000000002": "do_not_honor", "4000000000009995": "insufficient_funds"}
DECLINED_ACCOUNTS = {"-insufficient": "insufficient_funds", "-closed": "unknown_account"}
LATE_CARD = "4000000000000119"
LATE_ACCOUNT_SUFFIX = "-timeout"
_OPERATIONS = frozenset(kind.value for kind in OperationKind)
_CODE_ALPHABET = string.ascii_uppercase + string.digits


class TemplateSimulator(SimulatorServer):
    def __init__(self, **behaviour: Any) -> None:
        """behaviour: latency, drops and late answers (what `switch sim` passes), see
        SimulatorServer."""
        super().__init__(**behaviour)  # received: by operation, "authorize", "capture", ...
        self._references = itertools.count(1)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(framing.FramingError):
            while True:
                message = await framing.read_message(reader)
                self.received[str(message.get("op", "?"))] += 1
                log.debug("received %s", mapping.describe(message))
                self.answer_later(self._answer(message, writer))

    async def _answer(self, request: Message, writer: asyncio.StreamWriter) -> None:
        if self.drops():
            log.debug("dropping %s", mapping.describe(request))
            return
        delay = self.delay(late=_late(request))
        answer = self._decide(request)
        if await self.reply(writer, framing.encode(answer), delay):
            log.debug("answered %s", mapping.describe(answer))

    def _decide(self, request: Message) -> Message:
        result = _result(request)
        # An answer carries the request's ids back, never its card or account.
        answer: Message = {
            "id": request["id"],
            "ref": request.get("ref", ""),
            "result": result,
            "network_ref": f"N{next(self._references):010d}",
        }
        if result == "approved" and request.get("op") == OperationKind.AUTHORIZE.value:
            answer["auth_code"] = "".join(self._random.choice(_CODE_ALPHABET) for _ in range(6))
        return answer


def _result(request: Message) -> str:
    operation = request.get("op")
    if operation not in _OPERATIONS:
        return "invalid"
    if operation != OperationKind.AUTHORIZE.value:
        return "approved"
    card = request.get("card")
    if isinstance(card, dict):
        return DECLINED_CARDS.get(str(card.get("number", "")), "approved")
    account = str(request.get("account", ""))
    if not account:
        return "invalid"
    return next((result for suffix, result in DECLINED_ACCOUNTS.items() if account.endswith(suffix)), "approved")


def _late(request: Message) -> bool:
    card = request.get("card")
    if isinstance(card, dict):
        return card.get("number") == LATE_CARD
    return str(request.get("account", "")).endswith(LATE_ACCOUNT_SUFFIX)


start_simulator = TemplateSimulator.listening  # the `switch.simulators` entry point
