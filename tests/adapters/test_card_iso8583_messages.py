"""What the ISO 8583 messages carry: a complete 0100, local time in fields 12 and 13, field 90
matching the original, character types, route options, and answers with extra data elements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from adapters.card_iso8583 import Iso8583CardAdapter, content, framing, mapping, original, terminal
from adapters.card_iso8583.simulator import IssuerSimulator, start_simulator
from switch.adapters.conformance import card_request
from switch.adapters.contract import AdapterRequest
from switch.domain.ids import new_transaction_ids
from switch.domain.models import Money, OperationKind

APPROVE = "4111111111111111"
NOW = datetime(2026, 3, 4, 23, 30, 7, tzinfo=UTC)
OPTIONS = {
    "acquirer_id": "123456",
    "merchant_category_code": "5411",
    "card_acceptor_name": "CORNER GROCERY",
    "card_acceptor_city": "SAO PAULO",
    "card_acceptor_country": "BR",
    "timezone": "America/Sao_Paulo",
}
ACCEPTOR = terminal.from_options(OPTIONS)


def reversal(transaction_id: str) -> AdapterRequest:
    """What switch.flow.reversals sends: the original's id, merchant, amount and code; no card."""
    return AdapterRequest(OperationKind.REVERSE, transaction_id, "merchant-1", Money(1000, "USD"))


def void(transaction_id: str) -> AdapterRequest:
    return AdapterRequest(OperationKind.VOID, transaction_id, "merchant-1", Money(1000, "USD"))


def test_an_authorization_carries_what_acquirers_require() -> None:
    message = mapping.to_message(card_request(APPROVE, "tx-1"), stan=1, terminal=ACCEPTOR, now=NOW)
    assert (message["18"], message["22"], message["25"], message["32"]) == ("5411", "010", "59", "123456")
    assert message["43"] == "CORNER GROCERY".ljust(25) + "SAO PAULO".ljust(13) + "BR"
    assert len(message["43"]) == 40
    assert framing.decode(framing.encode(message)[2:])["43"] == message["43"]


def test_local_time_is_the_terminals_and_field_7_stays_utc() -> None:
    message = mapping.to_message(card_request(APPROVE, "tx-1"), stan=1, terminal=ACCEPTOR, now=NOW)
    assert message["7"] == "0304233007"  # UTC
    assert (message["12"], message["13"]) == ("203007", "0304")  # Sao Paulo is UTC-3
    tokyo = terminal.from_options({"timezone": "Asia/Tokyo"})
    message = mapping.to_message(card_request(APPROVE, "tx-1"), stan=1, terminal=tokyo, now=NOW)
    assert (message["7"], message["12"], message["13"]) == ("0304233007", "083007", "0305")  # the next day
    default = mapping.to_message(card_request(APPROVE, "tx-1"), stan=1, terminal=terminal.from_options({}), now=NOW)
    assert (default["12"], default["13"]) == ("233007", "0304")


def test_a_reversal_names_its_original_in_field_90() -> None:
    (transaction_id,) = new_transaction_ids(1)
    authorization = mapping.to_message(card_request(APPROVE, transaction_id), stan=7, terminal=ACCEPTOR, now=NOW)
    later = datetime(2026, 3, 5, 1, 2, 3, tzinfo=UTC)  # after a restart: nothing kept
    for reversal_advice in (False, True):
        undo = mapping.to_message(
            void(transaction_id), stan=8, terminal=ACCEPTOR, now=later, reversal_advice=reversal_advice
        )
        field_90 = undo["90"]
        assert (field_90[:4], field_90[4:10], field_90[10:20]) == ("0100", authorization["11"], authorization["7"])
        assert field_90[20:31] == "123456".rjust(11, "0") and field_90[31:] == "0" * 11
        assert undo["11"] == "000008" and undo["7"] == "0305010203"  # its own STAN and time
        assert undo["37"] == authorization["37"]


def test_the_0100_takes_its_stan_and_time_from_the_transaction_id() -> None:
    (transaction_id,) = new_transaction_ids(1)
    minted = original.sent_at(transaction_id)
    assert minted is not None and abs((datetime.now(UTC) - minted).total_seconds()) < 5
    message = mapping.to_message(card_request(APPROVE, transaction_id), stan=7, terminal=ACCEPTOR, now=NOW)
    assert message["7"] == minted.strftime("%m%d%H%M%S") and message["11"] == f"{original.stan(transaction_id):06d}"
    # An id in another format has no time: the clock, and zeros in its reversal's field 90.
    assert original.sent_at("tx-1") is None and original.sent_at("tx_" + "I" * 26) is None
    assert mapping.original_data("tx-1", ACCEPTOR)[10:20] == "0" * 10
    assert all(1 <= original.stan(f"tx-{i}") <= 999_999 for i in range(1000))


def test_a_reversal_carries_the_pan_only_when_the_adapter_has_the_card() -> None:
    (transaction_id,) = new_transaction_ids(1)
    advice = _as_void(card_request(APPROVE, transaction_id))  # what the adapter's reverse() sends
    with_card = mapping.to_message(advice, stan=1, terminal=ACCEPTOR, now=NOW, reversal_advice=True)
    assert with_card["2"] == APPROVE and "14" not in with_card
    assert "2" not in mapping.to_message(void(transaction_id), stan=1, terminal=ACCEPTOR, now=NOW)


def _as_void(request: AdapterRequest) -> AdapterRequest:
    return AdapterRequest(
        OperationKind.VOID, request.transaction_id, request.merchant_id, request.amount, card=request.card
    )


def test_field_contents_are_checked_by_type_without_echoing_them() -> None:
    with pytest.raises(content.BadContent, match="data element 2 must be numeric") as error:
        mapping.to_message(card_request("41111111111111X1", "tx"), stan=1, terminal=ACCEPTOR, now=NOW)
    assert "41111111111111X1" not in str(error.value)
    with pytest.raises(content.BadContent, match="data element 42 must be printable"):
        request = AdapterRequest(OperationKind.CAPTURE, "tx", "m\x00", Money(1, "USD"))
        mapping.to_message(request, stan=1, terminal=ACCEPTOR, now=NOW)
    with pytest.raises(content.BadContent, match="data element 38 must be alphanumeric"):
        request = AdapterRequest(OperationKind.CAPTURE, "tx", "m", Money(1, "USD"), authorization_code="AB-12")
        mapping.to_message(request, stan=1, terminal=ACCEPTOR, now=NOW)
    short_code = AdapterRequest(OperationKind.CAPTURE, "tx", "m", Money(1, "USD"), authorization_code="AB12")
    assert mapping.to_message(short_code, stan=1, terminal=ACCEPTOR, now=NOW)["38"] == "AB12  "


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("acquirer_id", "12AB"),
        ("acquirer_id", "123456789012"),
        ("merchant_category_code", "541"),
        ("pos_entry_mode", "01"),
        ("pos_condition_code", "x9"),
        ("card_acceptor_name", "N" * 26),
        ("card_acceptor_name", ""),
        ("card_acceptor_city", "CAFÉ"),
        ("card_acceptor_country", "Brazil"),
        ("terminal_id", "TERMINAL9"),
        ("timezone", "Mars/Olympus_Mons"),
        ("timezone", "America"),
    ],
)
def test_a_bad_option_fails_at_construction_naming_it(option: str, value: str) -> None:
    with pytest.raises(terminal.OptionError, match=f"option {option}:"):
        Iso8583CardAdapter("iso", {"port": 1, option: value})


def test_the_older_acquirer_option_still_counts() -> None:
    assert terminal.from_options({"acquirer": "777"}).acquirer_id == "777"
    with pytest.raises(terminal.OptionError, match="option acquirer:"):
        terminal.from_options({"acquirer": "ACQ"})
    assert terminal.from_options({}).timezone == UTC
    assert terminal.from_options({"timezone": "Europe/Paris"}).timezone == ZoneInfo("Europe/Paris")


@pytest.fixture
async def extra() -> AsyncIterator[tuple[IssuerSimulator, Iso8583CardAdapter]]:
    simulator, port = await start_simulator("127.0.0.1", 0, extra_fields=True)
    adapter = Iso8583CardAdapter("iso", {"port": port, "timeout": 0.5, "echo_interval": 60, **OPTIONS})
    await adapter.start()
    yield simulator, adapter
    await adapter.close()
    await simulator.close()


async def test_answers_with_extra_data_elements_are_processed(
    extra: tuple[IssuerSimulator, Iso8583CardAdapter],
) -> None:
    simulator, adapter = extra
    transaction_id, other = new_transaction_ids(2)
    (approved,) = await adapter.send([card_request(APPROVE, transaction_id)], time_left=1.0)
    assert approved.approved and len(approved.authorization_code) == 6
    (declined,) = await adapter.send([card_request("4000000000000002", other)], time_left=1.0)
    assert declined.response_code == "05" and not declined.unknown
    (reversed_,) = await adapter.send([reversal(transaction_id)], time_left=1.0)
    assert reversed_.approved and not reversed_.unknown
    assert simulator.received["0100"] == 2 and simulator.received["0420"] == 1
    # That the answers did carry fields 32, 43, 44 and 54: test_card_iso8583_independent.py reads the wire.
