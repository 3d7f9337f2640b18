"""The recording network's decisions and log, without its gRPC server."""

from __future__ import annotations

from pathlib import Path

import pytest

from switch.v1 import adapter_pb2
from switch.v1 import switch_pb2 as pb
from tests.faults import network as network_module
from tests.faults.network import RecordingNetwork
from tests.faults.records import DUPLICATE, EXECUTED, REPEATED, UNMATCHED, read_network_log

PAN = "4111111111111111"


def _operation(kind: adapter_pb2.OperationKind.ValueType, tx: str, amount: int) -> adapter_pb2.AdapterOperation:
    operation = adapter_pb2.AdapterOperation(
        kind=kind,
        transaction_id=tx,
        merchant_id="m-1",
        amount=pb.Money(minor_units=amount, currency="USD"),
        masked_instrument="411111******1111",
    )
    if kind == adapter_pb2.OPERATION_KIND_AUTHORIZE:
        operation.card.CopyFrom(pb.Card(pan=PAN, expiry_month=12, expiry_year=2031))
    return operation


def test_it_logs_what_it_executes_and_honours_reversals(tmp_path: Path) -> None:
    log = tmp_path / "network.jsonl"
    network = RecordingNetwork(log)
    authorize = _operation(adapter_pb2.OPERATION_KIND_AUTHORIZE, "tx1", 1000)
    reverse = _operation(adapter_pb2.OPERATION_KIND_REVERSE, "tx1", 1000)
    assert network._decide(authorize).response_code == "00"
    network._decide(_operation(adapter_pb2.OPERATION_KIND_CAPTURE, "tx1", 900))
    network._decide(reverse)
    network._decide(reverse)
    network._decide(_operation(adapter_pb2.OPERATION_KIND_REVERSE, "tx2", 5))
    network.close_log()
    ops = read_network_log(log)
    assert [(op.kind, op.effect) for op in ops] == [
        ("authorize", EXECUTED),
        ("capture", EXECUTED),
        ("reverse", EXECUTED),
        ("reverse", REPEATED),
        ("reverse", UNMATCHED),
    ]
    assert ops[0].amount == 1000 and ops[0].masked_instrument == "411111******1111"
    assert PAN not in log.read_text()


def test_a_resent_reference_is_answered_again_and_not_executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(network_module, "operation_reference", lambda operation: "op_1")
    log = tmp_path / "network.jsonl"
    network = RecordingNetwork(log)
    refund = _operation(adapter_pb2.OPERATION_KIND_REFUND, "tx1", 10)
    first, again = network._decide(refund), network._decide(refund)
    network.close_log()
    assert first == again
    assert [(op.reference, op.effect) for op in read_network_log(log)] == [("op_1", EXECUTED), ("op_1", DUPLICATE)]


def test_without_a_reference_a_resend_is_executed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(network_module, "operation_reference", lambda operation: "")
    log = tmp_path / "network.jsonl"
    network = RecordingNetwork(log)
    refund = _operation(adapter_pb2.OPERATION_KIND_REFUND, "tx1", 10)
    network._decide(refund)
    network._decide(refund)
    network.close_log()
    assert [op.effect for op in read_network_log(log)] == [EXECUTED, EXECUTED]
