"""The promises every adapter makes, as one pytest suite each adapter's tests subclass.

It ships with the switch (it needs pytest and pytest-asyncio), so an adapter in
its own package subclasses it the way the adapters in this tree do:

    from switch import AdapterConformance

A subclass provides three fixtures and two requests:

    adapter      a started adapter
    slow         (adapter, request): a request that adapter answers later than SLOW_TIME_LEFT
    down         (adapter, sent): an adapter whose route is down, and a count of what it sent;
                 the default skips, for adapters that cannot be down
    approving()  a request the adapter approves
    declining()  (request, code): a request it declines, and the code it declines with
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest

from switch.adapters.contract import Adapter, AdapterRequest, AdapterUnavailable, Capability
from switch.domain.models import Card, Money, OperationKind
from switch.domain.response_codes import ResponseCode

SLOW_TIME_LEFT = 0.2
# Scheduling slack on a busy test machine; far below any delay a test provokes.
SLACK = 0.3


def card_request(pan: str, transaction_id: str, amount: int = 1000, *, expiry_year: int = 2099) -> AdapterRequest:
    return AdapterRequest(
        kind=OperationKind.AUTHORIZE,
        transaction_id=transaction_id,
        merchant_id="merchant-1",
        amount=Money(amount, "USD"),
        card=Card(pan, 12, expiry_year),
    )


class AdapterConformance:
    @pytest.fixture
    async def adapter(self) -> AsyncIterator[Adapter]:
        raise NotImplementedError
        yield  # pragma: no cover

    @pytest.fixture
    async def slow(self) -> AsyncIterator[tuple[Adapter, AdapterRequest]]:
        raise NotImplementedError
        yield  # pragma: no cover

    @pytest.fixture
    async def down(self) -> AsyncIterator[tuple[Adapter, Callable[[], int]]]:
        pytest.skip("this adapter's route cannot be down")
        yield  # pragma: no cover

    def approving(self, transaction_id: str) -> AdapterRequest:
        raise NotImplementedError

    def declining(self, transaction_id: str) -> tuple[AdapterRequest, str]:
        raise NotImplementedError

    def test_capabilities_declared(self, adapter: Adapter) -> None:
        assert isinstance(adapter.name, str) and adapter.name
        assert isinstance(adapter.capabilities, frozenset)
        assert Capability.AUTHORIZE in adapter.capabilities
        assert all(isinstance(capability, Capability) for capability in adapter.capabilities)
        if Capability.RETURNS in adapter.capabilities:  # the switch hands it where returns go
            assert callable(getattr(adapter, "listen", None))

    async def test_one_result_per_request_in_order(self, adapter: Adapter) -> None:
        declined, code = self.declining("tx-2")
        requests = [self.approving("tx-1"), declined, self.approving("tx-3"), self.declining("tx-4")[0]]
        results = await adapter.send(requests, time_left=2.0)
        assert [result.response_code for result in results] == [ResponseCode.APPROVED.code, code, "00", code]
        assert [result.unknown for result in results] == [False] * 4

    async def test_a_decline_is_a_result(self, adapter: Adapter) -> None:
        request, code = self.declining("tx-decline")
        (result,) = await adapter.send([request], time_left=2.0)
        assert result.response_code == code
        assert not result.approved and not result.unknown

    async def test_an_empty_batch_is_an_empty_answer(self, adapter: Adapter) -> None:
        assert await adapter.send([], time_left=1.0) == []

    async def test_time_left_is_honoured_with_an_unknown_outcome(self, slow: tuple[Adapter, AdapterRequest]) -> None:
        adapter, request = slow
        started = time.monotonic()
        (result,) = await adapter.send([request], time_left=SLOW_TIME_LEFT)
        assert time.monotonic() - started < SLOW_TIME_LEFT + SLACK
        # Never a plain decline: the network may have approved it.
        assert result.unknown and not result.approved

    async def test_unavailable_only_when_nothing_was_sent(self, down: tuple[Adapter, Callable[[], int]]) -> None:
        adapter, sent = down
        with pytest.raises(AdapterUnavailable):
            await adapter.send([self.approving("tx-down")], time_left=0.5)
        assert sent() == 0

    async def test_no_card_number_reaches_a_log(
        self, adapter: Adapter, slow: tuple[Adapter, AdapterRequest], caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        slow_adapter, late = slow
        requests = [self.approving("tx-log-1"), self.declining("tx-log-2")[0]]
        await adapter.send(requests, time_left=2.0)
        await slow_adapter.send([late], time_left=SLOW_TIME_LEFT)
        cards = [r.card.pan for r in (*requests, late) if r.card is not None]
        if not cards:
            pytest.skip("this adapter's requests carry no card")
        assert not [pan for pan in cards if pan in caplog.text]
