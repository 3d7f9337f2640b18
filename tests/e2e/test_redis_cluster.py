"""A switch on a Redis Cluster (three real primaries) and PostgreSQL, over gRPC.

The store contract runs on the cluster in tests/stores; here the whole switch does:
authorizations and their replays, limits that must stay exact while each
authorization's counters sit on two primaries, batches, and the lifecycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from switch.v1 import switch_pb2 as pb
from tests.conftest import SwitchFactory
from tests.e2e.support import MASTERCARD, VISA, Switch, approved, card_request, get, money, new_key, serve

LONG_WINDOW = 30 * 86_400


@pytest.fixture
def on_cluster(redis_cluster_url: str) -> dict[str, object]:
    return {"redis_url": redis_cluster_url, "redis_cluster": True}


@pytest.fixture
async def switch(switch_factory: SwitchFactory, on_cluster: dict[str, object]) -> AsyncIterator[Switch]:
    async with serve(switch_factory, "production", stores=on_cluster) as running:
        yield running


async def test_approvals_and_replays(switch: Switch) -> None:
    request = card_request(amount=1234)
    first = await approved(switch, request)
    again = await switch.stub.Authorize(request)
    assert again.replayed
    assert again.transaction_id == first.transaction_id
    assert (await get(switch, first.transaction_id)).authorized == money(1234)


async def test_a_batch_spread_over_the_primaries(switch: Switch) -> None:
    requests = [card_request(merchant=f"m_cluster_{i}", pan=VISA if i % 2 else MASTERCARD) for i in range(40)]
    batch = await switch.stub.AuthorizeBatch(pb.AuthorizeBatchRequest(requests=requests))
    assert [r.response_code for r in batch.responses] == ["00"] * 40
    replayed = await switch.stub.AuthorizeBatch(pb.AuthorizeBatchRequest(requests=requests))
    assert all(r.replayed for r in replayed.responses)


async def test_merchant_and_card_limits_stay_exact_across_primaries(
    switch_factory: SwitchFactory, on_cluster: dict[str, object]
) -> None:
    # Every authorization moves a merchant counter (on the merchant's primary) and a
    # card counter (on the card's): the card's limit declines, the merchant's is
    # given back, so the merchant's own limit of 8 still lets 8 more through later.
    limits = [
        {"scope": "instrument", "window_seconds": LONG_WINDOW, "max_amount": 700},
        {"scope": "merchant", "window_seconds": LONG_WINDOW, "max_count": 15},
    ]
    async with serve(switch_factory, "production", stores=on_cluster, limits=limits) as switch:
        merchant = f"m_{new_key('limits')}"
        burst = (switch.stub.Authorize(card_request(pan=VISA, amount=100, merchant=merchant)) for _ in range(60))
        codes = [answer.response_code for answer in await asyncio.gather(*burst)]
        assert codes.count("00") == 7
        assert codes.count("61") == 53
        other = (switch.stub.Authorize(card_request(pan=MASTERCARD, amount=1, merchant=merchant)) for _ in range(12))
        codes = [answer.response_code for answer in await asyncio.gather(*other)]
        assert codes.count("00") == 8
        assert codes.count("65") == 4


async def test_capture_and_refund(switch: Switch) -> None:
    authorized = await approved(switch, card_request(amount=900))
    captured = await switch.stub.Capture(
        pb.CaptureRequest(transaction_id=authorized.transaction_id, idempotency_key=new_key("cap"))
    )
    assert captured.status == pb.TRANSACTION_STATUS_CAPTURED
    refunded = await switch.stub.Refund(
        pb.RefundRequest(transaction_id=authorized.transaction_id, idempotency_key=new_key("ref"))
    )
    assert refunded.status == pb.TRANSACTION_STATUS_REFUNDED
