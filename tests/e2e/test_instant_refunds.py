"""An instant payment is final when the rail accepts it: settled at once (nothing to
capture or void) and refunded, in parts or in full, through Refund, each refund a
pacs.004 return that the rail simulator matches to its transfer by UETR. The instant
route is the ISO 20022 rail adapter and its simulator, on both store sets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import grpc

from adapters.rail_iso20022.simulator import RailSimulator, start_simulator
from switch.v1 import switch_pb2 as pb
from tests.conftest import SwitchFactory
from tests.e2e.support import Switch, account_request, approved, expect, get, money, new_key, serve


@asynccontextmanager
async def on_the_rail(store_set: str, switch_factory: SwitchFactory) -> AsyncIterator[tuple[Switch, RailSimulator]]:
    rail, port = await start_simulator("127.0.0.1", 0)
    routes = {
        "card": {"adapter": "simulated"},
        "instant": {"adapter": "rail_iso20022", "options": {"host": "127.0.0.1", "port": port}},
    }
    try:
        async with serve(switch_factory, store_set, routes=routes) as switch:
            yield switch, rail
    finally:
        await rail.close()


async def refund(switch: Switch, transaction_id: str, amount: int | None = None) -> pb.Transaction:
    request = pb.RefundRequest(transaction_id=transaction_id, idempotency_key=new_key("ret"))
    if amount is not None:
        request.amount.CopyFrom(money(amount, "BRL"))
    return await switch.stub.Refund(request)


async def test_an_instant_payment_is_settled_and_refunded_in_parts_then_in_full(
    store_set: str, switch_factory: SwitchFactory
) -> None:
    async with on_the_rail(store_set, switch_factory) as (switch, rail):
        paid = await approved(switch, account_request(account_id="acct-instant-01", amount=5000))
        settled = await get(switch, paid.transaction_id)
        assert settled.status == pb.TRANSACTION_STATUS_CAPTURED
        assert settled.captured == money(5000, "BRL")
        (uetr,) = rail.settled  # the one transfer, by its UETR
        assert rail.settled[uetr] == Decimal("50.00")

        partly = await refund(switch, paid.transaction_id, 2000)
        assert partly.status == pb.TRANSACTION_STATUS_PARTIALLY_REFUNDED
        assert partly.refunded == money(2000, "BRL")
        assert rail.returned[uetr] == Decimal("20.00")

        fully = await refund(switch, paid.transaction_id)  # the rest
        assert fully.status == pb.TRANSACTION_STATUS_REFUNDED
        assert fully.refunded == money(5000, "BRL")
        assert rail.returned[uetr] == Decimal("50.00")
        assert rail.received["pacs.004"] == 2


async def test_an_instant_payment_is_neither_captured_nor_voided_nor_refunded_past_its_amount(
    store_set: str, switch_factory: SwitchFactory
) -> None:
    async with on_the_rail(store_set, switch_factory) as (switch, rail):
        await _refused_operations(switch)
        assert rail.received["pacs.004"] == 0  # refused before anything was sent


async def _refused_operations(switch: Switch) -> None:
    paid = await approved(switch, account_request(account_id="acct-instant-02", amount=3000))
    capture = pb.CaptureRequest(transaction_id=paid.transaction_id, idempotency_key=new_key("cap"))
    await expect(switch.stub.Capture(capture), grpc.StatusCode.FAILED_PRECONDITION)
    void = pb.VoidRequest(transaction_id=paid.transaction_id, idempotency_key=new_key("void"))
    await expect(switch.stub.Void(void), grpc.StatusCode.FAILED_PRECONDITION)
    await expect(refund(switch, paid.transaction_id, 3001), grpc.StatusCode.FAILED_PRECONDITION)
    assert (await get(switch, paid.transaction_id)).status == pb.TRANSACTION_STATUS_CAPTURED
