"""The example adapter process's service: Describe and Send of switch.v1.Adapter."""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections import Counter, OrderedDict
from typing import Any

import grpc

from switch.v1 import adapter_pb2, adapter_pb2_grpc

log = logging.getLogger(__name__)

DECLINED_CARDS = {"4000000000000002": ("05", "do not honor"), "4000000000009995": ("51", "insufficient funds")}
LATE_CARD = "4000000000000119"
# How long before the call's deadline the unanswered operations are given up as
# unknown, so the reply still reaches the switch in time.
ANSWER_RESERVE = 0.05
REMEMBERED_REFERENCES = 100_000
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_OPERATION_NAMES = {
    value: name.removeprefix("OPERATION_KIND_").lower() for name, value in adapter_pb2.OperationKind.items()
}


class RemoteIssuer(adapter_pb2_grpc.AdapterServicer):
    def __init__(
        self,
        *,
        latency: float = 0.0,
        drop_rate: float = 0.0,
        slow_rate: float = 0.0,
        late_delay: float = 5.0,
        seed: int | None = None,
    ) -> None:
        self.latency = latency
        self.drop_rate = drop_rate
        self.slow_rate = slow_rate
        self.late_delay = late_delay
        self.network_up = True  # False: every Send answers `unavailable`, as when the network is down
        self.received: Counter[str] = Counter()  # operations by kind, for tests and operators
        self.reversals: Counter[str] = Counter()  # reversal requests by transaction id
        # A capture's, void's or refund's first answer by its reference: a resend is
        # answered with it and applied once, as networks do.
        self.answered: OrderedDict[str, adapter_pb2.AdapterOutcome] = OrderedDict()
        self._random = random.Random(seed)
        self._server: grpc.aio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Serves on host:port (0: any free port); returns the port."""
        self._server = grpc.aio.server()
        adapter_pb2_grpc.add_AdapterServicer_to_server(self, self._server)
        bound = self._server.add_insecure_port(f"{host}:{port}")
        await self._server.start()
        return bound

    async def close(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=0.5)

    async def Describe(
        self, request: adapter_pb2.DescribeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> adapter_pb2.DescribeResponse:
        return adapter_pb2.DescribeResponse(
            name="remote-issuer",
            capabilities=[
                adapter_pb2.CAPABILITY_AUTHORIZE,
                adapter_pb2.CAPABILITY_CAPTURE,
                adapter_pb2.CAPABILITY_PARTIAL_CAPTURE,
                adapter_pb2.CAPABILITY_VOID,
                adapter_pb2.CAPABILITY_REFUND,
                adapter_pb2.CAPABILITY_REVERSE,
            ],
        )

    async def Send(
        self, request: adapter_pb2.SendRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> adapter_pb2.SendResponse:
        if not self.network_up:
            return adapter_pb2.SendResponse(unavailable=True, unavailable_reason="issuer network down")
        exchanges = [asyncio.ensure_future(self._exchange(operation)) for operation in request.operations]
        remaining = context.time_remaining()
        budget = None if remaining is None else max(remaining - min(ANSWER_RESERVE, remaining / 4), 0.0)
        if exchanges:
            await asyncio.wait(exchanges, timeout=budget)
        outcomes = []
        for exchange in exchanges:
            if exchange.done():
                outcomes.append(exchange.result())
            else:  # sent, not answered in time: the switch must treat it as unknown
                exchange.cancel()
                outcomes.append(adapter_pb2.AdapterOutcome(response_code="91", unknown=True))
        return adapter_pb2.SendResponse(outcomes=outcomes)

    async def _exchange(self, operation: adapter_pb2.AdapterOperation) -> adapter_pb2.AdapterOutcome:
        """One operation's trip to the network and back."""
        kind = _OPERATION_NAMES.get(operation.kind, "unspecified")
        self.received[kind] += 1
        log.info("%s %s %s", kind, operation.transaction_id, operation.masked_instrument)
        delay = self.latency
        if self._random.random() < self.drop_rate:
            await asyncio.Event().wait()  # never answered
        if self._random.random() < self.slow_rate or _answers_late(operation):
            delay += self.late_delay
        if delay:
            await asyncio.sleep(delay)
        return self._decide(operation)

    def _decide(self, operation: adapter_pb2.AdapterOperation) -> adapter_pb2.AdapterOutcome:
        if operation.reference:
            first = self.answered.get(operation.reference)
            if first is None:
                first = self.answered[operation.reference] = self._decide_once(operation)
                if len(self.answered) > REMEMBERED_REFERENCES:
                    self.answered.popitem(last=False)
            return first
        return self._decide_once(operation)

    def _decide_once(self, operation: adapter_pb2.AdapterOperation) -> adapter_pb2.AdapterOutcome:
        if operation.kind == adapter_pb2.OPERATION_KIND_UNSPECIFIED:
            return adapter_pb2.AdapterOutcome(response_code="12", message="invalid transaction")
        if operation.kind == adapter_pb2.OPERATION_KIND_REVERSE:
            self.reversals[operation.transaction_id] += 1  # a repeat is acknowledged again
        if operation.kind != adapter_pb2.OPERATION_KIND_AUTHORIZE:
            return _approved()
        declined = _declined(operation)
        if declined is not None:
            code, message = declined
            return adapter_pb2.AdapterOutcome(response_code=code, message=message)
        return _approved()


def _declined(operation: adapter_pb2.AdapterOperation) -> tuple[str, str] | None:
    source = operation.WhichOneof("source")
    if source == "card":
        card = operation.card
        if card.pan in DECLINED_CARDS:
            return DECLINED_CARDS[card.pan]
        now = time.gmtime()
        if card.expiry_month and (card.expiry_year, card.expiry_month) < (now.tm_year, now.tm_mon):
            return "54", "expired card"
        return None
    if source == "account":
        return ("51", "insufficient funds") if operation.account.id.endswith("-insufficient") else None
    return "12", "invalid transaction: no source"


def _answers_late(operation: adapter_pb2.AdapterOperation) -> bool:
    if operation.kind != adapter_pb2.OPERATION_KIND_AUTHORIZE:
        return False
    return operation.card.pan == LATE_CARD or operation.account.id.endswith("-timeout")


def _approved() -> adapter_pb2.AdapterOutcome:
    code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(6))
    reference = secrets.token_hex(6)
    return adapter_pb2.AdapterOutcome(
        response_code="00", message="approved", authorization_code=code, network_reference=reference
    )


async def start_simulator(host: str = "127.0.0.1", port: int = 0, **options: Any) -> tuple[RemoteIssuer, int]:
    """A running example adapter process's service and its port (port 0: any free port)."""
    issuer = RemoteIssuer(**options)
    return issuer, await issuer.start(host, port)
