"""The production Journal: PostgreSQL through an asyncpg pool, one transaction per batch.

A batch of authorizations is COPYed into two temporary tables and moved into the
real ones by one INSERT ... ON CONFLICT DO NOTHING, so a batch of hundreds costs a
handful of round trips, and the unique (merchant_id, idempotency_key) constraint
still catches a duplicate that slipped past the state store, even one racing in
from another process. Every method commits before it returns: the switch only
answers once the record is durable.

The schema is chosen by the DSN (options=-csearch_path=... or a search_path query
parameter) or by the schema argument, which also creates it. Migrations are
applied at open() and by `switch migrate`; an advisory lock serializes switches
that start together.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import asyncpg

from switch.models import JournalEntry, TransactionRecord
from switch.stores.base import ApplyOutcome, ApplyStatus, PendingReversal
from switch.stores.rows import (
    ENTRY_COLUMNS,
    TRANSACTION_COLUMNS,
    entry_from_row,
    entry_row,
    record_from_row,
    reversal_rows,
    transaction_row,
)

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE transactions (
        transaction_id TEXT PRIMARY KEY,
        merchant_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        status TEXT NOT NULL,
        currency TEXT NOT NULL,
        authorized_minor BIGINT NOT NULL,
        captured_minor BIGINT NOT NULL,
        refunded_minor BIGINT NOT NULL,
        route TEXT NOT NULL,
        masked_instrument TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        token TEXT NOT NULL,
        response_code TEXT NOT NULL,
        authorization_code TEXT NOT NULL,
        fee_minor BIGINT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        version INTEGER NOT NULL
    );
    CREATE TABLE journal_entries (
        entry_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        transaction_id TEXT NOT NULL REFERENCES transactions (transaction_id),
        merchant_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        kind TEXT NOT NULL,
        currency TEXT NOT NULL,
        amount_minor BIGINT NOT NULL,
        response_code TEXT NOT NULL,
        status TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        response BYTEA NOT NULL,
        fee_shares TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        CONSTRAINT journal_entries_scope UNIQUE (merchant_id, idempotency_key)
    );
    CREATE INDEX journal_entries_transaction ON journal_entries (transaction_id);
    """,
    """
    CREATE TABLE reversals (
        transaction_id TEXT PRIMARY KEY REFERENCES transactions (transaction_id),
        route TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at DOUBLE PRECISION NOT NULL,
        done BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE INDEX reversals_due ON reversals (next_attempt_at) WHERE NOT done;
    """,
)

# Any constant works: it only has to be the same for every switch migrating this database.
_MIGRATION_LOCK = 0x5357_4A4E_4C  # "SWJNL"

_ENTRY_LIST = ", ".join(ENTRY_COLUMNS)
_TRANSACTION_LIST = ", ".join(TRANSACTION_COLUMNS)

# Temporary tables with the real tables' column types and none of their
# constraints: COPY fills them, and they vanish at commit.
_CREATE_STAGING = (
    f"CREATE TEMP TABLE staged_entries ON COMMIT DROP AS SELECT {_ENTRY_LIST} FROM journal_entries WITH NO DATA;"
    f"CREATE TEMP TABLE staged_transactions ON COMMIT DROP AS "
    f"SELECT {_TRANSACTION_LIST} FROM transactions WITH NO DATA"
)
# One statement moves both: the foreign key from entries to transactions is checked
# at the end of the statement, when both rows are in. Only transactions whose entry
# went in are kept, so a duplicate leaves no orphan transaction behind.
_MOVE_STAGED = f"""
    WITH inserted AS (
        INSERT INTO journal_entries ({_ENTRY_LIST})
        SELECT {_ENTRY_LIST} FROM staged_entries
        ON CONFLICT (merchant_id, idempotency_key) DO NOTHING
        RETURNING transaction_id, merchant_id, idempotency_key
    ), moved AS (
        INSERT INTO transactions ({_TRANSACTION_LIST})
        SELECT {_TRANSACTION_LIST} FROM staged_transactions
        WHERE transaction_id IN (SELECT transaction_id FROM inserted)
    )
    SELECT merchant_id, idempotency_key FROM inserted
"""
_SELECT_ENTRIES = f"""
    SELECT {_ENTRY_LIST} FROM journal_entries
    WHERE (merchant_id, idempotency_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""
_SELECT_ENTRY = f"SELECT {_ENTRY_LIST} FROM journal_entries WHERE merchant_id = $1 AND idempotency_key = $2"
_SELECT_TRANSACTION = f"SELECT {_TRANSACTION_LIST} FROM transactions WHERE transaction_id = $1"
_UPDATE_TRANSACTION = (
    "UPDATE transactions SET "
    + ", ".join(f"{column} = ${n}" for n, column in enumerate(TRANSACTION_COLUMNS[1:], start=2))
    + f" WHERE transaction_id = $1 AND version = ${len(TRANSACTION_COLUMNS) + 1}"
)
_INSERT_REVERSAL = (
    "INSERT INTO reversals (transaction_id, route, attempts, next_attempt_at) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (transaction_id) DO NOTHING"
)
_INSERT_ENTRY = (
    f"INSERT INTO journal_entries ({_ENTRY_LIST}) "
    f"VALUES ({', '.join(f'${n}' for n in range(1, len(ENTRY_COLUMNS) + 1))}) "
    "ON CONFLICT (merchant_id, idempotency_key) DO NOTHING"
)

Scope = tuple[str, str]


class _Rollback(Exception):
    """Leaves a transaction block with a rollback; carries the outcome to return."""

    def __init__(self, outcome: ApplyOutcome) -> None:
        super().__init__(outcome.status.value)
        self.outcome = outcome


class PostgresJournal:
    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, dsn: str, *, schema: str | None = None) -> PostgresJournal:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=8, server_settings=_server_settings(schema))
        try:
            async with pool.acquire() as connection:
                await _migrate(connection, schema)
        except BaseException:
            await pool.close()
            raise
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    async def record_authorizations(
        self, batch: Sequence[tuple[TransactionRecord, JournalEntry]]
    ) -> list[JournalEntry | None]:
        if not batch:
            return []
        # A repeat inside the batch is answered with its first occurrence and never sent.
        first: dict[Scope, int] = {}
        for index, (_, entry) in enumerate(batch):
            first.setdefault(_scope(entry), index)
        fresh = [batch[index] for index in first.values()]
        async with self._pool.acquire() as connection:
            try:
                # The usual case: no key is in the journal yet (the pipeline asked just
                # before), so the batch goes straight in with two COPYs and one commit.
                async with connection.transaction():
                    await _copy(connection, fresh, "transactions", "journal_entries")
                    await _pend_reversals(connection, [record for record, _ in fresh])
                inserted = {_scope(entry) for _, entry in fresh}
                earlier: dict[Scope, JournalEntry] = {}
            except asyncpg.UniqueViolationError:
                # A key arrived meanwhile: stage the batch and keep what does not clash.
                async with connection.transaction():
                    await connection.execute(_CREATE_STAGING)
                    await _copy(connection, fresh, "staged_transactions", "staged_entries")
                    inserted = {(row[0], row[1]) for row in await connection.fetch(_MOVE_STAGED)}
                    await _pend_reversals(connection, [r for r, e in fresh if _scope(e) in inserted])
                    conflicted = [_scope(e) for _, e in fresh if _scope(e) not in inserted]
                    earlier = await _entries(connection, conflicted)
        return [_earlier(batch, index, inserted, earlier, first) for index in range(len(batch))]

    async def apply(self, record: TransactionRecord, entry: JournalEntry) -> ApplyOutcome:
        async with self._pool.acquire() as connection:
            try:
                async with connection.transaction():
                    await _apply(connection, record, entry)
            except _Rollback as rollback:
                return rollback.outcome
        return ApplyOutcome(ApplyStatus.APPLIED)

    async def due_reversals(self, now: float, limit: int) -> list[PendingReversal]:
        rows = await self._pool.fetch(
            "SELECT transaction_id, route, attempts, next_attempt_at FROM reversals "
            "WHERE NOT done AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2",
            now,
            limit,
        )
        return [PendingReversal(row[0], row[1], int(row[2]), float(row[3])) for row in rows]

    async def reschedule_reversal(self, transaction_id: str, attempts: int, next_attempt_at: float) -> None:
        await self._pool.execute(
            "UPDATE reversals SET attempts = $2, next_attempt_at = $3 WHERE transaction_id = $1 AND NOT done",
            transaction_id,
            attempts,
            next_attempt_at,
        )

    async def finish_reversal(self, record: TransactionRecord, entry: JournalEntry) -> bool:
        async with self._pool.acquire() as connection:
            try:
                async with connection.transaction():
                    done = await connection.execute(
                        "UPDATE reversals SET done = TRUE WHERE transaction_id = $1 AND NOT done",
                        record.transaction_id,
                    )
                    if done != "UPDATE 1":
                        raise _Rollback(ApplyOutcome(ApplyStatus.DUPLICATE))
                    await _apply(connection, record, entry)
            except _Rollback:
                return False
        return True

    async def get_transaction(self, transaction_id: str) -> TransactionRecord | None:
        row = await self._pool.fetchrow(_SELECT_TRANSACTION, transaction_id)
        return None if row is None else record_from_row(row)

    async def find_entries(self, scopes: Sequence[Scope]) -> dict[Scope, JournalEntry]:
        async with self._pool.acquire() as connection:
            return await _entries(connection, scopes)


async def migrate(dsn: str, *, schema: str | None = None) -> int:
    """Applies the migrations the database has not seen yet; returns how many ran."""
    connection = await asyncpg.connect(dsn, server_settings=_server_settings(schema))
    try:
        return await _migrate(connection, schema)
    finally:
        await connection.close()


async def _migrate(connection: Any, schema: str | None) -> int:
    async with connection.transaction():
        # Held until commit: a second switch starting now waits, then finds nothing to do.
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        if schema is not None:
            await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION)"
        )
        done = await connection.fetchval("SELECT COUNT(*) FROM schema_migrations")
        for version, script in enumerate(MIGRATIONS[done:], start=done + 1):
            await connection.execute(script)
            await connection.execute("INSERT INTO schema_migrations VALUES ($1, $2)", version, time.time())
    return len(MIGRATIONS) - int(done)


async def _pend_reversals(connection: Any, records: Sequence[TransactionRecord]) -> None:
    rows = reversal_rows(records)
    if rows:
        await connection.executemany(_INSERT_REVERSAL, rows)


async def _copy(
    connection: Any, fresh: Sequence[tuple[TransactionRecord, JournalEntry]], transactions: str, entries: str
) -> None:
    """COPYs the batch into the two tables named (transactions first: entries refer to them)."""
    rows = [transaction_row(record) for record, _ in fresh]
    await connection.copy_records_to_table(transactions, records=rows, columns=TRANSACTION_COLUMNS)
    rows = [entry_row(entry) for _, entry in fresh]
    await connection.copy_records_to_table(entries, records=rows, columns=ENTRY_COLUMNS)


async def _apply(connection: Any, record: TransactionRecord, entry: JournalEntry) -> None:
    """Runs inside a transaction; raises _Rollback for anything but APPLIED."""
    existing = await connection.fetchrow(_SELECT_ENTRY, entry.merchant_id, entry.idempotency_key)
    if existing is not None:
        raise _Rollback(ApplyOutcome(ApplyStatus.DUPLICATE, entry_from_row(existing)))
    updated = await connection.execute(_UPDATE_TRANSACTION, *transaction_row(record), record.version - 1)
    if updated != "UPDATE 1":
        raise _Rollback(ApplyOutcome(ApplyStatus.STALE))
    inserted = await connection.execute(_INSERT_ENTRY, *entry_row(entry))
    if inserted != "INSERT 0 1":
        # Another apply committed the same key after our first look: it wins.
        existing = await connection.fetchrow(_SELECT_ENTRY, entry.merchant_id, entry.idempotency_key)
        raise _Rollback(ApplyOutcome(ApplyStatus.DUPLICATE, entry_from_row(existing)))


async def _entries(connection: Any, scopes: Sequence[Scope]) -> dict[Scope, JournalEntry]:
    if not scopes:
        return {}
    merchants, keys = zip(*scopes, strict=True)
    rows = await connection.fetch(_SELECT_ENTRIES, list(merchants), list(keys))
    found = (entry_from_row(row) for row in rows)
    return {_scope(entry): entry for entry in found}


def _earlier(
    batch: Sequence[tuple[TransactionRecord, JournalEntry]],
    index: int,
    inserted: set[Scope],
    stored: dict[Scope, JournalEntry],
    first: dict[Scope, int],
) -> JournalEntry | None:
    """None when batch[index] went in; else the entry that holds its key."""
    scope = _scope(batch[index][1])
    if scope not in inserted:
        return stored[scope]
    return None if first[scope] == index else batch[first[scope]][1]


def _scope(entry: JournalEntry) -> Scope:
    return (entry.merchant_id, entry.idempotency_key)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _server_settings(schema: str | None) -> dict[str, str] | None:
    return None if schema is None else {"search_path": _quote(schema)}
