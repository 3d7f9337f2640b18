"""Recalls and the returns that complete them, at the ISO 20022 rail adapter.

A camt.029 tells the switch what became of a recall; the money itself comes back in
a pacs.004 the rail sends on its own, which the adapter delivers to the switch and
acknowledges (pacs.002) only once the switch has it durable."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from adapters.rail_iso20022 import amounts, framing, identifiers, mapping, spec
from switch.adapters.contract import Return
from switch.domain.ids import new_transaction_ids
from switch.domain.models import Money, OperationKind
from tests.adapters.test_rail_iso20022 import NOW, Started, reverse, round_trip, start, transfer, until

__all__ = ["start"]  # the fixture, imported for the tests below


class Listener:
    """What the switch gives listen(): records every delivery, failing the first `fail` ones."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.deliveries: list[list[Return]] = []

    async def __call__(self, returns: Sequence[Return]) -> None:
        self.deliveries.append(list(returns))
        if len(self.deliveries) <= self.fail:
            raise ConnectionError("journal down")


# --- mapping: pure ---


def test_ids_come_back_from_their_end_to_end_id() -> None:
    for transaction_id in new_transaction_ids(50):
        assert identifiers.transaction_id(identifiers.end_to_end(transaction_id)) == transaction_id
    for foreign in ("", "tx_1", "tx-a-b", "M-tx-1", "x" * 36):
        with pytest.raises(ValueError):
            identifiers.transaction_id(foreign)


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [("12.34", "USD", 1234), ("12.3", "USD", 1230), ("500", "JPY", 500), ("0.500", "KWD", 500)],
)
def test_amounts_read_back_exactly(text: str, currency: str, minor: int) -> None:
    assert amounts.to_minor_units(text, currency) == minor
    assert amounts.to_minor_units(amounts.to_decimal(minor, currency), currency) == minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [("12.345", "USD"), ("0", "USD"), ("-1", "USD"), ("NaN", "USD"), ("1e400", "USD"), ("x", "USD"), ("1", "XXX")],
)
def test_amounts_that_are_not_money_are_refused(text: str, currency: str) -> None:
    with pytest.raises(ValueError):
        amounts.to_minor_units(text, currency)


def _settled_transfer(transaction_id: str = "tx_01J0000000000000000000009") -> framing.Message:
    return round_trip(mapping.credit_transfer("MSG1", transfer("acct-1", transaction_id, 4321), "ACC1", now=NOW))


def test_a_recalls_return_names_the_transfer_and_reads_back_as_a_return() -> None:
    sent = _settled_transfer()
    returned = round_trip(mapping.recall_return("RAIL1", sent, "RTN1", now=NOW))
    assert (returned.sender, returned.receiver) == (sent.receiver, sent.sender)  # from the creditor's agent
    originals = {
        "TxInf/OrgnlGrpInf/OrgnlMsgId": sent.text("GrpHdr/MsgId"),
        "TxInf/OrgnlGrpInf/OrgnlMsgNmId": "pacs.008.001.08",
        "TxInf/OrgnlEndToEndId": sent.text("CdtTrfTxInf/PmtId/EndToEndId"),
        "TxInf/OrgnlTxId": sent.text("CdtTrfTxInf/PmtId/TxId"),
        "TxInf/OrgnlUETR": sent.text("CdtTrfTxInf/PmtId/UETR"),
        "TxInf/RtrRsnInf/Rsn/Cd": "FOCR",
    }
    assert {path: returned.text(path) for path in originals} == originals
    assert mapping.returned(returned) == Return("tx_01J0000000000000000000009", Money(4321, "USD"), "RTN1", "FOCR")


def test_a_return_that_names_no_transfer_of_this_switch_is_refused() -> None:
    returned = round_trip(mapping.recall_return("RAIL1", _settled_transfer(), "RTN1", now=NOW))
    other_uetr = identifiers.uetr("tx_other")
    for path, value in (("TxInf/OrgnlUETR", other_uetr), ("TxInf/OrgnlEndToEndId", "FOREIGN-1")):
        forged = round_trip(returned)
        element = forged.body.find(path)
        assert element is not None
        element.text = value
        with pytest.raises(ValueError):
            mapping.returned(forged)


def test_a_recalls_resolution_says_whether_money_is_to_come_back() -> None:
    recall = round_trip(mapping.undo("MSG2", reverse("tx_8"), now=NOW))
    accepted = mapping.to_result(round_trip(mapping.resolution("R1", recall, True, now=NOW)))
    never_received = mapping.to_result(
        round_trip(mapping.resolution("R2", recall, False, reason=spec.NO_ORIGINAL, now=NOW))
    )
    refused = mapping.to_result(round_trip(mapping.resolution("R3", recall, False, reason="CUST", now=NOW)))
    assert (accepted.approved, accepted.settles_later) == (True, True)
    assert (never_received.approved, never_received.settles_later) == (True, False)  # nothing moved
    assert (refused.approved, refused.unknown, refused.response_code) == (False, False, "05")
    assert "CUST" in refused.message


def test_recalls_and_refunds_name_the_transfers_message_id() -> None:
    for kind, path in ((OperationKind.REVERSE, "Undrlyg/TxInf/"), (OperationKind.REFUND, "TxInf/")):
        message = round_trip(mapping.undo("MSG3", reverse("tx_8", kind), now=NOW))
        assert message.text(path + "OrgnlGrpInf/OrgnlMsgId") == identifiers.transfer_message_id("tx_8")


# --- against the simulator ---


async def test_an_accepted_recall_is_followed_by_its_return_acknowledged_once_delivered(start: Started) -> None:
    simulator, adapter = await start(return_delay=0.0)
    listener = Listener()
    adapter.listen(listener)
    (paid,) = await adapter.send([transfer("acct-1", "tx_01J000000000000000000000R", 2500)], time_left=2.0)
    (recall,) = await adapter.send([reverse("tx_01J000000000000000000000R")], time_left=2.0)
    assert paid.approved and recall.approved and recall.settles_later
    uetr = identifiers.uetr("tx_01J000000000000000000000R")
    await until(lambda: uetr in simulator.acknowledged)
    assert simulator.acknowledged[uetr] == "ACSC" and simulator.outbox == {}
    ((returned,),) = listener.deliveries
    assert (returned.transaction_id, returned.amount, returned.reason) == (
        "tx_01J000000000000000000000R",
        Money(2500, "USD"),
        "FOCR",
    )


async def test_a_return_not_yet_durable_stays_unacknowledged_until_the_rail_sends_it_again(start: Started) -> None:
    simulator, adapter = await start(return_delay=0.0, resend_after=0.1)
    listener = Listener(fail=2)
    adapter.listen(listener)
    await adapter.send([transfer("acct-1", "tx_01J000000000000000000000S")], time_left=2.0)
    await adapter.send([reverse("tx_01J000000000000000000000S")], time_left=2.0)
    uetr = identifiers.uetr("tx_01J000000000000000000000S")
    await until(lambda: uetr in simulator.acknowledged)
    assert len(listener.deliveries) == 3  # two failed deliveries, acknowledged after the third
    assert simulator.received["pacs.002"] == 1


async def test_a_recall_again_brings_back_one_return(start: Started) -> None:
    simulator, adapter = await start(return_delay=0.0)
    listener = Listener()
    adapter.listen(listener)
    await adapter.send([transfer("acct-1", "tx_01J000000000000000000000T")], time_left=2.0)
    first, again = await adapter.send(
        [reverse("tx_01J000000000000000000000T"), reverse("tx_01J000000000000000000000T")], time_left=2.0
    )
    assert first.settles_later and again.settles_later
    await until(lambda: len(simulator.acknowledged) == 1)
    assert len(listener.deliveries) == 1


async def test_a_rejected_recall_and_a_recall_of_nothing_differ(start: Started) -> None:
    simulator, adapter = await start(recall_rejection="CUST")
    await adapter.send([transfer("acct-1", "tx_01J000000000000000000000U")], time_left=2.0)
    kept, nothing = await adapter.send(
        [reverse("tx_01J000000000000000000000U"), reverse("tx_01J00000000000000000NEVER")], time_left=2.0
    )
    assert (kept.approved, kept.unknown, "CUST" in kept.message) == (False, False, True)
    assert (nothing.approved, nothing.settles_later) == (True, False)  # the rail never received it
    assert simulator.outbox == {}


async def test_a_foreign_return_is_refused_and_not_delivered(start: Started) -> None:
    simulator, adapter = await start()
    listener = Listener()
    adapter.listen(listener)
    foreign = mapping.recall_return("RAIL9", _settled_transfer(), "RTN9", now=NOW)
    element = foreign.body.find("TxInf/OrgnlUETR")
    assert element is not None
    element.text = identifiers.uetr("tx_someone_else")
    simulator.outbox["RAIL9"] = framing.encode(foreign)
    simulator.disconnect_all()  # the rail sends what is unacknowledged on the next connection
    await until(lambda: element.text in simulator.acknowledged)
    assert simulator.acknowledged[element.text] == spec.REJECTED and listener.deliveries == []
