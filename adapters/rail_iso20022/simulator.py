"""An instant-payment rail on the far side of the ISO 20022 link, for tests and local runs.

It resolves acmt.023 identification requests (an alias "unknown@..." is not
found; other aliases resolve to an account that keeps the alias's test suffix),
and answers pacs.008 transfers by the debtor account's suffix: "-insufficient"
RJCT AM04, "-closed" RJCT AC04, "-timeout" approved after late_delay seconds,
anything else ACSC. A pacs.004 return is matched to its transfer by UETR: ACSC
while what it returns fits what the transfer settled, RJCT NOOR for a transfer it
never settled, RJCT AM09 past the amount, and the first answer again for a
return it saw (by RtrId). A camt.056 recall is answered by a camt.029 resolution:
RJCR NOOR for a transfer it never settled, RJCR with recall_rejection (a reason
code, e.g. CUST) when that option is set, CNCL otherwise; an accepted recall is
followed, return_delay seconds later, by a pacs.004 returning the whole transfer
(reason FOCR), sent on the recall's connection and again every resend_after
seconds, and on every new connection, until the switch acknowledges it with a
pacs.002. Answers go from the request's receiving agent back to its sender.
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
    def __init__(
        self,
        *,
        recall_rejection: str = "",
        return_delay: float = 0.05,
        resend_after: float = 1.0,
        **behaviour: Any,
    ) -> None:
        """recall_rejection: the reason every recall of a settled transfer is rejected with
        ("": accepted); return_delay: seconds from accepting a recall to sending its return;
        resend_after: seconds before an unacknowledged return goes again; behaviour:
        latency, drops and late answers, see SimulatorServer."""
        super().__init__(**behaviour)  # received: by message type, "acmt.023", "pacs.008", ...
        self.recall_rejection = recall_rejection
        self.return_delay = return_delay
        self.resend_after = resend_after
        self.transfers: dict[str, Message] = {}  # the pacs.008 of each transfer settled, by UETR
        # Returns of accepted recalls not yet acknowledged, by MsgId, as framed; and the
        # acknowledgements received, by the returned transfer's UETR.
        self.outbox: dict[str, bytes] = {}
        self.acknowledged: dict[str, str] = {}
        self._recalled: set[str] = set()  # UETRs whose return is made
        self._sequence = 0
        # What it settled and returned, by UETR: a return must name a settled transfer and
        # may not return more than it moved; a return sent again (its RtrId) is answered
        # as the first time, and returns nothing twice.
        self.settled: dict[str, Decimal] = {}
        self.returned: dict[str, Decimal] = {}
        self._returns: dict[str, tuple[str, str]] = {}  # RtrId -> (status, reason) answered

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for frame in list(self.outbox.values()):
            writer.write(frame)  # returns a lost connection left unacknowledged
        with contextlib.suppress(framing.FramingError):
            while True:
                message = await framing.read_message(reader)
                self.received[message.type] += 1
                log.debug("received %s", mapping.describe(message))
                if message.type == spec.STATUS_REPORT:
                    self._acknowledged(message)
                else:
                    self.answer_later(self._answer(message, writer))

    def _acknowledged(self, status: Message) -> None:
        """The switch's pacs.002 for a return: it stops going again."""
        return_msg_id, _ = mapping.answer_key(status)
        if self.outbox.pop(return_msg_id, None) is not None:
            self.acknowledged[status.text("TxInfAndSts/OrgnlUETR")] = status.text("TxInfAndSts/TxSts")

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
        if request.type == spec.RECALL and answer.text("Sts/Conf") == spec.RECALL_ACCEPTED:
            await self._send_return(writer, self.transfers[request.text("Undrlyg/TxInf/OrgnlUETR")])

    async def _send_return(self, writer: asyncio.StreamWriter, transfer: Message) -> None:
        """Sends the return of an accepted recall, again until the switch acknowledges it.
        One return per transfer, however often it is recalled."""
        uetr = transfer.text("CdtTrfTxInf/PmtId/UETR")
        return_id = "RTN" + uetr.replace("-", "")[:24].upper()
        if uetr in self._recalled:
            return
        self._recalled.add(uetr)
        await asyncio.sleep(self.return_delay)
        message = mapping.recall_return(self._next_id(), transfer, return_id, now=datetime.now(UTC))
        msg_id = message.text("GrpHdr/MsgId")
        self.outbox[msg_id] = framing.encode(message)
        self.returned[uetr] = self.settled[uetr]
        while msg_id in self.outbox and not writer.is_closing():
            writer.write(self.outbox[msg_id])
            log.debug("sent %s", mapping.describe(message))
            await asyncio.sleep(self.resend_after)

    def _decide(self, request: Message) -> Message:
        now = datetime.now(UTC)
        msg_id = self._next_id()
        if request.type == spec.IDENTIFICATION_REQUEST:
            return mapping.identification_report(msg_id, request, _resolve(request), now=now)
        if request.type == spec.RECALL:
            if request.text("Undrlyg/TxInf/OrgnlUETR") not in self.transfers:
                return mapping.resolution(msg_id, request, False, reason=spec.NO_ORIGINAL, now=now)
            if self.recall_rejection:
                return mapping.resolution(msg_id, request, False, reason=self.recall_rejection, now=now)
            return mapping.resolution(msg_id, request, True, now=now)
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
        self.transfers[uetr] = request
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
