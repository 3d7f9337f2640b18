"""The production Journal: PostgreSQL through an asyncpg pool, one transaction per batch.

A large batch of authorizations goes in by binary COPY, the cheapest way
PostgreSQL takes rows: its transactions, then its journal entries, then any
pending reversals, in one transaction (BEGIN, two or three COPYs, COMMIT). The
unique (merchant_id, idempotency_key) constraint is the last guard against a
duplicate that slipped past the state store, even one racing in from another
process: when it fires, the transaction rolls back and the batch goes again as
one statement that skips the keys already held and reports them (see _RECORD),
so the usual batch never pays for ON CONFLICT and a clashing one still commits
every other item. A small batch (under COPY_FROM_ROWS) goes as that statement at
once: one round trip instead of four. Every method commits before it returns: the
switch only answers once the record is durable.

The journal sets no session state on its connections (no SET, LISTEN, cursors or
session-level advisory locks), so the pool skips asyncpg's reset query on release
and only rolls back a transaction left open.

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
import orjson

from switch.domain.models import JournalEntry, TransactionRecord
from switch.stores.base import ApplyOutcome, ApplyStatus, Intent, PendingOperation, PendingReversal
from switch.stores.rows import (
    ENTRY_COLUMNS,
    INTENT_COLUMNS,
    TRANSACTION_COLUMNS,
    entry_from_row,
    entry_row,
    intent_from_row,
    intent_row,
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
    # Entries and their transactions are only ever written together, in one
    # transaction (record_authorizations, apply), so the foreign key checked nothing
    # those writes do not already hold, at a third of a batch's CPU in PostgreSQL
    # (a trigger and an index probe per entry). Orphans stay impossible by
    # construction; the journal tests look for them.
    """
    ALTER TABLE journal_entries DROP CONSTRAINT IF EXISTS journal_entries_transaction_id_fkey;
    """,
    """
    CREATE TABLE authorization_intents (
        merchant_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        transaction_id TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        route TEXT NOT NULL,
        currency TEXT NOT NULL,
        amount_minor BIGINT NOT NULL,
        masked_instrument TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        token TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (merchant_id, idempotency_key)
    );
    CREATE INDEX authorization_intents_age ON authorization_intents (created_at);
    """,
    # Captures, voids and refunds are journaled pending before they are sent (see
    # switch.flow.pending_operations); attempts and next_attempt_at are the lease of whoever
    # sends one, and mean nothing once it is resolved. Constant defaults: no rewrite.
    """
    ALTER TABLE journal_entries
        ADD COLUMN pending BOOLEAN NOT NULL DEFAULT FALSE,
        ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0,
        ADD COLUMN next_attempt_at DOUBLE PRECISION NOT NULL DEFAULT 0;
    CREATE INDEX journal_entries_pending ON journal_entries (next_attempt_at) WHERE pending;
    """,
)

# Any constant works: it only has to be the same for every switch migrating this database.
_MIGRATION_LOCK = 0x5357_4A4E_4C  # "SWJNL"

_ENTRY_LIST = ", ".join(ENTRY_COLUMNS)
_TRANSACTION_LIST = ", ".join(TRANSACTION_COLUMNS)
_REVERSAL_COLUMNS = ("transaction_id", "route", "attempts", "next_attempt_at")

# Each column's type, as the migrations declare it.
_TYPES = {
    "transaction_id": "text",
    "merchant_id": "text",
    "idempotency_key": "text",
    "status": "text",
    "currency": "text",
    "authorized_minor": "bigint",
    "captured_minor": "bigint",
    "refunded_minor": "bigint",
    "route": "text",
    "masked_instrument": "text",
    "fingerprint": "text",
    "token": "text",
    "response_code": "text",
    "authorization_code": "text",
    "fee_minor": "bigint",
    "created_at": "double precision",
    "updated_at": "double precision",
    "version": "integer",
    "kind": "text",
    "amount_minor": "bigint",
    "request_hash": "text",
    "response": "bytea",
    "fee_shares": "text",
    "pending": "boolean",
    "attempts": "integer",
    "next_attempt_at": "double precision",
}


def _rows(columns: tuple[str, ...], parameter: int) -> str:
    """The rows of a JSON parameter (an array of arrays, one value per column, in order),
    each value cast to its column's type, with its position (1-based) in the batch."""
    values = ", ".join(f"{_value(column, n)} AS {column}" for n, column in enumerate(columns))
    source = f"jsonb_array_elements(${parameter}::jsonb) WITH ORDINALITY AS batch (row, position)"
    return f"SELECT position, {values} FROM {source}"


def _value(column: str, n: int) -> str:
    if _TYPES[column] == "bytea":
        return f"decode(row ->> {n}, 'hex')"
    return f"(row ->> {n})::{_TYPES[column]}"


# A batch that COPY could not take (one of its keys is already journaled) as one
# statement: $1 the entries, $2 their transactions, $3 the pending reversals, each
# one JSON text (one parameter costs the client far less to encode than an array
# per column). The reversals' foreign key is checked at the end of the statement,
# when every row is in. Only the transactions whose entry went in are kept, with
# their reversals, so a duplicate leaves no orphan behind; a clashing
# transaction_id still fails the whole statement. It returns the positions of the
# entries that did not go in.
_RECORD = f"""
    WITH entries AS MATERIALIZED (
        {_rows(ENTRY_COLUMNS, 1)}
    ), inserted AS (
        INSERT INTO journal_entries ({_ENTRY_LIST})
        SELECT {_ENTRY_LIST} FROM entries
        ON CONFLICT (merchant_id, idempotency_key) DO NOTHING
        RETURNING transaction_id
    ), transactions_in AS (
        INSERT INTO transactions ({_TRANSACTION_LIST})
        SELECT {_TRANSACTION_LIST} FROM ({_rows(TRANSACTION_COLUMNS, 2)}) AS batch
        WHERE transaction_id IN (SELECT transaction_id FROM inserted)
    ), reversals_in AS (
        INSERT INTO reversals ({", ".join(_REVERSAL_COLUMNS)})
        SELECT {", ".join(_REVERSAL_COLUMNS)} FROM ({_rows(_REVERSAL_COLUMNS, 3)}) AS batch
        WHERE transaction_id IN (SELECT transaction_id FROM inserted)
        ON CONFLICT (transaction_id) DO NOTHING
    )
    SELECT ARRAY(
        SELECT position FROM entries
        WHERE transaction_id NOT IN (SELECT transaction_id FROM inserted)
        ORDER BY position
    )
"""
# $1: the (merchant_id, idempotency_key) pairs as one JSON array of pairs (two text
# arrays cost asyncpg four abstract-class checks per key to encode). One index probe
# per pair, whatever the statistics say: the LIMIT keeps the planner from turning the
# lookups into a join. As a join (`IN (SELECT ...)`), a journal not yet analyzed (a
# new one, or one just truncated) would be read by a hash join over a sequential scan,
# since the planner takes any set-returning function for 100 rows: a cost per batch
# that grows with the table instead of staying one probe per key.
_SELECT_ENTRIES = f"""
    SELECT entry.* FROM jsonb_array_elements($1::jsonb) AS s, LATERAL (
        SELECT {_ENTRY_LIST} FROM journal_entries
        WHERE merchant_id = s ->> 0 AND idempotency_key = s ->> 1
        LIMIT 1
    ) AS entry
"""
_SELECT_ENTRY = f"SELECT {_ENTRY_LIST} FROM journal_entries WHERE merchant_id = $1 AND idempotency_key = $2"
_SELECT_TRANSACTION = f"SELECT {_TRANSACTION_LIST} FROM transactions WHERE transaction_id = $1"
_INTENT_LIST = ", ".join(INTENT_COLUMNS)
# $1: the intents as one JSON array of rows. An intent of the same transaction moves
# to the new route (failover); one of another transaction stays, and that
# authorization is not returned, so it is not sent.
_RECORD_INTENTS = f"""
    INSERT INTO authorization_intents ({_INTENT_LIST})
    SELECT {_INTENT_LIST} FROM ({_rows(INTENT_COLUMNS, 1)}) AS batch
    ON CONFLICT (merchant_id, idempotency_key) DO UPDATE
        SET route = EXCLUDED.route, created_at = EXCLUDED.created_at
        WHERE authorization_intents.transaction_id = EXCLUDED.transaction_id
    RETURNING transaction_id
"""
_UNJOURNALED = (
    "NOT EXISTS (SELECT 1 FROM journal_entries AS e "
    "WHERE e.merchant_id = i.merchant_id AND e.idempotency_key = i.idempotency_key)"
)
_ABANDONED_INTENTS = (
    f"SELECT {', '.join(f'i.{c}' for c in INTENT_COLUMNS)} FROM authorization_intents AS i "
    f"WHERE i.created_at < $1 AND {_UNJOURNALED} ORDER BY i.created_at LIMIT $2"
)
_PRUNE_INTENTS = f"DELETE FROM authorization_intents AS i WHERE i.created_at < $1 AND NOT {_UNJOURNALED}"
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
_INSERT_PENDING_ENTRY = (
    f"INSERT INTO journal_entries ({_ENTRY_LIST}, attempts, next_attempt_at) "
    f"VALUES ({', '.join(f'${n}' for n in range(1, len(ENTRY_COLUMNS) + 1))}, 1, ${len(ENTRY_COLUMNS) + 1}) "
    "ON CONFLICT (merchant_id, idempotency_key) DO NOTHING"
)
_SELECT_PENDING = f"SELECT {_ENTRY_LIST}, attempts, next_attempt_at FROM journal_entries WHERE pending"
_PENDING_SCOPE = "merchant_id = $1 AND idempotency_key = $2 AND pending"
_TAKE_OPERATION = (
    f"UPDATE journal_entries SET attempts = attempts + 1, next_attempt_at = $4 WHERE {_PENDING_SCOPE} AND attempts = $3"
)
_RESOLVE_OPERATION = (
    f"UPDATE journal_entries SET pending = FALSE, response_code = $3, status = $4, response = $5 WHERE {_PENDING_SCOPE}"
)
_WITHDRAW_OPERATION = f"DELETE FROM journal_entries WHERE {_PENDING_SCOPE} AND attempts = $3"

Scope = tuple[str, str]


class _Rollback(Exception):
    """Leaves a transaction block with a rollback; carries the outcome to return."""

    def __init__(self, outcome: ApplyOutcome) -> None:
        super().__init__(outcome.status.value)
        self.outcome = outcome


# Below this many rows a batch goes as the one statement: COPY's transaction costs
# the switch four round trips to the statement's one, and saves PostgreSQL enough CPU
# to pay for them only on larger batches (loadtests/stages.py, run both ways at a few
# batch sizes, finds where).
COPY_FROM_ROWS = 64


class PostgresJournal:
    def __init__(self, pool: Any, *, copy_from_rows: int = COPY_FROM_ROWS) -> None:
        self._pool = pool
        self._copy_from_rows = copy_from_rows

    @classmethod
    async def open(
        cls, dsn: str, *, schema: str | None = None, copy_from_rows: int = COPY_FROM_ROWS
    ) -> PostgresJournal:
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=8, server_settings=_server_settings(schema), reset=_keep_session
        )
        try:
            async with pool.acquire() as connection:
                await _migrate(connection, schema)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, copy_from_rows=copy_from_rows)

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
            if len(fresh) >= self._copy_from_rows and await _copied(connection, fresh):
                conflicted: set[Scope] = set()
                earlier: dict[Scope, JournalEntry] = {}
            else:
                # A small batch, or a key arrived meanwhile (the pipeline asked just
                # before): one statement that skips held keys; their earlier entries
                # answer for them.
                conflicted, earlier = await _record_skipping_held(connection, fresh)
        return [_earlier(batch, index, conflicted, earlier, first) for index in range(len(batch))]

    async def apply(
        self, record: TransactionRecord, entry: JournalEntry, *, lease_until: float | None = None
    ) -> ApplyOutcome:
        async with self._pool.acquire() as connection:
            try:
                async with connection.transaction():
                    await _apply(connection, record, entry, lease_until)
            except _Rollback as rollback:
                return rollback.outcome
        return ApplyOutcome(ApplyStatus.APPLIED)

    async def record_intents(self, intents: Sequence[Intent]) -> set[str]:
        rows = await self._pool.fetch(_RECORD_INTENTS, _json([intent_row(intent) for intent in intents]))
        return {row[0] for row in rows}

    async def abandoned_intents(self, before: float, limit: int) -> list[Intent]:
        return [intent_from_row(row) for row in await self._pool.fetch(_ABANDONED_INTENTS, before, limit)]

    async def prune_intents(self, before: float) -> int:
        status = await self._pool.execute(_PRUNE_INTENTS, before)
        return int(status.rpartition(" ")[2])

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

    async def due_operations(self, now: float, limit: int) -> list[PendingOperation]:
        rows = await self._pool.fetch(
            f"{_SELECT_PENDING} AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2", now, limit
        )
        return [PendingOperation(entry_from_row(row), int(row[-2]), float(row[-1])) for row in rows]

    async def pending_operations(self, transaction_id: str) -> list[JournalEntry]:
        rows = await self._pool.fetch(f"{_SELECT_PENDING} AND transaction_id = $1", transaction_id)
        return [entry_from_row(row) for row in rows]

    async def take_operation(self, entry: JournalEntry, attempts: int, lease_until: float) -> bool:
        scope = (entry.merchant_id, entry.idempotency_key)
        return bool(await self._pool.execute(_TAKE_OPERATION, *scope, attempts, lease_until) == "UPDATE 1")

    async def resolve_operation(self, entry: JournalEntry, record: TransactionRecord | None) -> ApplyStatus:
        final = (entry.response_code, entry.status.value, entry.response)
        return await self._settle(record, _RESOLVE_OPERATION, entry.merchant_id, entry.idempotency_key, *final)

    async def withdraw_operation(self, entry: JournalEntry, attempts: int, record: TransactionRecord) -> ApplyStatus:
        return await self._settle(record, _WITHDRAW_OPERATION, entry.merchant_id, entry.idempotency_key, attempts)

    async def _settle(self, record: TransactionRecord | None, statement: str, *parameters: Any) -> ApplyStatus:
        """statement on a pending entry and record's conditional write, in one commit, or neither."""
        async with self._pool.acquire() as connection:
            try:
                async with connection.transaction():
                    if await connection.execute(statement, *parameters) not in ("UPDATE 1", "DELETE 1"):
                        raise _Rollback(ApplyOutcome(ApplyStatus.DUPLICATE))
                    if record is not None and not await _store_next_version(connection, record):
                        raise _Rollback(ApplyOutcome(ApplyStatus.STALE))
            except _Rollback as rollback:
                return rollback.outcome.status
        return ApplyStatus.APPLIED

    async def get_transaction(self, transaction_id: str) -> TransactionRecord | None:
        row = await self._pool.fetchrow(_SELECT_TRANSACTION, transaction_id)
        return None if row is None else record_from_row(row)

    async def find_entries(self, scopes: Sequence[Scope]) -> dict[Scope, JournalEntry]:
        async with self._pool.acquire() as connection:
            return await _entries(connection, scopes)


async def _keep_session(connection: Any) -> None:
    """The pool's reset on release, in place of asyncpg's reset query (pg_advisory_unlock_all,
    CLOSE ALL, UNLISTEN *, RESET ALL: one more round trip per batch). The journal leaves no
    session state to undo; the pool still rolls back a transaction left open before this."""


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


def _json(rows: Sequence[tuple[Any, ...]]) -> str:
    """Rows as one JSON array of arrays; bytes (a response) as hex, which the statement decodes."""
    return orjson.dumps(rows, default=bytes.hex).decode()


async def _copied(connection: Any, batch: Sequence[tuple[TransactionRecord, JournalEntry]]) -> bool:
    """The batch's rows by binary COPY, in one transaction; False (having written
    nothing) when a key or transaction id is already held."""
    try:
        await _copy_batch(connection, batch)
    except asyncpg.UniqueViolationError:
        return False
    return True


async def _copy_batch(connection: Any, batch: Sequence[tuple[TransactionRecord, JournalEntry]]) -> None:
    reversals = reversal_rows(record for record, _ in batch)
    async with connection.transaction():
        # Transactions first: an entry never exists without its transaction.
        await connection.copy_records_to_table(
            "transactions", records=[transaction_row(record) for record, _ in batch], columns=TRANSACTION_COLUMNS
        )
        await connection.copy_records_to_table(
            "journal_entries", records=[entry_row(entry) for _, entry in batch], columns=ENTRY_COLUMNS
        )
        if reversals:
            await connection.copy_records_to_table("reversals", records=reversals, columns=_REVERSAL_COLUMNS)


async def _record_skipping_held(
    connection: Any, batch: Sequence[tuple[TransactionRecord, JournalEntry]]
) -> tuple[set[Scope], dict[Scope, JournalEntry]]:
    """The batch as one statement that skips the keys the journal holds; returns those
    keys and the entries holding them."""
    entries = _json([entry_row(entry) for _, entry in batch])
    transactions = _json([transaction_row(record) for record, _ in batch])
    reversals = _json(reversal_rows(record for record, _ in batch))
    missed = await connection.fetchval(_RECORD, entries, transactions, reversals)
    conflicted = {_scope(batch[position - 1][1]) for position in missed}
    return conflicted, await _entries(connection, list(conflicted))


async def _store_next_version(connection: Any, record: TransactionRecord) -> bool:
    """Stores record if the stored transaction is still the version before it."""
    return bool(
        await connection.execute(_UPDATE_TRANSACTION, *transaction_row(record), record.version - 1) == "UPDATE 1"
    )


async def _apply(
    connection: Any, record: TransactionRecord, entry: JournalEntry, lease_until: float | None = None
) -> None:
    """Runs inside a transaction; raises _Rollback for anything but APPLIED."""
    existing = await connection.fetchrow(_SELECT_ENTRY, entry.merchant_id, entry.idempotency_key)
    if existing is not None:
        raise _Rollback(ApplyOutcome(ApplyStatus.DUPLICATE, entry_from_row(existing)))
    if not await _store_next_version(connection, record):
        raise _Rollback(ApplyOutcome(ApplyStatus.STALE))
    if lease_until is None:
        inserted = await connection.execute(_INSERT_ENTRY, *entry_row(entry))
    else:
        inserted = await connection.execute(_INSERT_PENDING_ENTRY, *entry_row(entry), lease_until)
    if inserted != "INSERT 0 1":
        # Another apply committed the same key after our first look: it wins.
        existing = await connection.fetchrow(_SELECT_ENTRY, entry.merchant_id, entry.idempotency_key)
        raise _Rollback(ApplyOutcome(ApplyStatus.DUPLICATE, entry_from_row(existing)))


async def _entries(connection: Any, scopes: Sequence[Scope]) -> dict[Scope, JournalEntry]:
    if not scopes:
        return {}
    rows = await connection.fetch(_SELECT_ENTRIES, _json(scopes))
    found = (entry_from_row(row) for row in rows)
    return {_scope(entry): entry for entry in found}


def _earlier(
    batch: Sequence[tuple[TransactionRecord, JournalEntry]],
    index: int,
    conflicted: set[Scope],
    stored: dict[Scope, JournalEntry],
    first: dict[Scope, int],
) -> JournalEntry | None:
    """None when batch[index] went in; else the entry that holds its key."""
    scope = _scope(batch[index][1])
    if scope in conflicted:
        return stored[scope]
    return None if first[scope] == index else batch[first[scope]][1]


def _scope(entry: JournalEntry) -> Scope:
    return (entry.merchant_id, entry.idempotency_key)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _server_settings(schema: str | None) -> dict[str, str] | None:
    return None if schema is None else {"search_path": _quote(schema)}
