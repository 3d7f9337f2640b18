"""The built-in simulated issuer: answers like a card issuer or a local rail would.

It approves every valid card except the test cards below, approves account
payments on any rail, and can add latency. It runs in process behind the same
contract as a real adapter, so the pipeline and the tests exercise real paths.

Test instruments:
    4000000000000002   declined "05" do not honor
    4000000000009995   declined "51" insufficient funds
    expired card       declined "54"
    account ids ending "-insufficient"   declined "51"

Like a real network, it applies a capture, void or refund once per reference
(AdapterRequest.reference) and answers a repeat with the first answer, for the
last REMEMBERED_REFERENCES references.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from switch.adapters.contract import AdapterRequest, AdapterResult, Capability
from switch.domain.models import OperationKind
from switch.domain.response_codes import ResponseCode

DECLINED_CARDS = {
    "4000000000000002": ResponseCode.DO_NOT_HONOR,
    "4000000000009995": ResponseCode.INSUFFICIENT_FUNDS,
}
REMEMBERED_REFERENCES = 100_000
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_BYTE_TO_LETTER = bytes(ord(_ALPHABET[byte % 32]) for byte in range(256))


class SimulatedIssuer:
    capabilities = frozenset(Capability) - {
        Capability.SETTLES_ON_AUTHORIZE,
        Capability.RETURNS,
        Capability.CARD_ON_REVERSAL,
    }  # a card issuer

    def __init__(self, name: str = "simulated", options: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self._latency = float((options or {}).get("latency_ms", 0.0)) / 1000.0
        self._answered: OrderedDict[str, AdapterResult] = OrderedDict()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, requests: Sequence[AdapterRequest], time_left: float) -> list[AdapterResult]:
        if self._latency:
            if self._latency > time_left:
                await asyncio.sleep(time_left)
                return [AdapterResult.timed_out() for _ in requests]
            await asyncio.sleep(self._latency)
        codes = _authorization_codes(len(requests))
        return [self._once(request, code) for request, code in zip(requests, codes, strict=True)]

    def _once(self, request: AdapterRequest, authorization_code: str) -> AdapterResult:
        """The answer to a request; a reference seen before gets its first answer again."""
        if not request.reference:
            return self._answer(request, authorization_code)
        answer = self._answered.get(request.reference)
        if answer is None:
            answer = self._answered[request.reference] = self._answer(request, authorization_code)
            if len(self._answered) > REMEMBERED_REFERENCES:
                self._answered.popitem(last=False)
        return answer

    def _answer(self, request: AdapterRequest, authorization_code: str) -> AdapterResult:
        if request.kind is not OperationKind.AUTHORIZE:
            return _approve(authorization_code)
        code = ResponseCode.APPROVED
        if request.card is not None:
            code = DECLINED_CARDS.get(request.card.pan, code)
            # A card from a token carries no expiry (month 0): the token stands for the PAN.
            if request.card.expiry_month and _expired(request.card.expiry_month, request.card.expiry_year):
                code = ResponseCode.EXPIRED_CARD
        elif request.account is not None and request.account.id.endswith("-insufficient"):
            code = ResponseCode.INSUFFICIENT_FUNDS
        return _approve(authorization_code) if code is ResponseCode.APPROVED else AdapterResult(code.code, code.message)


def _authorization_codes(count: int) -> list[str]:
    """Six random letters each, from one system call for the whole batch. 256 is a
    multiple of the 32 letters, so taking a byte "% 32" keeps them uniform."""
    letters = os.urandom(6 * count).translate(_BYTE_TO_LETTER).decode("ascii")
    return [letters[start : start + 6] for start in range(0, 6 * count, 6)]


def _approve(code: str) -> AdapterResult:
    return AdapterResult(ResponseCode.APPROVED.code, ResponseCode.APPROVED.message, authorization_code=code)


def _expired(month: int, year: int) -> bool:
    now = time.gmtime()
    return (year, month) < (now.tm_year, now.tm_mon)
