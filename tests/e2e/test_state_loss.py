"""Replays outlive the state store: the journal answers when Redis or memory has lost a key.

The embedded state store lives in memory, so a restart loses it; the same is done to
Redis by deleting the test's keys (an eviction, a failover to an empty replica).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switch import config
from switch.domain.models import OperationKind
from switch.v1 import switch_pb2 as pb
from tests.conftest import drop_production_state, store_settings
from tests.e2e.support import approved, card_request, get, money, new_key, serve_settings, spy_on_issuer


@pytest.fixture
async def settings(store_set: str, tmp_path: Path) -> AsyncIterator[config.Settings]:
    raw = store_settings(store_set, tmp_path)
    raw.setdefault("server", {})["port"] = 0
    kept = config.from_mapping(raw)
    yield kept
    await drop_production_state(kept)


async def _forget_state(settings: config.Settings) -> None:
    if settings.stores.embedded:
        return  # stopping the switch was enough
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(settings.stores.redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{settings.stores.key_prefix}:*", count=1000)]
        assert keys
        await client.delete(*keys)
    finally:
        await client.aclose()


async def test_authorization_replay_after_state_loss(settings: config.Settings) -> None:
    request = card_request(amount=1000)
    async with serve_settings(settings) as switch:
        first = await approved(switch, request)
    await _forget_state(settings)

    async with serve_settings(settings) as switch:
        again = await switch.stub.Authorize(request)
        assert again.replayed
        assert again.transaction_id == first.transaction_id
        assert again.authorization_code == first.authorization_code
        assert (await get(switch, first.transaction_id)).status == pb.TRANSACTION_STATUS_AUTHORIZED


async def test_authorization_replay_after_state_loss_is_not_sent_again(
    settings: config.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = card_request(amount=1000)
    async with serve_settings(settings) as switch:
        await approved(switch, request)
    await _forget_state(settings)

    async with serve_settings(settings) as switch:
        sent = spy_on_issuer(switch, monkeypatch)
        assert (await switch.stub.Authorize(request)).replayed
        assert sent == [], "a replayed authorization was sent to the issuer again: a second hold on the card"


async def test_capture_replay_after_state_loss(settings: config.Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    async with serve_settings(settings) as switch:
        transaction_id = (await approved(switch, card_request(amount=1000))).transaction_id
        capture = pb.CaptureRequest(transaction_id=transaction_id, amount=money(600), idempotency_key=new_key("cap"))
        captured = await switch.stub.Capture(capture)
    await _forget_state(settings)

    async with serve_settings(settings) as switch:
        sent = spy_on_issuer(switch, monkeypatch)
        again = await switch.stub.Capture(capture)  # a client retrying after a lost answer
        assert again.replayed
        assert again.status == captured.status == pb.TRANSACTION_STATUS_CAPTURED
        assert again.captured == money(600)
        assert (await get(switch, transaction_id)).captured == money(600)
        assert [r.kind for r in sent if r.kind is not OperationKind.AUTHORIZE] == []


async def test_refund_replay_after_state_loss(settings: config.Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    async with serve_settings(settings) as switch:
        transaction_id = (await approved(switch, card_request(amount=1000))).transaction_id
        await switch.stub.Capture(pb.CaptureRequest(transaction_id=transaction_id, idempotency_key=new_key("cap")))
        refund = pb.RefundRequest(transaction_id=transaction_id, amount=money(100), idempotency_key=new_key("ref"))
        refunded = await switch.stub.Refund(refund)
    await _forget_state(settings)

    async with serve_settings(settings) as switch:
        sent = spy_on_issuer(switch, monkeypatch)
        again = await switch.stub.Refund(refund)
        assert again.replayed
        assert again.refunded == refunded.refunded == money(100)
        assert (await get(switch, transaction_id)).refunded == money(100)
        refunds = [r.amount.minor_units for r in sent if r.kind is OperationKind.REFUND]
        assert refunds == [], f"a replayed refund was sent to the issuer again: {refunds}"
