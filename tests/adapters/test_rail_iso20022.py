"""The ISO 20022 rail adapter: pure mapping, then the adapter against its simulator on port 0."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.rail_iso20022 import Iso20022RailAdapter, amounts, framing, identifiers, mapping, parties, spec
from adapters.rail_iso20022.simulator import RailSimulator, start_simulator
from switch.adapters.contract import AdapterRequest, AdapterUnavailable
from switch.domain.models import Account, Money, OperationKind, mask_account

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)

Started = Callable[..., Awaitable[tuple[RailSimulator, Iso20022RailAdapter]]]


def transfer(account_id: str, transaction_id: str, amount: int = 1000, currency: str = "USD") -> AdapterRequest:
    return AdapterRequest(
        kind=OperationKind.AUTHORIZE,
        transaction_id=transaction_id,
        merchant_id="merchant-1",
        amount=Money(amount, currency),
        account=Account("rail", account_id, "BR", "Ana"),
        destination=Account("rail", "shop-account-1"),
    )


def reverse(transaction_id: str, kind: OperationKind = OperationKind.REVERSE) -> AdapterRequest:
    return AdapterRequest(kind, transaction_id, "merchant-1", Money(1000, "USD"))


def round_trip(message: framing.Message) -> framing.Message:
    raw = framing.encode(message)
    assert int.from_bytes(raw[:4], "big") == len(raw) - 4
    return framing.decode(raw[4:])


# --- mapping: pure ---


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (12345, "JPY", "12345"),
        (12345, "USD", "123.45"),
        (5, "USD", "0.05"),
        (12345, "KWD", "12.345"),
        (7, "KWD", "0.007"),
        (2**63 - 1, "USD", "92233720368547758.07"),
    ],
)
def test_amounts_are_exact(minor: int, currency: str, text: str) -> None:
    assert amounts.to_decimal(minor, currency) == text


@pytest.mark.parametrize(
    ("currency", "amount", "text"), [("JPY", 500, "500"), ("USD", 500, "5.00"), ("KWD", 500, "0.500")]
)
def test_a_credit_transfer_round_trips(currency: str, amount: int, text: str) -> None:
    request = transfer("12345678", "tx-1", amount, currency)
    decoded = round_trip(mapping.credit_transfer("MSG1", request, "ACC99", now=NOW))
    assert decoded.type == spec.CREDIT_TRANSFER
    # The transfer's MsgId is derived from the transaction id, for a return to name; the client's id is its InstrId.
    assert decoded.text("GrpHdr/MsgId") == "M-tx-1" and decoded.text("CdtTrfTxInf/PmtId/InstrId") == "MSG1"
    assert decoded.text("GrpHdr/CreDtTm").startswith("2026-03-04T05:06:07")
    assert decoded.text("CdtTrfTxInf/PmtId/EndToEndId") == "tx-1"
    instructed = decoded.body.find("CdtTrfTxInf/InstdAmt")
    assert instructed is not None and instructed.text == text and instructed.get("Ccy") == currency
    assert decoded.text("CdtTrfTxInf/IntrBkSttlmAmt") == text
    assert decoded.text("CdtTrfTxInf/DbtrAcct/Id/Othr/Id") == "ACC99"
    assert decoded.text("CdtTrfTxInf/CdtrAcct/Id/Othr/Id") == "shop-account-1"
    assert mapping.request_key(decoded) == ("M-tx-1", "tx-1")


@pytest.mark.parametrize(
    ("account_id", "kind"),
    [("+5511999990000", "TELE"), ("ana@example.com", "EMAL"), ("ana@bank", "VPA"), ("0012345", "")],
)
def test_identification_requests_carry_aliases_as_proxies(account_id: str, kind: str) -> None:
    assert mapping.proxy_type(account_id) == kind
    decoded = round_trip(mapping.identification_request("MSG2", account_id, now=NOW))
    assert decoded.type == spec.IDENTIFICATION_REQUEST and mapping.request_key(decoded) == ("MSG2", "")
    path = "Vrfctn/PtyAndAcctId/Acct/" + ("Prxy/Id" if kind else "Id/Othr/Id")
    assert decoded.text(path) == account_id


def test_reports_and_statuses_map_onto_the_switch_codes() -> None:
    request = round_trip(mapping.credit_transfer("MSG3", transfer("a", "tx-3"), "a", now=NOW))
    approved = mapping.to_result(
        round_trip(mapping.status_report("R1", request, "ACSC", reference="ab12-cd34ef", now=NOW))
    )
    assert approved.approved and approved.authorization_code == "AB12CD" and approved.network_reference == "ab12-cd34ef"
    assert mapping.answer_key(mapping.status_report("R1", request, "ACCP", now=NOW)) == ("M-tx-3", "tx-3")
    for reason, code in (("AM04", "51"), ("AC01", "14"), ("AC04", "14"), ("MS03", "05")):
        report = mapping.status_report("R2", request, "RJCT", reason=reason, now=NOW)
        result = mapping.to_result(round_trip(report))
        assert (result.response_code, result.approved, result.authorization_code) == (code, False, "")
    inquiry = round_trip(mapping.identification_request("MSG4", "ana@bank", now=NOW))
    found = round_trip(mapping.identification_report("R3", inquiry, "ACC1", now=NOW))
    assert mapping.answer_key(found) == ("MSG4", "") and mapping.resolved_account(found) == "ACC1"
    assert mapping.resolved_account(round_trip(mapping.identification_report("R4", inquiry, None, now=NOW))) is None


def test_reversals_recall_and_refunds_return_the_original() -> None:
    recall = round_trip(mapping.undo("MSG5", reverse("tx-5"), now=NOW))
    refund = round_trip(mapping.undo("MSG6", reverse("tx-6", OperationKind.REFUND), now=NOW))
    assert (recall.type, mapping.request_key(recall)) == (spec.RECALL, ("MSG5", "tx-5"))
    assert (refund.type, mapping.request_key(refund)) == (spec.PAYMENT_RETURN, ("MSG6", "tx-6"))
    assert refund.text("TxInf/RtrdIntrBkSttlmAmt") == "10.00"
    with pytest.raises(ValueError):
        mapping.undo("MSG7", reverse("tx-7", OperationKind.CAPTURE), now=NOW)


def test_unsafe_or_foreign_documents_are_refused() -> None:
    with pytest.raises(framing.FramingError):
        framing.decode(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><Document/>')
    with pytest.raises(framing.FramingError):
        framing.decode(b"<Document><unclosed></Document>")
    with pytest.raises(framing.FramingError):
        framing.decode(b'<Document xmlns="urn:other"><X/></Document>')


UUID4 = re.compile(r"[a-f0-9]{8}-[a-f0-9]{4}-4[a-f0-9]{3}-[89ab][a-f0-9]{3}-[a-f0-9]{12}")
AGENTS = parties.from_options("rail", {"clearing_system": "USABA", "debtor_agent_member_id": "011000015",
                                       "creditor_agent_member_id": "021000021"})  # fmt: skip


def test_a_transfer_names_its_agents_uetr_and_ids_in_the_swift_set() -> None:
    request = transfer("12345678", "tx_01J00000000000000000000AB")
    decoded = round_trip(mapping.credit_transfer("MSG9", request, "ACC99", now=NOW, agents=AGENTS))
    assert (decoded.sender, decoded.receiver) == (AGENTS.debtor, AGENTS.creditor)  # from the header
    ids = "CdtTrfTxInf/PmtId/"
    assert decoded.text(ids + "EndToEndId") == decoded.text(ids + "TxId") == "tx-01J00000000000000000000AB"
    assert UUID4.fullmatch(decoded.text(ids + "UETR"))
    assert decoded.text(ids + "UETR") == identifiers.uetr(request.transaction_id)  # a resend names the same
    for agent, member in (("DbtrAgt", "011000015"), ("CdtrAgt", "021000021")):
        assert decoded.text(f"CdtTrfTxInf/{agent}/FinInstnId/ClrSysMmbId/MmbId") == member
        assert decoded.text(f"CdtTrfTxInf/{agent}/FinInstnId/ClrSysMmbId/ClrSysId/Cd") == "USABA"
    nameless = AdapterRequest(
        OperationKind.AUTHORIZE, "tx-n", "m", Money(1, "USD"), account=Account("rail", "a", "BR", "\x00 ")
    )
    named = round_trip(mapping.credit_transfer("MSG10", nameless, "a", now=NOW))
    assert named.text("CdtTrfTxInf/Dbtr/Nm") == named.text("CdtTrfTxInf/Cdtr/Nm") == mapping.NOT_PROVIDED


def test_returns_and_recalls_name_the_original_references() -> None:
    for kind, path in ((OperationKind.REFUND, "TxInf/"), (OperationKind.REVERSE, "Undrlyg/TxInf/")):
        message = round_trip(mapping.undo("MSG11", reverse("tx_7", kind), now=NOW, agents=AGENTS))
        assert message.text(path + "OrgnlEndToEndId") == message.text(path + "OrgnlTxId") == "tx-7"
        assert message.text(path + "OrgnlUETR") == identifiers.uetr("tx_7")
    recall = round_trip(mapping.undo("MSG12", reverse("tx_8"), now=NOW, agents=AGENTS))
    for accepted, code in ((True, "00"), (False, "05")):
        answer = round_trip(mapping.resolution("R5", recall, accepted, now=NOW))
        assert (answer.sender, answer.receiver) == (AGENTS.creditor, AGENTS.debtor)  # answers go back
        assert mapping.answer_key(answer) == mapping.request_key(recall)
        assert mapping.to_result(answer).response_code == code


@pytest.mark.parametrize(
    ("account_id", "transaction_id"),
    [
        ("acct-" + "9" * 30, "tx-1"),  # Othr/Id is Max34Text
        ("acct-secret", "t" * 36),
        ("acct-secret", "tx 1 é"),  # outside the SWIFT set
        ("", "tx-1"),
        ("acct\nsecret", "tx-1"),
    ],
)
def test_ids_outside_the_schema_are_refused(account_id: str, transaction_id: str) -> None:
    with pytest.raises(ValueError) as refused:
        mapping.credit_transfer("MSG13", transfer(account_id, transaction_id), account_id, now=NOW)
    assert not account_id or account_id not in str(refused.value)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("clearing_system", "usaba"),
        ("clearing_system", "TOOLONG"),
        ("debtor_agent_member_id", "a_b"),
        ("creditor_agent_member_id", "9" * 36),
        ("creditor_agent_member_id", 21000021),
    ],
)
def test_a_bad_agent_option_fails_the_start_naming_it(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option):
        Iso20022RailAdapter("rail", {"host": "127.0.0.1", "port": 1, option: value})


def test_a_document_under_a_header_for_another_definition_is_refused() -> None:
    raw = framing.encode(mapping.undo("MSG14", reverse("tx-9"), now=NOW))[4:]
    with pytest.raises(framing.FramingError):
        framing.decode(raw.replace(b"camt.056.001.12</MsgDefIdr>", b"camt.056.001.08</MsgDefIdr>"))
    with pytest.raises(framing.FramingError):
        framing.decode(raw.replace(b"<Envelope>", b"<Other>").replace(b"</Envelope>", b"</Other>"))


def test_describe_masks_account_ids() -> None:
    text = mapping.describe(
        mapping.credit_transfer("MSG8", transfer("secret-account-77", "tx-8"), "ACC123456789", now=NOW)
    )
    assert "ACC123456789" not in text and mask_account("ACC123456789") in text
    assert "secret-account-77" not in text
    keys = [part.partition("=")[0] for part in text.split()[1:]]
    assert len(keys) == len(set(keys)), text  # each account under its own key
    assert f"debtor={mask_account('ACC123456789')}" in text and "creditor=" in text


# --- against the simulator ---


@pytest.fixture
async def start() -> AsyncIterator[Started]:
    """start(adapter options, **simulator options) -> (simulator, started adapter); all closed after."""
    opened: list[RailSimulator | Iso20022RailAdapter] = []

    async def _start(
        options: dict[str, Any] | None = None, **simulator_options: Any
    ) -> tuple[RailSimulator, Iso20022RailAdapter]:
        simulator, port = await start_simulator("127.0.0.1", 0, **{"late_delay": 0.5, **simulator_options})
        adapter = Iso20022RailAdapter("rail", {"host": "127.0.0.1", "port": port, "timeout": 0.5, **(options or {})})
        opened.extend((simulator, adapter))
        await adapter.start()
        return simulator, adapter

    yield _start
    for thing in reversed(opened):
        await thing.close()


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(3.0):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_an_approval_carries_a_six_character_code(start: Started) -> None:
    simulator, adapter = await start()
    (result,) = await adapter.send([transfer("ana@bank", "tx-ok")], time_left=2.0)
    assert result.approved and len(result.authorization_code) == 6 and result.authorization_code.isalnum()
    assert result.authorization_code == result.network_reference[:6]
    assert simulator.received == {"acmt.023": 1, "pacs.008": 1}


@pytest.mark.parametrize(
    ("account_id", "code"), [("1234-insufficient", "51"), ("1234-closed", "14"), ("unknown@bank", "14")]
)
async def test_declines(start: Started, account_id: str, code: str) -> None:
    simulator, adapter = await start()
    (result,) = await adapter.send([transfer(account_id, "tx-no")], time_left=2.0)
    assert (result.response_code, result.unknown) == (code, False)
    assert simulator.received["pacs.008"] == (0 if account_id.startswith("unknown@") else 1)


async def test_a_late_answer_is_an_unknown_outcome_within_time_left(start: Started) -> None:
    _, adapter = await start()
    started = asyncio.get_running_loop().time()
    (result,) = await adapter.send([transfer("1234-timeout", "tx-late")], time_left=0.3)
    assert asyncio.get_running_loop().time() - started < 0.6
    assert result.unknown and not result.approved
    assert adapter.client.in_flight == 0


async def test_a_dropped_transfer_is_an_unknown_outcome(start: Started) -> None:
    simulator, adapter = await start(drop_rate=1.0)
    (result,) = await adapter.send([transfer("1234", "tx-drop")], time_left=0.3)
    assert result.unknown and simulator.received["pacs.008"] == 1


async def test_a_down_rail_is_unavailable_with_nothing_sent() -> None:
    simulator, port = await start_simulator()
    await simulator.close()
    adapter = Iso20022RailAdapter("rail", {"host": "127.0.0.1", "port": port, "timeout": 0.2})
    await adapter.start()
    try:
        with pytest.raises(AdapterUnavailable):
            await adapter.send([transfer("1234", "tx-down")], time_left=0.5)
        assert adapter.client.requests_sent == 0
    finally:
        await adapter.close()


async def test_it_reconnects_after_a_disconnect(start: Started) -> None:
    simulator, adapter = await start({"backoff_max": 0.1})
    (first,) = await adapter.send([transfer("1234", "tx-a")], time_left=2.0)
    simulator.disconnect_all()
    await until(lambda: adapter.client.connects >= 2 and adapter.client.connected)
    (second,) = await adapter.send([transfer("1234", "tx-b")], time_left=2.0)
    assert first.approved and second.approved


async def test_concurrent_transfers_are_matched_to_their_requests(start: Started) -> None:
    _, adapter = await start(latency=0.01)
    accounts = ["1234", "1234-insufficient", "1234-closed", "unknown@bank"]
    expected = {"1234": "00", "1234-insufficient": "51", "1234-closed": "14", "unknown@bank": "14"}
    requests = [transfer(accounts[i % 4], f"tx-{i}", 100 + i) for i in range(100)]
    results = await asyncio.gather(*(adapter.send([request], time_left=5.0) for request in requests))
    for request, (result,) in zip(requests, results, strict=True):
        assert request.account is not None and result.response_code == expected[request.account.id]
    references = [result.network_reference for (result,) in results if result.approved]
    assert len(set(references)) == len(references) == 25


async def test_a_batch_keeps_its_order(start: Started) -> None:
    _, adapter = await start()
    requests = [transfer("1234", "tx-1"), reverse("tx-0"), transfer("1234-closed", "tx-2"), transfer("x", "tx-3")]
    results = await adapter.send(requests, time_left=2.0)
    assert [result.response_code for result in results] == ["00", "00", "14", "00"]


async def test_a_reversal_is_acknowledged(start: Started) -> None:
    simulator, adapter = await start()
    (paid,) = await adapter.send([transfer("acct-1", "tx-f")], time_left=2.0)
    reversal, refund = await adapter.send([reverse("tx-r"), reverse("tx-f", OperationKind.REFUND)], time_left=2.0)
    assert paid.approved and reversal.approved and refund.approved and not reversal.unknown
    assert simulator.received == {"acmt.023": 1, "pacs.008": 1, "camt.056": 1, "pacs.004": 1}


async def test_a_return_must_match_a_settled_transfer_and_fit_its_amount(start: Started) -> None:
    _, adapter = await start()
    (paid,) = await adapter.send([transfer("acct-1", "tx-m", amount=1000)], time_left=2.0)
    refund = replace(reverse("tx-m", OperationKind.REFUND), amount=Money(600, "USD"), reference="op_a")
    (first,) = await adapter.send([refund], time_left=2.0)
    (again,) = await adapter.send([refund], time_left=2.0)  # the same return, sent again: returned once
    (too_much,) = await adapter.send([replace(refund, reference="op_b")], time_left=2.0)  # 600 + 600 > 1000
    (stranger,) = await adapter.send([reverse("tx-never-paid", OperationKind.REFUND)], time_left=2.0)
    assert paid.approved and first.approved and again.approved
    assert (too_much.approved, stranger.approved) == (False, False)
    assert "AM09" in too_much.message and "NOOR" in stranger.message


async def test_requests_the_rail_cannot_carry_are_declined_unsent(start: Started) -> None:
    simulator, adapter = await start()
    capture = AdapterRequest(OperationKind.CAPTURE, "tx-c", "m", Money(100, "USD"))
    (result,) = await adapter.send([capture], time_left=1.0)
    assert result.response_code == "12" and sum(simulator.received.values()) == 0


async def test_a_long_alias_resolves_to_an_account_that_fits(start: Started) -> None:
    _, adapter = await start()
    (result,) = await adapter.send([transfer("a-long-customer-name@example-bank.com", "tx-alias")], time_left=2.0)
    assert result.approved


async def test_a_too_long_id_is_refused_unsent(start: Started) -> None:
    simulator, adapter = await start()
    (result,) = await adapter.send([transfer("a" * 35, "tx-long")], time_left=1.0)
    (recall,) = await adapter.send([reverse("t" * 36)], time_left=1.0)
    assert result.response_code == recall.response_code == "12" and "a" * 35 not in result.message
    assert sum(simulator.received.values()) == 0


async def test_no_account_id_in_clear_in_debug_logs(start: Started, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _, adapter = await start()
    secret = "+5511987654321"
    await adapter.send([transfer(secret, "tx-log"), transfer("9876543210-closed", "tx-log2")], time_left=2.0)
    await until(lambda: "answered pacs.002" in caplog.text)
    assert secret not in caplog.text and "9876543210-closed" not in caplog.text
    assert mask_account(secret) in caplog.text
