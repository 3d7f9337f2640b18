"""Beyond capacity the switch sheds load: at twice what it can take, the excess is
refused with RESOURCE_EXHAUSTED at once and before any side effect, the admitted
calls keep a bounded latency, and what the switch holds stays bounded."""

from __future__ import annotations

import asyncio
import statistics
import time

import grpc
import pytest

from switch.v1 import switch_pb2 as pb
from tests.conftest import SwitchFactory
from tests.e2e.support import MERCHANT, card_request, serve, spy_on_issuer

ADAPTER_MS = 50
BATCH_ITEMS = 10
MAX_PENDING = 40
# One batch of 10 at a time, each held 50 ms by the issuer: ~180 authorizations/s.
CAPACITY = BATCH_ITEMS / (ADAPTER_MS / 1000 + 0.005)
STORM_SECONDS = 2.0
TABLES = {
    "batcher": {
        "max_items": BATCH_ITEMS,
        "max_concurrent_batches": 1,
        "max_delay_ms": 1.0,
        "max_pending": MAX_PENDING,
    },
    "adapters": {"simulator_latency_ms": ADAPTER_MS},
    "routes": {"card": {"adapter": "simulated"}, "instant": {"adapter": "simulated"}},
}


async def test_twice_the_capacity_is_shed_fast_and_without_side_effects(
    store_set: str, switch_factory: SwitchFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serve(switch_factory, store_set, **TABLES) as switch:
        sent = spy_on_issuer(switch, monkeypatch)
        approved: list[float] = []
        shed: list[tuple[pb.AuthorizeRequest, float]] = []
        owed: list[int] = []

        async def one(request: pb.AuthorizeRequest) -> None:
            started = time.monotonic()
            try:
                answer = await switch.stub.Authorize(request)
            except grpc.aio.AioRpcError as error:
                assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, error
                shed.append((request, time.monotonic() - started))
                return
            assert answer.decision == pb.DECISION_APPROVED
            approved.append(time.monotonic() - started)

        # Open loop: calls leave on a schedule whatever the switch does, as a busy
        # fleet of clients would send them.
        calls = []
        interval = 1.0 / (2 * CAPACITY)
        begin = time.monotonic()
        for index in range(int(2 * CAPACITY * STORM_SECONDS)):
            await asyncio.sleep(max(0.0, begin + index * interval - time.monotonic()))
            calls.append(asyncio.ensure_future(one(card_request())))
            owed.append(switch.running.batcher.owed)
        await asyncio.gather(*calls)

        assert approved and shed, (len(approved), len(shed))
        assert len(shed) >= 0.3 * len(calls)  # about half is beyond capacity
        # What the switch holds stays bounded, however long the storm.
        assert max(owed) <= MAX_PENDING
        # Shed fast: a refusal waits in no queue and for no issuer, so it takes a fraction
        # of an admitted call (compared, not timed, so a busy machine cannot fail it).
        assert statistics.median(latency for _, latency in shed) < statistics.median(approved) / 2
        # The admitted keep their latency: at worst a full queue ahead of them.
        assert max(approved) < MAX_PENDING / CAPACITY + 4 * ADAPTER_MS / 1000 + 0.5

        # Nothing was sent for the shed calls: the issuer saw only the approved ones.
        assert len(sent) == len(approved)
        sample = [request for request, _ in shed[:20]]
        journaled = await switch.running.journal.find_entries([(MERCHANT, r.idempotency_key) for r in sample])
        assert journaled == {}
        # No key was consumed: a shed call retried later is a fresh authorization.
        for request in sample[:5]:
            retried = await switch.stub.Authorize(request)
            assert retried.decision == pb.DECISION_APPROVED and not retried.replayed
