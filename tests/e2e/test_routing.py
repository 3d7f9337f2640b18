"""Routing with real adapters: failover away from a down ISO 8583 route, its circuit
opening, and closing again once the network is back."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from adapters.card_iso8583.simulator import start_simulator
from switch.adapters.contract import AdapterResult
from switch.v1 import switch_pb2 as pb
from tests.conftest import SwitchFactory
from tests.e2e.support import Switch, card_request, serve

COOL_DOWN = 0.5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tables(iso_port: int) -> dict[str, Any]:
    """Cards try the ISO 8583 route first, then the simulated issuer."""
    return {
        "routes": {
            "card-iso": {
                "adapter": "card_iso8583",
                "rail": "card",
                "options": {"host": "127.0.0.1", "port": iso_port, "timeout": 1.0, "backoff_max": 0.1},
            },
            "card": {"adapter": "simulated"},
            "instant": {"adapter": "simulated"},
        },
        "routing": {
            "rules": [{"name": "cards", "source": "card", "candidates": [{"route": "card-iso"}, {"route": "card"}]}],
            "breaker": {"failures": 2, "cool_down_seconds": COOL_DOWN},
        },
    }


def count_sends(switch: Switch, route: str) -> list[int]:
    """Counts the batches the route's adapter is asked to send."""
    (adapter,) = [a for a in switch.running.adapters if a.name == route]
    sent = [0]
    original = adapter.send

    async def counting(requests: Any, time_left: float) -> list[AdapterResult]:
        sent[0] += 1
        return await original(requests, time_left)

    adapter.send = counting  # type: ignore[method-assign]
    return sent


async def test_a_down_route_fails_over_and_its_circuit_opens_then_closes(switch_factory: SwitchFactory) -> None:
    port = free_port()  # nothing listens here yet: the ISO route is down
    async with serve(switch_factory, "embedded", **tables(port)) as switch:
        iso_sends = count_sends(switch, "card-iso")
        for _ in range(2):  # two failures open the circuit
            answer = await switch.stub.Authorize(card_request())
            assert (answer.decision, answer.route) == (pb.DECISION_APPROVED, "card")
        assert iso_sends[0] == 2
        for _ in range(3):  # open: the ISO route is not even asked
            answer = await switch.stub.Authorize(card_request())
            assert answer.route == "card"
        assert iso_sends[0] == 2

        simulator, _ = await start_simulator("127.0.0.1", port)
        try:
            await asyncio.sleep(COOL_DOWN + 0.2)  # half-open: the next call probes the route
            answer = await switch.stub.Authorize(card_request())
            assert (answer.decision, answer.route) == (pb.DECISION_APPROVED, "card-iso")
            answer = await switch.stub.Authorize(card_request())  # closed again
            assert answer.route == "card-iso"
            assert simulator.received["0100"] == 2
        finally:
            await simulator.close()


async def test_a_decline_never_fails_over(switch_factory: SwitchFactory) -> None:
    simulator, port = await start_simulator("127.0.0.1", 0)
    try:
        async with serve(switch_factory, "embedded", **tables(port)) as switch:
            fallback_sends = count_sends(switch, "card")
            answer = await switch.stub.Authorize(card_request(pan="4000000000000002"))
            assert (answer.response_code, answer.route) == ("05", "card-iso")
            assert fallback_sends[0] == 0
    finally:
        await simulator.close()


async def test_an_unknown_outcome_never_fails_over(switch_factory: SwitchFactory) -> None:
    simulator, port = await start_simulator("127.0.0.1", 0, late_delay=3.0)
    try:
        async with serve(switch_factory, "embedded", **tables(port), adapters={"timeout_ms": 300}) as switch:
            fallback_sends = count_sends(switch, "card")
            answer = await switch.stub.Authorize(card_request(pan="4000000000000119"))  # answered too late
            assert (answer.response_code, answer.route) == ("91", "card-iso")
            assert fallback_sends[0] == 0  # sent once: a second route could charge twice
            stored = await switch.stub.GetTransaction(pb.GetTransactionRequest(transaction_id=answer.transaction_id))
            assert stored.status == pb.TRANSACTION_STATUS_UNKNOWN
    finally:
        await simulator.close()


async def test_order_by_cost_takes_the_cheaper_rail_first(switch_factory: SwitchFactory) -> None:
    routes = {
        "card-premium": {"adapter": "simulated", "rail": "premium"},
        "card-basic": {"adapter": "simulated", "rail": "basic"},
        "instant": {"adapter": "simulated"},
    }
    routing = {
        "order_by": "cost",
        "rules": [
            {"name": "cards", "source": "card", "candidates": [{"route": "card-premium"}, {"route": "card-basic"}]}
        ],
    }
    fee_schedule = [
        {"name": "premium", "rail": "premium", "percent": "3.0", "fixed": 0},
        {"name": "basic", "rail": "basic", "percent": "1.0", "fixed": 0},
    ]
    async with serve(switch_factory, "embedded", routes=routes, routing=routing, fee_schedule=fee_schedule) as switch:
        answer = await switch.stub.Authorize(card_request(amount=10_000))
        assert (answer.route, answer.fee.minor_units) == ("card-basic", 100)
