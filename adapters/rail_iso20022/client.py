"""The I/O of the ISO 20022 rail adapter: one persistent TCP connection, multiplexed.

The connection, multiplexing, loss and reconnection are the shared client's
(adapters/multiplexed_client.py). What is the rail's own: every request gets a
MsgId unique to this client, and an answer must carry its request's EndToEndId
too, so a stray answer cannot settle the wrong transfer; and the rail sends requests
of its own, the pacs.004 returns of recalls it accepted, which the client hands to
the switch and acknowledges (pacs.002 ACSC) only once the switch has them durable.
Unacknowledged, a return is the rail's to send again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from switch.adapters.contract import DeliverReturns

from ..multiplexed_client import MultiplexedClient
from . import framing, mapping, spec
from .framing import Message

log = logging.getLogger(__name__)

Build = Callable[[str], Message]  # MsgId -> the request carrying it


class RailClient(MultiplexedClient[Message]):
    framing_error = framing.FramingError

    id_prefix = "SW"

    def _encode(self, message: Message) -> bytes:
        return framing.encode(message)

    async def _read(self, reader: asyncio.StreamReader) -> Message:
        return await framing.read_message(reader)

    def _request_key(self, message: Message) -> tuple[str, str]:
        return mapping.request_key(message)

    def _answer_key(self, message: Message) -> tuple[str, str]:
        return mapping.answer_key(message)

    def _describe(self, message: Message) -> str:
        return mapping.describe(message)

    _deliver: DeliverReturns | None = None

    def listen(self, deliver: DeliverReturns) -> None:
        self._deliver = deliver

    def _inbound(self, message: Message) -> bool:
        if message.type != spec.PAYMENT_RETURN:
            return False
        self._in_background(self._take_return(message))
        return True

    async def _take_return(self, message: Message) -> None:
        try:
            returned = mapping.returned(message)
        except ValueError as error:
            # Not one of this switch's transfers, or unreadable: refused, so the money goes back.
            log.warning("return refused (%s): %s", error, mapping.describe(message))
            self._write(self._status(message, spec.REJECTED, spec.UNREADABLE))
            return
        if self._deliver is None:
            log.warning("return left unacknowledged, nothing takes returns here: %s", mapping.describe(message))
            return
        try:
            await self._deliver([returned])
        except Exception as error:
            log.warning(
                "return %s of %s not yet durable (%s); the rail sends it again",
                returned.reference,
                returned.transaction_id,
                type(error).__name__,
            )
            return
        if not self._write(self._status(message, spec.SETTLED)):
            log.info("return %s journaled; its acknowledgement waits for the rail to send it again", returned.reference)

    def _status(self, request: Message, status: str, reason: str = "") -> Message:
        return mapping.status_report(self._next_id(), request, status, reason=reason, now=datetime.now(UTC))
