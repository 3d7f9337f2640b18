"""What a capture, void or refund does to a transaction, as pure functions.

    AUTHORIZED --capture (once, up to the authorized amount)--> CAPTURED
    AUTHORIZED --void--> VOIDED
    CAPTURED / PARTIALLY_REFUNDED --refund (up to captured - refunded)--> PARTIALLY_REFUNDED | REFUNDED

An approval on a route whose adapter settles on authorize (an instant push payment,
Capability.SETTLES_ON_AUTHORIZE) is journaled CAPTURED in full at once: nothing to
capture or void, and the money goes back by refund.

Anything else raises FailedPrecondition. The journal applies the result only if
the transaction is still the version these functions read.

An operation's result is stored when it is decided, before the network hears of
it, so the amount it moves is reserved; undo() takes a decided operation back when
the network declines it or never received it.
"""

from __future__ import annotations

from dataclasses import replace

from switch.domain.errors import FailedPrecondition, InvalidRequest, Violation
from switch.domain.models import Money, Operation, OperationKind, TransactionRecord, TransactionStatus

_REFUNDABLE = (TransactionStatus.CAPTURED, TransactionStatus.PARTIALLY_REFUNDED)


def apply(record: TransactionRecord, operation: Operation, now: float) -> TransactionRecord:
    """The transaction after the operation; raises if its state forbids the operation."""
    if operation.kind is OperationKind.CAPTURE:
        return _capture(record, operation.amount, now)
    if operation.kind is OperationKind.VOID:
        return _void(record, now)
    if operation.kind is OperationKind.REFUND:
        return _refund(record, operation.amount, now)
    raise ValueError(f"not a follow-up operation: {operation.kind}")


def undo(record: TransactionRecord, kind: OperationKind, amount: Money, now: float) -> TransactionRecord:
    """The transaction with a decided operation of `amount` taken back; raises if the
    transaction does not hold it (taken back already)."""
    if kind is OperationKind.CAPTURE:
        _require(record, "take back the capture of", (TransactionStatus.CAPTURED,))
        return _next(record, now, status=TransactionStatus.AUTHORIZED, captured_minor=0)
    if kind is OperationKind.VOID:
        _require(record, "take back the void of", (TransactionStatus.VOIDED,))
        return _next(record, now, status=TransactionStatus.AUTHORIZED)
    if kind is OperationKind.REFUND:
        return _undo_refund(record, amount, now)
    raise ValueError(f"not a follow-up operation: {kind}")


def operation_amount(record: TransactionRecord, operation: Operation) -> Money:
    """The amount an operation moves, once its default is filled in."""
    if operation.kind is OperationKind.VOID:
        return record.authorized - record.captured
    if operation.kind is OperationKind.CAPTURE:
        return operation.amount or record.authorized
    return operation.amount or (record.captured - record.refunded)


def _capture(record: TransactionRecord, amount: Money | None, now: float) -> TransactionRecord:
    _require(record, "capture", (TransactionStatus.AUTHORIZED,))
    captured = amount or record.authorized
    _same_currency(record, captured)
    if captured.minor_units > record.authorized.minor_units:
        raise FailedPrecondition(
            f"cannot capture {captured.minor_units} of {record.transaction_id}: "
            f"only {record.authorized.minor_units} is authorized"
        )
    return _next(record, now, status=TransactionStatus.CAPTURED, captured_minor=captured.minor_units)


def _void(record: TransactionRecord, now: float) -> TransactionRecord:
    _require(record, "void", (TransactionStatus.AUTHORIZED,))
    return _next(record, now, status=TransactionStatus.VOIDED)


def _refund(record: TransactionRecord, amount: Money | None, now: float) -> TransactionRecord:
    _require(record, "refund", _REFUNDABLE)
    refundable = record.captured_minor - record.refunded_minor
    refund = amount or Money(refundable, record.authorized.currency)
    _same_currency(record, refund)
    if refund.minor_units > refundable:
        raise FailedPrecondition(
            f"cannot refund {refund.minor_units} of {record.transaction_id}: only {refundable} is refundable"
        )
    refunded = record.refunded_minor + refund.minor_units
    status = TransactionStatus.REFUNDED if refunded == record.captured_minor else TransactionStatus.PARTIALLY_REFUNDED
    return _next(record, now, status=status, refunded_minor=refunded)


def _undo_refund(record: TransactionRecord, amount: Money, now: float) -> TransactionRecord:
    _require(record, "take back a refund of", (TransactionStatus.PARTIALLY_REFUNDED, TransactionStatus.REFUNDED))
    refunded = record.refunded_minor - amount.minor_units
    if refunded < 0:
        raise FailedPrecondition(f"cannot take back {amount.minor_units} of {record.transaction_id}'s refunds")
    status = TransactionStatus.PARTIALLY_REFUNDED if refunded else TransactionStatus.CAPTURED
    return _next(record, now, status=status, refunded_minor=refunded)


def _require(record: TransactionRecord, verb: str, allowed: tuple[TransactionStatus, ...]) -> None:
    if record.status not in allowed:
        raise FailedPrecondition(f"cannot {verb} {record.transaction_id}: it is {record.status.value}")


def _same_currency(record: TransactionRecord, amount: Money) -> None:
    if amount.currency != record.authorized.currency:
        raise InvalidRequest(
            [Violation("amount.currency", f"must be {record.authorized.currency}, the authorization's currency")]
        )


def _next(record: TransactionRecord, now: float, **changes: object) -> TransactionRecord:
    return replace(record, updated_at=now, version=record.version + 1, **changes)  # type: ignore[arg-type]
