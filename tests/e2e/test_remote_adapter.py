"""A route served by an adapter process: the switch authorizes, captures and refunds
through the bridge, reverses an unknown outcome there once, and fails over when the
process says its network is down."""

from __future__ import annotations

from typing import Any

from adapters.remote_issuer import start_simulator
from adapters.remote_issuer.issuer import LATE_CARD
from switch.v1 import switch_pb2 as pb
from tests.conftest import SwitchFactory
from tests.e2e.support import card_request, serve
from tests.e2e.test_reversals import status_after


def remote_routes(address: str) -> dict[str, Any]:
    """Cards go to the adapter process first, then to the in-process simulated issuer."""
    return {
        "routes": {
            "partner": {"adapter": "remote", "rail": "card", "options": {"address": address}},
            "card": {"adapter": "simulated"},
            "instant": {"adapter": "simulated"},
        },
        "routing": {
            "rules": [{"name": "cards", "source": "card", "candidates": [{"route": "partner"}, {"route": "card"}]}]
        },
        "adapters": {"timeout_ms": 300},
    }


async def test_a_payment_lives_its_whole_life_through_the_process(
    store_set: str, switch_factory: SwitchFactory
) -> None:
    issuer, port = await start_simulator(late_delay=2.0)
    try:
        async with serve(switch_factory, store_set, **remote_routes(f"127.0.0.1:{port}")) as switch:
            answer = await switch.stub.Authorize(card_request(amount=1000))
            assert (answer.decision, answer.route) == (pb.DECISION_APPROVED, "partner")
            assert len(answer.authorization_code) == 6
            await switch.stub.Capture(pb.CaptureRequest(transaction_id=answer.transaction_id, idempotency_key="c-1"))
            refunded = await switch.stub.Refund(
                pb.RefundRequest(
                    transaction_id=answer.transaction_id,
                    idempotency_key="r-1",
                    amount=pb.Money(minor_units=400, currency="USD"),
                )
            )
            assert refunded.status == pb.TRANSACTION_STATUS_PARTIALLY_REFUNDED
        assert (issuer.received["authorize"], issuer.received["capture"], issuer.received["refund"]) == (1, 1, 1)
    finally:
        await issuer.close()


async def test_an_unknown_outcome_is_reversed_in_the_process_once(switch_factory: SwitchFactory) -> None:
    issuer, port = await start_simulator(late_delay=2.0)
    try:
        async with serve(switch_factory, "embedded", **remote_routes(f"127.0.0.1:{port}")) as switch:
            answer = await switch.stub.Authorize(card_request(pan=LATE_CARD))
            assert (answer.decision, answer.response_code, answer.route) == (pb.DECISION_DECLINED, "91", "partner")
            reversed_status = pb.TRANSACTION_STATUS_REVERSED
            assert await status_after(switch, answer.transaction_id, reversed_status) == reversed_status
        assert issuer.reversals[answer.transaction_id] == 1
    finally:
        await issuer.close()


async def test_a_process_whose_network_is_down_is_failed_over(switch_factory: SwitchFactory) -> None:
    issuer, port = await start_simulator()
    issuer.network_up = False
    try:
        async with serve(switch_factory, "embedded", **remote_routes(f"127.0.0.1:{port}")) as switch:
            answer = await switch.stub.Authorize(card_request())
            assert (answer.decision, answer.route) == (pb.DECISION_APPROVED, "card")
        assert sum(issuer.received.values()) == 0
    finally:
        await issuer.close()
