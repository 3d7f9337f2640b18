"""Test doubles for code that uses the adapter contract.

MockAdapter answers each request with a plain function, so a test states the
network's behaviour in one line: `MockAdapter(lambda r: AdapterResult("05"))`.
It records every request it saw (masked in its repr, like the real ones).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from switch.adapters.contract import AdapterRequest, AdapterResult, AdapterUnavailable, Capability
from switch.domain.response_codes import ResponseCode

Handler = Callable[[AdapterRequest], AdapterResult]


def approve_all(_: AdapterRequest) -> AdapterResult:
    return AdapterResult(ResponseCode.APPROVED.code, "approved", authorization_code="A1B2C3")


class MockAdapter:
    capabilities = frozenset(Capability) - {
        Capability.SETTLES_ON_AUTHORIZE,
        Capability.RETURNS,
        Capability.CARD_ON_REVERSAL,
    }

    def __init__(
        self, handler: Handler = approve_all, *, name: str = "mock", delay: float = 0.0, down: bool = False
    ) -> None:
        self.name = name
        self.handler = handler
        self.delay = delay
        self.down = down
        self.seen: list[AdapterRequest] = []
        self.batches: list[int] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, requests: Sequence[AdapterRequest], time_left: float) -> list[AdapterResult]:
        if self.down:
            raise AdapterUnavailable(f"{self.name} is down")
        self.seen.extend(requests)
        self.batches.append(len(requests))
        if self.delay:
            await asyncio.sleep(self.delay)
        return [self.handler(request) for request in requests]
