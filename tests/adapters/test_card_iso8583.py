"""The ISO 8583 card adapter: pure mapping, then the adapter against its simulator on port 0."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest

from adapters.card_iso8583 import Iso8583CardAdapter, framing, mapping, original, spec, terminal
from adapters.card_iso8583.simulator import LATE_CARD, IssuerSimulator, start_simulator
from switch.adapters.conformance import card_request
from switch.adapters.contract import AdapterRequest, AdapterUnavailable
from switch.domain.models import Card, Money, OperationKind

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
TERMINAL = terminal.Terminal("TERM0001", "12345")
APPROVE = "4111111111111111"
DECLINE = "4000000000000002"
NO_FUNDS = "4000000000009995"

Started = Callable[..., Awaitable[tuple[IssuerSimulator, Iso8583CardAdapter]]]


def operation(kind: OperationKind, transaction_id: str, amount: int = 1000) -> AdapterRequest:
    return AdapterRequest(kind, transaction_id, "merchant-1", Money(amount, "USD"), authorization_code="ABC123")


def round_trip(message: framing.Message) -> framing.Message:
    raw = framing.encode(message)
    assert int.from_bytes(raw[:2], "big") == len(raw) - 2
    return framing.decode(raw[2:])


# --- mapping: pure ---


def test_an_authorization_round_trips() -> None:
    request = card_request(APPROVE, "tx-1", 12345)
    message = mapping.to_message(request, stan=42, terminal=TERMINAL, now=NOW)
    decoded = round_trip(message)
    assert decoded["t"] == "0100" and decoded["2"] == APPROVE and decoded["4"] == "000000012345"
    # The 0100's STAN is its transaction id's, not the client's (original.py).
    assert (decoded["11"], decoded["14"], decoded["49"]) == (f"{original.stan('tx-1'):06d}", "9912", "840")
    assert (decoded["7"], decoded["12"], decoded["13"]) == ("0304050607", "050607", "0304")
    assert decoded["41"] == "TERM0001" and decoded["42"] == "merchant-1".ljust(15)
    assert decoded["37"] == mapping.retrieval_reference("tx-1") and len(decoded["37"]) == 12
    assert {key: value for key, value in decoded.items() if key not in ("p", "1")} == message


def test_a_capture_void_and_reversal_advice_share_the_authorizations_rrn() -> None:
    rrn = mapping.retrieval_reference("tx-1")
    capture = round_trip(
        mapping.to_message(operation(OperationKind.CAPTURE, "tx-1"), stan=2, terminal=TERMINAL, now=NOW)
    )
    void = round_trip(mapping.to_message(operation(OperationKind.VOID, "tx-1"), stan=3, terminal=TERMINAL, now=NOW))
    advice = mapping.to_message(
        operation(OperationKind.VOID, "tx-1"), stan=4, terminal=TERMINAL, now=NOW, reversal_advice=True
    )
    assert (capture["t"], void["t"], advice["t"]) == ("0220", "0400", "0420")
    assert capture["37"] == void["37"] == advice["37"] == rrn
    assert capture["38"] == "ABC123" and "2" not in capture
    assert len(void["90"]) == 42 and void["90"].startswith("0100") and "1" in void  # field 90 needs bitmap 2


def test_network_messages_round_trip() -> None:
    decoded = round_trip(mapping.network_message(spec.ECHO, stan=999999, now=NOW))
    assert (decoded["t"], decoded["11"], decoded["70"]) == ("0800", "999999", "301")


def test_answers_map_onto_the_switch_response_codes() -> None:
    approved = mapping.to_result({"t": "0110", "11": "000001", "37": "123456789012", "38": "X1Y2Z3", "39": "00"})
    assert approved.approved and approved.authorization_code == "X1Y2Z3"
    assert approved.network_reference == "123456789012"
    assert mapping.to_result({"t": "0110", "39": "51"}).response_code == "51"
    assert mapping.to_result({"t": "0110", "39": "43"}).response_code == "62"  # stolen: restricted
    assert mapping.to_result({"t": "0110", "39": "ZZ"}).response_code == "05"  # unknown: do not honor
    declined = mapping.to_result({"t": "0110", "38": "IGNORE", "39": "05"})
    assert not declined.approved and declined.authorization_code == ""


def test_currencies_map_to_numeric_codes_or_fail_clearly() -> None:
    expected = {"USD": "840", "EUR": "978", "GBP": "826", "JPY": "392", "BRL": "986"}
    expected |= {"INR": "356", "KES": "404", "CNY": "156", "KWD": "414"}
    assert {alpha: mapping.numeric_currency(alpha) for alpha in expected} == expected
    with pytest.raises(mapping.UnsupportedCurrency, match="THB"):
        mapping.numeric_currency("THB")


def test_the_stan_wraps_at_999999_and_skips_zero() -> None:
    assert mapping.next_stan(0) == 1
    assert mapping.next_stan(999_998) == 999_999
    assert mapping.next_stan(999_999) == 1


def test_a_refund_is_a_completion_advice_with_processing_code_20() -> None:
    message = mapping.to_message(operation(OperationKind.REFUND, "tx"), stan=1, terminal=TERMINAL, now=NOW)
    assert (message["t"], message["3"]) == ("0220", "200000")


def test_requests_the_route_cannot_carry_are_refused() -> None:
    with pytest.raises(ValueError, match="merchant id"):
        request = AdapterRequest(OperationKind.CAPTURE, "tx", "m" * 16, Money(1, "USD"))
        mapping.to_message(request, stan=1, terminal=TERMINAL, now=NOW)


def test_describe_masks_the_pan() -> None:
    text = mapping.describe({"t": "0100", "2": APPROVE, "11": "000001"})
    assert APPROVE not in text and "411111******1111" in text


# --- against the simulator ---


@pytest.fixture
async def start() -> AsyncIterator[Started]:
    """start(adapter options, **simulator options) -> (simulator, started adapter); all closed after."""
    opened: list[IssuerSimulator | Iso8583CardAdapter] = []

    async def _start(
        options: dict[str, object] | None = None, **simulator_options: object
    ) -> tuple[IssuerSimulator, Iso8583CardAdapter]:
        simulator, port = await start_simulator("127.0.0.1", 0, **{"late_delay": 0.5, **simulator_options})
        adapter = Iso8583CardAdapter("iso", {"port": port, "timeout": 0.5, "echo_interval": 60, **(options or {})})
        opened.extend((simulator, adapter))
        await adapter.start()
        return simulator, adapter

    yield _start
    for thing in reversed(opened):
        await thing.close()


async def until(condition: Callable[[], bool]) -> None:
    """Polls: the conditions are counters inside the adapter and simulator, with no event to wait on."""
    async with asyncio.timeout(3.0):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_approvals_carry_a_six_character_authorization_code(start: Started) -> None:
    _, adapter = await start()
    results = await adapter.send([card_request(APPROVE, f"tx-{i}") for i in range(5)], time_left=1.0)
    assert all(result.approved for result in results)
    assert all(len(result.authorization_code) == 6 and result.authorization_code.isalnum() for result in results)
    assert [result.network_reference for result in results] == [
        mapping.retrieval_reference(f"tx-{i}") for i in range(5)
    ]


async def test_the_test_cards_decline(start: Started) -> None:
    _, adapter = await start()
    requests = [card_request(DECLINE, "a"), card_request(NO_FUNDS, "b"), card_request(APPROVE, "c", expiry_year=2001)]
    results = await adapter.send(requests, time_left=1.0)
    assert [result.response_code for result in results] == ["05", "51", "54"]
    assert not any(result.unknown or result.authorization_code for result in results)


async def test_concurrent_requests_share_one_connection_and_match(start: Started) -> None:
    simulator, adapter = await start(jitter=0.05)
    cards = [APPROVE, DECLINE, NO_FUNDS]
    expected_codes = ["00", "05", "51"]

    async def one(batch: int) -> None:
        ids = [f"tx-{batch}-{i}" for i in range(10)]
        requests = [card_request(cards[(batch + i) % 3], ids[i], amount=batch * 10 + i + 1) for i in range(10)]
        results = await adapter.send(requests, time_left=2.0)
        assert [result.response_code for result in results] == [expected_codes[(batch + i) % 3] for i in range(10)]
        assert [result.network_reference for result in results] == [mapping.retrieval_reference(i) for i in ids]

    await asyncio.gather(*(one(batch) for batch in range(20)))
    assert simulator.received["0100"] == 200
    assert simulator.received["sign-on"] == 1 and adapter.client.sign_ons == 1


async def test_a_late_answer_is_an_unknown_outcome_and_is_dropped(
    start: Started, caplog: pytest.LogCaptureFixture
) -> None:
    _, adapter = await start(late_delay=0.3)
    caplog.set_level(logging.WARNING)
    loop = asyncio.get_running_loop()
    started = loop.time()
    late, fine = await adapter.send([card_request(LATE_CARD, "late"), card_request(APPROVE, "fine")], time_left=0.15)
    assert loop.time() - started < 0.45
    assert late.unknown and not late.approved and late.response_code == "91"
    assert fine.approved
    await until(lambda: "late or unmatched answer dropped" in caplog.text)
    assert "400000******0119" in caplog.text


async def test_a_cancelled_send_frees_its_stans(start: Started) -> None:
    _, adapter = await start()
    sending = asyncio.create_task(adapter.send([card_request(LATE_CARD, "abandoned")], time_left=2.0))
    await until(lambda: adapter.client.in_flight == 1)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    assert adapter.client.in_flight == 0


async def test_a_dropped_request_is_an_unknown_outcome(start: Started) -> None:
    _, adapter = await start(drop_rate=1.0)
    (result,) = await adapter.send([card_request(APPROVE, "dropped")], time_left=0.1)
    assert result.unknown


async def test_a_down_network_is_unavailable_with_nothing_sent() -> None:
    simulator, port = await start_simulator()
    await simulator.close()
    adapter = Iso8583CardAdapter("iso", {"port": port, "timeout": 0.2})
    await adapter.start()
    try:
        with pytest.raises(AdapterUnavailable):
            await adapter.send([card_request(APPROVE, "tx")], time_left=0.5)
        assert adapter.client.requests_sent == 0
    finally:
        await adapter.close()


async def test_the_adapter_reconnects_and_signs_on_again(start: Started) -> None:
    simulator, adapter = await start()
    simulator.disconnect_all()
    await until(lambda: adapter.client.sign_ons == 2)
    (result,) = await adapter.send([card_request(APPROVE, "after")], time_left=1.0)
    assert result.approved
    assert simulator.received["sign-on"] == 2


async def test_a_disconnect_with_requests_in_flight_leaves_them_unknown(start: Started) -> None:
    _, adapter = await start(disconnect_after=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    (result,) = await adapter.send([card_request(APPROVE, "cut")], time_left=2.0)
    assert result.unknown
    assert loop.time() - started < 1.0  # settled by the disconnect, not by the deadline


async def test_a_network_that_comes_up_later_is_reached(start: Started) -> None:
    simulator, port = await start_simulator()
    await simulator.close()
    adapter = Iso8583CardAdapter("iso", {"port": port, "timeout": 0.2, "backoff_max": 0.05})
    await adapter.start()
    try:
        simulator, _ = await start_simulator("127.0.0.1", port)
        await until(lambda: adapter.client.connected)
        (result,) = await adapter.send([card_request(APPROVE, "up")], time_left=1.0)
        assert result.approved
        await simulator.close()
    finally:
        await adapter.close()


async def test_echoes_keep_the_connection_alive(start: Started) -> None:
    simulator, adapter = await start({"echo_interval": 0.05})
    await until(lambda: simulator.received["echo"] >= 2)
    assert adapter.client.connected and adapter.client.sign_ons == 1


async def test_capture_void_and_reversal_advice_are_approved(start: Started) -> None:
    simulator, adapter = await start()
    capture, void = await adapter.send(
        [operation(OperationKind.CAPTURE, "tx-1"), operation(OperationKind.VOID, "tx-2")], time_left=1.0
    )
    (advice,) = await adapter.reverse([card_request(LATE_CARD, "tx-3")], time_left=1.0)
    assert capture.approved and void.approved and advice.approved
    assert (simulator.received["0220"], simulator.received["0400"], simulator.received["0420"]) == (1, 1, 1)


async def test_a_request_the_route_cannot_carry_is_declined_unsent(start: Started) -> None:
    simulator, adapter = await start()
    thb = AdapterRequest(OperationKind.AUTHORIZE, "thb", "m", Money(100, "THB"), card=Card(APPROVE, 12, 2099))
    refused, approved = await adapter.send([thb, card_request(APPROVE, "usd")], time_left=1.0)
    assert refused.response_code == "12" and "THB" in refused.message and not refused.unknown
    assert approved.approved and simulator.received["0100"] == 1


async def test_no_card_number_reaches_any_log(start: Started, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    simulator, adapter = await start({"echo_interval": 0.05}, late_delay=0.2)
    pans = [APPROVE, DECLINE, NO_FUNDS, LATE_CARD, "5555555555554444"]
    await adapter.send([card_request(pan, f"tx-{i}") for i, pan in enumerate(pans)], time_left=0.1)
    simulator.disconnect_all()
    await until(lambda: adapter.client.sign_ons == 2)
    await until(lambda: "late or unmatched" in caplog.text or simulator.received["0100"] == 5)
    await adapter.send([card_request(pan, f"again-{i}") for i, pan in enumerate(pans)], time_left=0.5)
    text = caplog.text + "".join(str(record.args) for record in caplog.records)
    assert "411111******1111" in text  # the logs do describe the traffic, masked
    for pan in pans:
        assert pan not in text
