"""The adapter template: the conformance suite against its simulator, then its pure mapping.

Copy this file with the folder: it is how a new adapter proves the contract.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from adapters.template import TemplateAdapter, framing, mapping
from adapters.template.simulator import LATE_CARD, TemplateSimulator, start_simulator
from switch.adapters.conformance import AdapterConformance, card_request
from switch.adapters.contract import Adapter, AdapterRequest
from switch.domain.models import Account, Card, Money, OperationKind

APPROVING_CARD = "4111111111111111"
DECLINING_CARD = "4000000000000002"


def account_request(account_id: str, transaction_id: str) -> AdapterRequest:
    return AdapterRequest(
        OperationKind.AUTHORIZE, transaction_id, "merchant-1", Money(1000, "USD"), account=Account("rail", account_id)
    )


def operation(kind: OperationKind, transaction_id: str = "tx-1", amount: int = 500) -> AdapterRequest:
    return AdapterRequest(kind, transaction_id, "merchant-1", Money(amount, "USD"), authorization_code="K7M2QX")


class TestTemplateAdapter(AdapterConformance):
    def approving(self, transaction_id: str) -> AdapterRequest:
        return card_request(APPROVING_CARD, transaction_id)

    def declining(self, transaction_id: str) -> tuple[AdapterRequest, str]:
        return card_request(DECLINING_CARD, transaction_id), "05"

    @pytest.fixture
    async def adapter(self) -> AsyncIterator[Adapter]:
        simulator, port = await start_simulator(late_delay=1.0)
        adapter = TemplateAdapter("template", {"port": port, "timeout": 0.5})
        await adapter.start()
        yield adapter
        await adapter.close()
        await simulator.close()

    @pytest.fixture
    async def slow(self, adapter: Adapter) -> AsyncIterator[tuple[Adapter, AdapterRequest]]:
        yield adapter, card_request(LATE_CARD, "tx-late")

    @pytest.fixture
    async def down(self) -> AsyncIterator[tuple[Adapter, Callable[[], int]]]:
        simulator, port = await start_simulator()
        await simulator.close()  # the port is now free and nothing listens on it
        adapter = TemplateAdapter("template", {"port": port, "timeout": 0.2})
        await adapter.start()
        yield adapter, lambda: adapter.client.requests_sent
        await adapter.close()


# --- against the simulator: what the suite does not cover ---


@pytest.fixture
async def running() -> AsyncIterator[tuple[TemplateSimulator, TemplateAdapter]]:
    simulator, port = await start_simulator(late_delay=0.3)
    adapter = TemplateAdapter("template", {"port": port, "timeout": 0.5})
    await adapter.start()
    yield simulator, adapter
    await adapter.close()
    await simulator.close()


async def test_accounts_and_operations_are_answered(running: tuple[TemplateSimulator, TemplateAdapter]) -> None:
    simulator, adapter = running
    requests = [
        account_request("ana@bank", "a"),
        account_request("1234-insufficient", "b"),
        operation(OperationKind.CAPTURE),
        operation(OperationKind.REVERSE),
    ]
    results = await adapter.send(requests, time_left=1.0)
    assert [result.response_code for result in results] == ["00", "51", "00", "00"]
    assert len(results[0].authorization_code) == 6 and results[0].network_reference
    assert simulator.received == {"authorize": 2, "capture": 1, "reverse": 1}


async def test_a_request_the_protocol_cannot_carry_is_declined_unsent(
    running: tuple[TemplateSimulator, TemplateAdapter],
) -> None:
    simulator, adapter = running
    nothing = AdapterRequest(OperationKind.AUTHORIZE, "no-source", "merchant-1", Money(1000, "USD"))
    refused, approved = await adapter.send([nothing, card_request(APPROVING_CARD, "ok")], time_left=1.0)
    assert refused.response_code == "12" and not refused.unknown
    assert approved.approved and simulator.received["authorize"] == 1


async def test_no_card_number_reaches_any_log(
    running: tuple[TemplateSimulator, TemplateAdapter], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, adapter = running
    pans = [APPROVING_CARD, DECLINING_CARD, LATE_CARD]
    results = await adapter.send([card_request(pan, f"tx-{i}") for i, pan in enumerate(pans)], time_left=0.1)
    assert results[2].unknown
    async with asyncio.timeout(3.0):  # its late answer is logged, masked, and dropped
        while "late or unmatched answer dropped" not in caplog.text:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    text = caplog.text + "".join(str(record.args) for record in caplog.records)
    assert "411111******1111" in text  # the logs do describe the traffic, masked
    for pan in pans:
        assert pan not in text


def test_a_route_without_a_port_is_refused() -> None:
    with pytest.raises(ValueError, match="port"):
        TemplateAdapter("my-route", {"host": "127.0.0.1"})


# --- mapping and framing: pure ---


def test_an_authorization_from_a_card_round_trips() -> None:
    request = AdapterRequest(
        OperationKind.AUTHORIZE, "tx-1", "merchant-1", Money(1234, "EUR"), card=Card(APPROVING_CARD, 3, 2030)
    )
    raw = framing.encode(mapping.to_message(request, "ID1"))
    assert int.from_bytes(raw[:4], "big") == len(raw) - 4
    message = framing.decode(raw[4:])
    assert message == {
        "id": "ID1",
        "op": "authorize",
        "ref": "tx-1",
        "merchant": "merchant-1",
        "amount": 1234,
        "currency": "EUR",
        "card": {"number": APPROVING_CARD, "expiry": "2030-03"},
    }
    assert mapping.match_key(message) == ("ID1", "tx-1")


def test_an_account_or_an_original_is_carried() -> None:
    assert mapping.to_message(account_request("ana@bank", "tx-2"), "ID2")["account"] == "ana@bank"
    refund = mapping.to_message(operation(OperationKind.REFUND), "ID3")
    assert (refund["op"], refund["original_auth"], "card" in refund) == ("refund", "K7M2QX", False)
    tokenized = card_request(APPROVING_CARD, "tx-4")
    tokenized = AdapterRequest(tokenized.kind, "tx-4", "m", tokenized.amount, card=Card(APPROVING_CARD, 0, 0))
    assert "expiry" not in mapping.to_message(tokenized, "ID4")["card"]


@pytest.mark.parametrize(
    "request_",
    [
        AdapterRequest(OperationKind.AUTHORIZE, "tx", "m", Money(100, "USD")),  # no card, no account
        AdapterRequest(OperationKind.AUTHORIZE, "tx", "m", Money(0, "USD"), account=Account("rail", "a")),
        operation(OperationKind.REFUND, amount=-1),
        operation(OperationKind.CAPTURE, transaction_id=""),
        account_request("x" * 65, "tx"),
        card_request("abc", "tx"),  # messages.schema.json: 12 to 19 digits
        card_request("4" * 20, "tx"),
        AdapterRequest(OperationKind.AUTHORIZE, "tx", "m", Money(100, "USD"), card=Card(APPROVING_CARD, 13, 2099)),
    ],
)
def test_what_the_protocol_cannot_carry_is_refused(request_: AdapterRequest) -> None:
    with pytest.raises(ValueError):
        mapping.to_message(request_, "ID")


@pytest.mark.parametrize(
    ("result", "code"),
    [("approved", "00"), ("insufficient_funds", "51"), ("unknown_account", "14"), ("something_new", "05")],
)
def test_network_results_map_onto_the_switch_codes(result: str, code: str) -> None:
    answer = {"id": "ID", "ref": "tx", "result": result, "auth_code": "ABC123", "network_ref": "N1"}
    adapter_result = mapping.to_result(answer)
    assert (adapter_result.response_code, adapter_result.network_reference) == (code, "N1")
    assert adapter_result.authorization_code == ("ABC123" if code == "00" else "")
    assert not adapter_result.unknown  # an answer, whatever it says, is a definite outcome


def test_describe_masks_the_card_and_the_account() -> None:
    card = mapping.describe(mapping.to_message(card_request(APPROVING_CARD, "tx-5"), "ID5"))
    assert APPROVING_CARD not in card and "411111******1111" in card and "ref=tx-5" in card
    account = mapping.describe(mapping.to_message(account_request("secret-account-77", "tx-6"), "ID6"))
    assert "secret-account-77" not in account


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"{not json", b"[1, 2]", b'{"id": 7}'])
def test_foreign_frames_are_refused_without_their_content(raw: bytes) -> None:
    with pytest.raises(framing.FramingError) as error:
        framing.decode(raw)
    assert "not json" not in str(error.value)
