"""Unknown outcomes are reversed: the late test card declines "91" at once, reads
UNKNOWN, and becomes REVERSED once its route acknowledges the reversal, exactly
once, even across a restart of the switch."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any, cast

import pytest

from adapters.card_iso8583 import framing
from adapters.card_iso8583.simulator import IssuerSimulator, start_simulator
from switch.v1 import switch_pb2 as pb
from tests.conftest import SwitchFactory
from tests.e2e.support import Switch, account_request, card_request, serve

LATE_CARD = "4000000000000119"  # the ISO simulator approves it, too late


def iso_routes(port: int) -> dict[str, Any]:
    return {
        "routes": {
            "card": {"adapter": "card_iso8583", "options": {"host": "127.0.0.1", "port": port, "backoff_max": 0.1}},
            "instant": {"adapter": "simulated"},
        },
        "adapters": {"timeout_ms": 300},
    }


def simulator_of(switch: Switch, kind: str) -> Counter[str]:
    """What the default run's simulator of this class has received. (Loaded through the
    entry points as switch_adapters.*, a twin of the adapters.* class: match by name.)"""
    (found,) = [s for s in switch.running.simulators if type(s).__name__ == kind]
    return cast(IssuerSimulator, found).received


async def status_after(switch: Switch, transaction_id: str, wanted: int, seconds: float = 8.0) -> int:
    deadline = time.monotonic() + seconds
    while True:
        stored = await switch.stub.GetTransaction(pb.GetTransactionRequest(transaction_id=transaction_id))
        if stored.status == wanted or time.monotonic() > deadline:
            return int(stored.status)
        await asyncio.sleep(0.1)


async def test_a_late_approval_is_reversed(store_set: str, switch_factory: SwitchFactory) -> None:
    simulator, port = await start_simulator("127.0.0.1", 0, late_delay=2.0)
    try:
        async with serve(switch_factory, store_set, **iso_routes(port)) as switch:
            answer = await switch.stub.Authorize(card_request(pan=LATE_CARD))
            assert (answer.decision, answer.response_code) == (pb.DECISION_DECLINED, "91")
            reversed_status = pb.TRANSACTION_STATUS_REVERSED
            assert await status_after(switch, answer.transaction_id, reversed_status) == reversed_status
        assert simulator.received["0420"] == 1
    finally:
        await simulator.close()


async def test_the_reversal_carries_the_card_and_names_its_original(
    store_set: str, switch_factory: SwitchFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[dict[str, Any]] = []
    read = framing.read_message

    async def recording(reader: asyncio.StreamReader) -> dict[str, Any]:
        message = await read(reader)
        received.append(message)
        return message

    monkeypatch.setattr(framing, "read_message", recording)  # what the simulator reads off the wire
    simulator, port = await start_simulator("127.0.0.1", 0, late_delay=2.0)
    try:
        async with serve(switch_factory, store_set, **iso_routes(port)) as switch:
            answer = await switch.stub.Authorize(card_request(pan=LATE_CARD))
            reversed_status = pb.TRANSACTION_STATUS_REVERSED
            assert await status_after(switch, answer.transaction_id, reversed_status) == reversed_status
    finally:
        await simulator.close()
    (authorization,) = [m for m in received if m["t"] == "0100"]
    (reversal,) = [m for m in received if m["t"] == "0420"]
    assert reversal["2"] == authorization["2"] == LATE_CARD  # from the token, under the tokenizer's keys
    assert reversal["90"][:20] == "0100" + authorization["11"] + authorization["7"]
    assert reversal["37"] == authorization["37"]


async def test_a_pending_reversal_survives_a_restart_and_applies_once(switch_factory: SwitchFactory) -> None:
    simulator, port = await start_simulator("127.0.0.1", 0, late_delay=2.0)
    async with serve(switch_factory, "embedded", **iso_routes(port)) as switch:
        await switch.running.reversals.close()  # drive the queue by hand in this first life
        answer = await switch.stub.Authorize(card_request(pan=LATE_CARD))
        await simulator.close()  # the network goes away before the reversal gets through
        assert await switch.running.reversals.run_once() == 0  # route down: tried, not acknowledged
        (pending,) = await switch.running.journal.due_reversals(time.time() + 60, 10)
        assert (pending.transaction_id, pending.attempts) == (answer.transaction_id, 1)  # backing off
        stored = await switch.stub.GetTransaction(pb.GetTransactionRequest(transaction_id=answer.transaction_id))
        assert stored.status == pb.TRANSACTION_STATUS_UNKNOWN
    # The switch restarts on the same journal; the network is back on the same port.
    simulator, _ = await start_simulator("127.0.0.1", port)
    try:
        async with serve(switch_factory, "embedded", **iso_routes(port)) as switch:
            reversed_status = pb.TRANSACTION_STATUS_REVERSED
            assert await status_after(switch, answer.transaction_id, reversed_status) == reversed_status
            scope = (stored.merchant_id, f"reversal:{answer.transaction_id}")
            assert len(await switch.running.journal.find_entries([scope])) == 1  # the status changed once
            await asyncio.sleep(0.5)  # later passes find nothing left to do
        assert simulator.received["0420"] == 1
    finally:
        await simulator.close()


async def test_the_default_run_sends_cards_as_iso8583_and_reverses_the_late_card(
    switch_factory: SwitchFactory,
) -> None:
    async with serve(switch_factory, "embedded") as switch:  # no routes configured
        received = simulator_of(switch, "IssuerSimulator")
        approved = await switch.stub.Authorize(card_request())
        assert (approved.decision, approved.route) == (pb.DECISION_APPROVED, "card")
        late = await switch.stub.Authorize(card_request(pan=LATE_CARD))
        assert (late.decision, late.response_code) == (pb.DECISION_DECLINED, "91")  # within adapters.timeout_ms
        reversed_status = pb.TRANSACTION_STATUS_REVERSED
        assert await status_after(switch, late.transaction_id, reversed_status) == reversed_status
        assert received["0100"] == 2  # both travelled as ISO 8583
        assert received["0420"] == 1


async def test_the_default_run_sends_account_payments_as_iso20022_and_reverses_a_late_one(
    switch_factory: SwitchFactory,
) -> None:
    async with serve(switch_factory, "embedded", adapters={"timeout_ms": 500}) as switch:
        paid = await switch.stub.Authorize(account_request(account_id="+5511999990000"))
        assert (paid.decision, paid.route) == (pb.DECISION_APPROVED, "instant")
        poor = await switch.stub.Authorize(account_request(account_id="acct-1-insufficient"))
        assert poor.response_code == "51"
        late = await switch.stub.Authorize(account_request(account_id="acct-2-timeout"))  # the rail answers too late
        assert (late.decision, late.response_code) == (pb.DECISION_DECLINED, "91")
        reversed_status = pb.TRANSACTION_STATUS_REVERSED
        assert await status_after(switch, late.transaction_id, reversed_status) == reversed_status
        received = simulator_of(switch, "RailSimulator")
        assert received["pacs.008"] == 3  # every payment travelled as an ISO 20022 credit transfer
        assert received["camt.056"] + received["pacs.004"] == 1  # one recall for the unknown one


async def test_routes_written_out_run_as_written_even_when_they_equal_the_defaults(
    switch_factory: SwitchFactory,
) -> None:
    routes = {"card": {"adapter": "simulated"}, "instant": {"adapter": "simulated"}}
    async with serve(switch_factory, "embedded", routes=routes) as switch:
        assert switch.running.simulators == []
        answer = await switch.stub.Authorize(card_request(pan=LATE_CARD))  # the in-process issuer approves it
        assert (answer.decision, answer.route) == (pb.DECISION_APPROVED, "card")
