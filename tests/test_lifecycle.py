"""The pure transitions of captures, voids and refunds."""

from __future__ import annotations

import pytest

from switch.domain.errors import FailedPrecondition, InvalidRequest
from switch.domain.models import Money, Operation, OperationKind, TransactionRecord, TransactionStatus
from switch.flow import lifecycle

AUTHORIZED = TransactionRecord("tx_1", "m-1", "k", TransactionStatus.AUTHORIZED, Money(1000, "USD"))


def op(kind: OperationKind, amount: int | None = None, currency: str = "USD") -> Operation:
    return Operation(kind, "tx_1", "k2", None if amount is None else Money(amount, currency))


def test_partial_capture_then_refunds_in_parts() -> None:
    captured = lifecycle.apply(AUTHORIZED, op(OperationKind.CAPTURE, 600), now=1.0)
    assert (captured.status, captured.captured_minor, captured.version) == (TransactionStatus.CAPTURED, 600, 2)
    part = lifecycle.apply(captured, op(OperationKind.REFUND, 100), now=2.0)
    assert (part.status, part.refunded_minor) == (TransactionStatus.PARTIALLY_REFUNDED, 100)
    rest = lifecycle.apply(part, op(OperationKind.REFUND), now=3.0)
    assert (rest.status, rest.refunded_minor) == (TransactionStatus.REFUNDED, 600)
    assert lifecycle.operation_amount(part, op(OperationKind.REFUND)) == Money(500, "USD")


def test_capture_defaults_to_the_full_amount() -> None:
    assert lifecycle.apply(AUTHORIZED, op(OperationKind.CAPTURE), now=1.0).captured_minor == 1000


@pytest.mark.parametrize(
    ("record_status", "operation"),
    [
        (TransactionStatus.VOIDED, op(OperationKind.CAPTURE)),
        (TransactionStatus.CAPTURED, op(OperationKind.CAPTURE)),
        (TransactionStatus.CAPTURED, op(OperationKind.VOID)),
        (TransactionStatus.AUTHORIZED, op(OperationKind.REFUND)),
        (TransactionStatus.DECLINED, op(OperationKind.CAPTURE)),
        (TransactionStatus.UNKNOWN, op(OperationKind.VOID)),
        (TransactionStatus.REFUNDED, op(OperationKind.REFUND, 1)),
    ],
)
def test_states_that_forbid_the_call(record_status: TransactionStatus, operation: Operation) -> None:
    record = TransactionRecord("tx_1", "m", "k", record_status, Money(1000, "USD"), captured_minor=1000)
    with pytest.raises(FailedPrecondition):
        lifecycle.apply(record, operation, now=1.0)


def test_amounts_beyond_what_is_left() -> None:
    with pytest.raises(FailedPrecondition):
        lifecycle.apply(AUTHORIZED, op(OperationKind.CAPTURE, 1001), now=1.0)
    captured = lifecycle.apply(AUTHORIZED, op(OperationKind.CAPTURE, 600), now=1.0)
    with pytest.raises(FailedPrecondition):
        lifecycle.apply(captured, op(OperationKind.REFUND, 601), now=2.0)


def test_other_currency_is_a_bad_field() -> None:
    with pytest.raises(InvalidRequest) as error:
        lifecycle.apply(AUTHORIZED, op(OperationKind.CAPTURE, 10, "EUR"), now=1.0)
    assert error.value.violations[0].field == "amount.currency"
