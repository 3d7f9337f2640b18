"""The journal as the checker reads it: PostgreSQL's transactions and journal entries,
and what the switch's background workers still owe (reversals, abandoned intents,
pending captures, voids and refunds). Read directly, never through a fault proxy."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class JournalTransaction:
    transaction_id: str
    merchant_id: str
    idempotency_key: str
    status: str
    currency: str
    authorized: int
    captured: int
    refunded: int


@dataclass(frozen=True)
class JournalEntry:
    transaction_id: str
    merchant_id: str
    idempotency_key: str
    kind: str
    currency: str
    amount: int
    response_code: str
    status: str
    pending: bool = False  # decided, not yet resolved by the network's answer (where the journal has that)


@dataclass(frozen=True)
class PendingWork:
    """What the switch's background workers still owe once the load has stopped."""

    reversals: frozenset[str] = frozenset()  # transactions whose reversal is not acknowledged
    intents: int = 0  # authorizations sent (maybe) and never journaled
    operations: int = 0  # captures, voids and refunds decided and not resolved

    def __bool__(self) -> bool:
        return bool(self.reversals or self.intents or self.operations)


@dataclass
class JournalView:
    transactions: dict[str, JournalTransaction]
    entries: list[JournalEntry]
    pending: PendingWork = field(default_factory=PendingWork)
    by_key: dict[tuple[str, str], JournalEntry] = field(init=False)

    def __post_init__(self) -> None:
        self.by_key = {(e.merchant_id, e.idempotency_key): e for e in self.entries}


async def read_journal(dsn: str, schema: str) -> JournalView:
    """The journal's transactions and entries, read directly (not through a fault proxy)."""
    import asyncpg

    connection = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        transactions = await connection.fetch(
            "SELECT transaction_id, merchant_id, idempotency_key, status, currency, "
            "authorized_minor, captured_minor, refunded_minor FROM transactions"
        )
        pending = "pending" if await _has_pending_entries(connection) else "FALSE"
        entries = await connection.fetch(
            "SELECT transaction_id, merchant_id, idempotency_key, kind, currency, amount_minor, response_code, "
            f"status, {pending} FROM journal_entries"
        )
        work = await pending_work(connection)
    finally:
        await connection.close()
    return JournalView(
        transactions={row[0]: JournalTransaction(*row) for row in transactions},
        entries=[JournalEntry(*row) for row in entries],
        pending=work,
    )


async def pending_work(connection: Any) -> PendingWork:
    """What the reversal (and pending-operation) workers still have to do
    (connection: an asyncpg connection on the schema)."""
    reversals = frozenset(
        row[0] for row in await connection.fetch("SELECT transaction_id FROM reversals WHERE NOT done")
    )
    intents = await connection.fetchval(
        "SELECT count(*) FROM authorization_intents AS i WHERE NOT EXISTS (SELECT 1 FROM journal_entries AS e "
        "WHERE e.merchant_id = i.merchant_id AND e.idempotency_key = i.idempotency_key)"
    )
    operations = 0
    if await _has_pending_entries(connection):
        operations = await connection.fetchval("SELECT count(*) FROM journal_entries WHERE pending")
    return PendingWork(reversals, int(intents), int(operations))


async def _has_pending_entries(connection: Any) -> bool:
    """Whether this journal decides captures, voids and refunds as pending entries first."""
    return bool(
        await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = 'journal_entries' AND column_name = 'pending')"
        )
    )


async def audit_findings(dsn: str, schema: str, signing_key_file: Path) -> list[str]:
    """What `switch audit verify` finds in the journal: whatever the faults did, every
    block commits with its rows or not at all, so the chains verify (a chain whose
    commit's outcome was unknown is retired, never forked)."""
    from switch.security.audit.verify import verify
    from switch.security.custody import verify_signature
    from switch.security.custody.files import read_signing_key
    from switch.stores.postgres import PostgresJournal

    journal = await PostgresJournal.open(dsn, schema=schema)
    try:
        snapshot = await journal.read_audit()
    finally:
        await journal.close()
    trusted = [read_signing_key(signing_key_file).public_key_pem()]
    report = verify(snapshot, verify_signature, trusted)
    if report.blocks == 0:
        return ["the journal has no audit blocks"]
    return [str(finding) for finding in report.findings]


__all__ = [
    "JournalEntry",
    "JournalTransaction",
    "JournalView",
    "PendingWork",
    "audit_findings",
    "pending_work",
    "read_journal",
]
