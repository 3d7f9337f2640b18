"""How transaction records and journal entries map to table rows, for every SQL journal.

One column order per table, shared by the SQLite and PostgreSQL journals so the
two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from switch.domain.audit import EventKind, SecurityEvent
from switch.domain.models import JournalEntry, Money, OperationKind, TransactionRecord, TransactionStatus
from switch.stores.base import Intent

TRANSACTION_COLUMNS = (
    "transaction_id",
    "merchant_id",
    "idempotency_key",
    "status",
    "currency",
    "authorized_minor",
    "captured_minor",
    "refunded_minor",
    "route",
    "masked_instrument",
    "fingerprint",
    "token",
    "response_code",
    "authorization_code",
    "fee_minor",
    "created_at",
    "updated_at",
    "version",
)

ENTRY_COLUMNS = (
    "transaction_id",
    "merchant_id",
    "idempotency_key",
    "kind",
    "currency",
    "amount_minor",
    "response_code",
    "status",
    "request_hash",
    "response",
    "fee_shares",
    "created_at",
    "pending",
    "decision",
    "alert",
)


INTENT_COLUMNS = (
    "transaction_id",
    "merchant_id",
    "idempotency_key",
    "request_hash",
    "route",
    "currency",
    "amount_minor",
    "masked_instrument",
    "fingerprint",
    "token",
    "created_at",
)


def intent_row(intent: Intent) -> tuple[Any, ...]:
    return (
        intent.transaction_id,
        intent.merchant_id,
        intent.idempotency_key,
        intent.request_hash,
        intent.route,
        intent.amount.currency,
        intent.amount.minor_units,
        intent.masked_instrument,
        intent.fingerprint,
        intent.token,
        intent.created_at,
    )


def intent_from_row(row: Any) -> Intent:
    """row: a sequence in INTENT_COLUMNS order."""
    return Intent(
        transaction_id=row[0],
        merchant_id=row[1],
        idempotency_key=row[2],
        request_hash=row[3],
        route=row[4],
        amount=Money(int(row[6]), row[5]),
        masked_instrument=row[7],
        fingerprint=row[8],
        token=row[9],
        created_at=float(row[10]),
    )


def transaction_row(record: TransactionRecord) -> tuple[Any, ...]:
    return (
        record.transaction_id,
        record.merchant_id,
        record.idempotency_key,
        record.status.value,
        record.authorized.currency,
        record.authorized.minor_units,
        record.captured_minor,
        record.refunded_minor,
        record.route,
        record.masked_instrument,
        record.fingerprint,
        record.token,
        record.response_code,
        record.authorization_code,
        record.fee_minor,
        record.created_at,
        record.updated_at,
        record.version,
    )


def record_from_row(row: Any) -> TransactionRecord:
    """row: a sequence in TRANSACTION_COLUMNS order (sqlite3.Row or asyncpg.Record)."""
    return TransactionRecord(
        transaction_id=row[0],
        merchant_id=row[1],
        idempotency_key=row[2],
        status=TransactionStatus(row[3]),
        authorized=Money(int(row[5]), row[4]),
        captured_minor=int(row[6]),
        refunded_minor=int(row[7]),
        route=row[8],
        masked_instrument=row[9],
        fingerprint=row[10],
        token=row[11],
        response_code=row[12],
        authorization_code=row[13],
        fee_minor=int(row[14]),
        created_at=float(row[15]),
        updated_at=float(row[16]),
        version=int(row[17]),
    )


def entry_row(entry: JournalEntry) -> tuple[Any, ...]:
    return (
        entry.transaction_id,
        entry.merchant_id,
        entry.idempotency_key,
        entry.kind.value,
        entry.amount.currency,
        entry.amount.minor_units,
        entry.response_code,
        entry.status.value,
        entry.request_hash,
        entry.response,
        orjson.dumps(entry.fee_shares).decode(),
        entry.created_at,
        entry.pending,
        entry.decision,
        entry.alert,
    )


def entry_from_row(row: Any) -> JournalEntry:
    """row: a sequence in ENTRY_COLUMNS order."""
    return JournalEntry(
        transaction_id=row[0],
        merchant_id=row[1],
        idempotency_key=row[2],
        kind=OperationKind(row[3]),
        amount=Money(int(row[5]), row[4]),
        response_code=row[6],
        status=TransactionStatus(row[7]),
        request_hash=row[8],
        response=bytes(row[9]),
        fee_shares=tuple((party, int(amount)) for party, amount in orjson.loads(row[10])),
        created_at=float(row[11]),
        pending=bool(row[12]),
        decision=row[13],
        alert=row[14],
    )


def reversal_rows(records: Iterable[TransactionRecord]) -> list[tuple[str, str, int, float]]:
    """A pending reversal for each record whose outcome is unknown, due at once."""
    return [
        (record.transaction_id, record.route, 0, record.created_at)
        for record in records
        if record.status is TransactionStatus.UNKNOWN
    ]


def event_row(event: SecurityEvent) -> tuple[Any, ...]:
    """In switch.stores.audit.EVENT_COLUMNS order."""
    return (
        event.event_id,
        event.kind.value,
        event.caller,
        event.outcome,
        event.subject,
        event.detail,
        event.created_at,
    )


def event_from_row(row: Any) -> SecurityEvent:
    return SecurityEvent(
        kind=EventKind(row[1]),
        caller=row[2],
        outcome=row[3],
        subject=row[4],
        detail=row[5],
        created_at=float(row[6]),
        event_id=row[0],
    )
