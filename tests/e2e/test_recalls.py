"""A recall's lifecycle on an instant rail: camt.056 -> camt.029 -> pacs.004.

An instant payment whose answer came too late was told 91 and is reversed by a
recall. Accepted, the transaction is RETURN_PENDING until the rail's pacs.004
brings the money back, then REVERSED; rejected, it is RECALL_REJECTED: the money
moved although the caller was told 91, journaled, counted and logged for
operations to settle. The instant route is the ISO 20022 rail adapter and its
simulator, on both store sets."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from adapters.rail_iso20022 import identifiers
from adapters.rail_iso20022.simulator import RailSimulator, start_simulator
from switch.domain.models import TransactionStatus
from switch.flow.returns import return_key
from switch.v1 import switch_pb2 as pb
from tests.conftest import SwitchFactory
from tests.e2e.support import Switch, account_request, expect, new_key, serve
from tests.e2e.test_reversals import status_after

LATE_ACCOUNT = "acct-recall-timeout"  # the rail settles it, and answers after the switch stopped waiting


@asynccontextmanager
async def on_the_rail(
    store_set: str, switch_factory: SwitchFactory, **rail: Any
) -> AsyncIterator[tuple[Switch, RailSimulator]]:
    simulator, port = await start_simulator("127.0.0.1", 0, late_delay=1.0, **rail)
    routes = {
        "card": {"adapter": "simulated"},
        "instant": {"adapter": "rail_iso20022", "options": {"host": "127.0.0.1", "port": port}},
    }
    try:
        async with serve(switch_factory, store_set, routes=routes, adapters={"timeout_ms": 300}) as switch:
            yield switch, simulator
    finally:
        await simulator.close()


async def told_91(switch: Switch) -> pb.AuthorizeResponse:
    answer = await switch.stub.Authorize(account_request(account_id=LATE_ACCOUNT, amount=4200))
    assert (answer.decision, answer.response_code) == (pb.DECISION_DECLINED, "91")
    return answer


def counted(switch: Switch, metric: str) -> dict[str, float]:
    """A counter's samples from the metrics page, by their labels as written."""
    samples = {}
    for line in switch.running.metrics.render().splitlines():
        if line.startswith(metric + "{"):
            labels, _, value = line[len(metric) :].rpartition(" ")
            samples[labels] = float(value)
    return samples


async def test_an_accepted_recall_is_reversed_only_when_the_return_arrives(
    store_set: str, switch_factory: SwitchFactory
) -> None:
    async with on_the_rail(store_set, switch_factory, return_delay=1.0) as (switch, rail):
        answer = await told_91(switch)
        pending = pb.TRANSACTION_STATUS_RETURN_PENDING
        assert await status_after(switch, answer.transaction_id, pending) == pending
        assert rail.received["camt.056"] == 1 and rail.acknowledged == {}  # accepted; the money is not back yet

        reversed_status = pb.TRANSACTION_STATUS_REVERSED
        assert await status_after(switch, answer.transaction_id, reversed_status) == reversed_status
        uetr = identifiers.uetr(answer.transaction_id)
        assert rail.acknowledged == {uetr: "ACSC"} and rail.outbox == {}  # acknowledged once journaled

        journal = switch.running.journal
        stored = await journal.get_transaction(answer.transaction_id)
        assert stored is not None
        recall = (stored.merchant_id, f"reversal:{answer.transaction_id}")
        returned = (stored.merchant_id, return_key("RTN" + uetr.replace("-", "")[:24].upper()))
        found = await journal.find_entries([recall, returned])
        assert (found[recall].status, found[recall].response_code) == (TransactionStatus.RETURN_PENDING, "00")
        assert (found[returned].status, found[returned].amount.minor_units) == (TransactionStatus.REVERSED, 4200)
        assert counted(switch, "switch_reversals_total") == {'{route="instant",status="return_pending"}': 1.0}
        assert counted(switch, "switch_returns_total") == {'{outcome="applied"}': 1.0}


async def test_a_rejected_recall_says_the_money_moved(
    store_set: str, switch_factory: SwitchFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="switch.flow.reversals")
    async with on_the_rail(store_set, switch_factory, recall_rejection="CUST") as (switch, rail):
        answer = await told_91(switch)
        rejected = pb.TRANSACTION_STATUS_RECALL_REJECTED
        assert await status_after(switch, answer.transaction_id, rejected) == rejected
        assert rail.outbox == {} and rail.received["camt.056"] == 1  # nothing comes back

        stored = await switch.running.journal.get_transaction(answer.transaction_id)
        assert stored is not None
        recall = (stored.merchant_id, f"reversal:{answer.transaction_id}")
        (entry,) = (await switch.running.journal.find_entries([recall])).values()
        assert (entry.status, entry.response_code) == (TransactionStatus.RECALL_REJECTED, "05")
        assert counted(switch, "switch_reversals_total") == {'{route="instant",status="recall_rejected"}': 1.0}
        (logged,) = [r.getMessage() for r in caplog.records if answer.transaction_id in r.getMessage()]
        assert "rejected" in logged and "4200 BRL moved although the caller was told 91" in logged

        # The caller's answer stands, and nothing can be done to the money through the API.
        again = await switch.stub.Authorize(
            account_request(account_id=LATE_ACCOUNT, amount=4200, key=answer.idempotency_key)
        )
        assert (again.transaction_id, again.response_code, again.replayed) == (answer.transaction_id, "91", True)
        refund = pb.RefundRequest(transaction_id=answer.transaction_id, idempotency_key=new_key("ret"))
        await expect(switch.stub.Refund(refund), grpc.StatusCode.FAILED_PRECONDITION)
