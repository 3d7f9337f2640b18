"""An instant-payment rail on the far side of the ISO 20022 link, for tests and local runs.

It resolves acmt.023 identification requests (an alias "unknown@..." is not
found; other aliases resolve to an account that keeps the alias's test suffix),
and answers pacs.008 transfers by the debtor account's suffix: "-insufficient"
RJCT AM04, "-closed" RJCT AC04, "-timeout" approved after late_delay seconds,
anything else ACSC. A pacs.004 return is matched to its transfer by UETR: ACSC
while what it returns fits what the transfer settled, RJCT NOOR for a transfer it
never settled, RJCT AM09 past the amount, and the first answer again for a
return it saw (by RtrId); camt.056
recalls are accepted by a camt.029 resolution (CNCL). Answers go from the request's
receiving agent back to its sender.
Options make the network misbehave on payment messages (not on inquiries):
latency (every answer), drop_rate (no answer at all), slow_rate (answer after
late_delay); seed makes them repeatable.

    simulator, port = await start_simulator("127.0.0.1", 0, latency=0.01)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import string
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ..simulator_server import SimulatorServer
from . import framing, mapping, spec
from .framing import Message

log = logging.getLogger(__name__)

SUFFIXES = ("-insufficient", "-closed", "-timeout")
_REJECTIONS = {"-insufficient": "AM04", "-closed": "AC04"}
_REFERENCE_ALPHABET = string.ascii_uppercase + string.digits


class RailSimulator(SimulatorServer):
    def __init__(self, **behaviour: Any) -> None:
        """behaviour: latency, drops and late answers, see SimulatorServer."""
        super().__init__(**behaviour)  # received: by message type, "acmt.023", "pacs.008", ...
        self._sequence = 0
        # What it settled and returned, by UETR: a return must name a settled transfer and
        # may not return more than it moved; a return sent again (its RtrId) is answered
        # as the first time, and returns nothing twice.
        self.settled: dict[str, Decimal] = {}
        self.returned: dict[str, Decimal] = {}
        self._returns: dict[str, tuple[str, str]] = {}  # RtrId -> (status, reason) answered

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(framing.FramingError):
            while True:
                message = await framing.read_message(reader)
                self.received[message.type] += 1
                log.debug("received %s", mapping.describe(message))
                self.answer_later(self._answer(message, writer))

    async def _answer(self, request: Message, writer: asyncio.StreamWriter) -> None:
        delay = self.latency
        if request.type != spec.IDENTIFICATION_REQUEST:
            if self.drops():
                log.debug("dropping %s", mapping.describe(request))
                return
            delay = self.delay(late=request.text("CdtTrfTxInf/DbtrAcct/Id/Othr/Id").endswith("-timeout"))
        answer = self._decide(request)
        if await self.reply(writer, framing.encode(answer), delay):
            log.debug("answered %s", mapping.describe(answer))

    def _decide(self, request: Message) -> Message:
        now = datetime.now(UTC)
        msg_id = self._next_id()
        if request.type == spec.IDENTIFICATION_REQUEST:
            return mapping.identification_report(msg_id, request, _resolve(request), now=now)
        if request.type == spec.RECALL:
            return mapping.resolution(msg_id, request, accepted=True, now=now)
        if request.type == spec.PAYMENT_RETURN:
            return self._return(msg_id, request, now)
        if request.type != spec.CREDIT_TRANSFER:
            return mapping.status_report(msg_id, request, spec.REJECTED, reason="FF01", now=now)
        debtor = request.text("CdtTrfTxInf/DbtrAcct/Id/Othr/Id")
        for suffix, reason in _REJECTIONS.items():
            if debtor.endswith(suffix):
                return mapping.status_report(msg_id, request, spec.REJECTED, reason=reason, now=now)
        reference = "".join(self._random.choice(_REFERENCE_ALPHABET) for _ in range(16))
        uetr = request.text("CdtTrfTxInf/PmtId/UETR")
        self.settled[uetr] = Decimal(request.text("CdtTrfTxInf/IntrBkSttlmAmt"))
        return mapping.status_report(msg_id, request, "ACSC", reference=reference, now=now)

    def _return(self, msg_id: str, request: Message, now: datetime) -> Message:
        return_id = request.text("TxInf/RtrId")
        if return_id not in self._returns:
            self._returns[return_id] = self._apply_return(request)
        status, reason = self._returns[return_id]
        return mapping.status_report(msg_id, request, status, reason=reason, now=now)

    def _apply_return(self, request: Message) -> tuple[str, str]:
        uetr = request.text("TxInf/OrgnlUETR")
        amount = Decimal(request.text("TxInf/RtrdIntrBkSttlmAmt") or "0")
        returned = self.returned.get(uetr, Decimal(0))
        if uetr not in self.settled:
            return spec.REJECTED, "NOOR"  # no original transaction received
        if returned + amount > self.settled[uetr]:
            return spec.REJECTED, "AM09"  # wrong amount
        self.returned[uetr] = returned + amount
        return "ACSC", ""

    def _next_id(self) -> str:
        self._sequence += 1
        return f"RAIL{self._sequence:012d}"


def _resolve(request: Message) -> str | None:
    """The account an alias or account id stands for; None for "unknown@..." aliases."""
    alias = request.text("Vrfctn/PtyAndAcctId/Acct/Prxy/Id")
    if not alias:
        return request.text("Vrfctn/PtyAndAcctId/Acct/Id/Othr/Id") or None
    if alias.startswith("unknown@"):
        return None
    suffix = next((suffix for suffix in SUFFIXES if alias.endswith(suffix)), "")
    return "ACC" + hashlib.sha256(alias.encode()).hexdigest()[:10].upper() + suffix


start_simulator = RailSimulator.listening  # the `switch.simulators` entry point
