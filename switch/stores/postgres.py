"""The production Journal: PostgreSQL through an asyncpg pool, one transaction per batch.

A large batch of authorizations goes in by binary COPY, the cheapest way
PostgreSQL takes rows: its transactions, then its journal entries, then any
pending reversals, in one transaction (BEGIN, two or three COPYs, COMMIT). The
unique (merchant_id, idempotency_key) constraint is the last guard against a
duplicate that slipped past the state store, even one racing in from another
process: when it fires, the transaction rolls back and the batch goes again as
one statement without the keys found held (see _RECORD), so a clashing batch
still commits every other item. A small batch (under COPY_FROM_ROWS) goes as that statement at
once: one round trip instead of four. Every method commits before it returns: the
switch only answers once the record is durable.

Every commit that writes journal rows also writes their block of the audit chain
(switch.stores.audit), in the same transaction, so the one statement takes all of
its rows or none (see _RECORD).

The journal sets no session state on its connections (no SET, LISTEN, cursors or
session-level advisory locks), so the pool skips asyncpg's reset query on release
and only rolls back a transaction left open.

The schema is chosen by the DSN (options=-csearch_path=... or a search_path query
parameter) or by the schema argument, which also creates it. Migrations are
applied at open() and by `switch migrate`; an advisory lock serializes switches
that start together.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import orjson

from switch.domain.alerts import AlertQuery, RiskAlert
from switch.domain.audit import SecurityEvent
from switch.domain.kyc import HolderTier
from switch.domain.models import JournalEntry, TransactionRecord
from switch.stores.audit import (
    BLOCK_COLUMNS,
    CHECKPOINT_COLUMNS,
    EVENT_COLUMNS,
    AuditChains,
    AuditRows,
    AuditSnapshot,
    Block,
    Checkpoint,
)
from switch.stores.base import ApplyOutcome, ApplyStatus, Intent, PendingOperation, PendingReversal
from switch.stores.rows import (
    ENTRY_COLUMNS,
    INTENT_COLUMNS,
    TRANSACTION_COLUMNS,
    entry_from_row,
    entry_row,
    event_row,
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
    # The audit trail (switch.stores.audit): a block per commit, security events, and
    # signed checkpoints of the chains' heads.
    """
    CREATE TABLE audit_blocks (
        chain_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        prev_hash BYTEA NOT NULL,
        root BYTEA NOT NULL,
        block_hash BYTEA NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        leaves BYTEA NOT NULL,
        keys TEXT NOT NULL,
        PRIMARY KEY (chain_id, seq)
    );
    CREATE TABLE security_events (
        event_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        caller TEXT NOT NULL,
        outcome TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE audit_checkpoints (
        checkpoint_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        created_at DOUBLE PRECISION NOT NULL,
        heads TEXT NOT NULL,
        key_id TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        public_key BYTEA NOT NULL,
        signature BYTEA NOT NULL
    );
    """,
    # What the risk step decided for each authorization, and the alert it raised
    # (JournalEntry.decision, .alert); ListAlerts reads the few entries with an alert.
    """
    ALTER TABLE journal_entries ADD COLUMN decision TEXT NOT NULL DEFAULT '';
    ALTER TABLE journal_entries ADD COLUMN alert TEXT NOT NULL DEFAULT '';
    CREATE INDEX journal_entries_alerts ON journal_entries (created_at, transaction_id) WHERE alert <> '';
    """,
    # Each holder's KYC tier (SetHolderTier); seq orders the changes, so that a state
    # store reloading them never puts an older tier over a newer one.
    """
    CREATE SEQUENCE holder_tier_changes;
    CREATE TABLE holder_tiers (
        holder TEXT PRIMARY KEY,
        tier TEXT NOT NULL,
        seq BIGINT NOT NULL,
        set_at DOUBLE PRECISION NOT NULL
    );
    """,
    # Authorizations reported as fraud, or as not fraud (ReportFraud): the training set's labels.
    """
    CREATE TABLE fraud_labels (
        transaction_id TEXT PRIMARY KEY,
        fraud BOOLEAN NOT NULL,
        labelled_at DOUBLE PRECISION NOT NULL
    );
    """,
    # Who made which model of a policy bundle its live one (PromoteModel): the latest row
    # for a bundle's version is applied by every worker's reload and at every start.
    """
    CREATE TABLE model_promotions (
        promotion_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        policy_version TEXT NOT NULL,
        live_model TEXT NOT NULL,
        caller TEXT NOT NULL,
        reason TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX model_promotions_policy ON model_promotions (policy_version, promotion_id);
    """,
)

# The partial index on alerted entries serves the order and the time range; kind and
# merchant are filtered on what it finds. '' leaves a filter out.
_LIST_ALERTS = (
    "SELECT transaction_id, merchant_id, alert, decision, response_code, created_at FROM journal_entries "
    "WHERE alert <> '' AND ($1 = '' OR alert = $1) AND ($2 = '' OR merchant_id = $2) "
    "AND created_at >= $3 AND created_at < $4 AND (created_at, transaction_id) > ($5, $6) "
    "ORDER BY created_at, transaction_id LIMIT $7"
)

_UPSERT_LABEL = (
    "INSERT INTO fraud_labels (transaction_id, fraud, labelled_at) VALUES ($1, $2, $3) "
    "ON CONFLICT (transaction_id) DO UPDATE SET fraud = excluded.fraud, labelled_at = excluded.labelled_at"
)
# Each label beside its authorization's decision (which holds the features it was scored on).
_LABELLED = (
    "SELECT e.decision, l.fraud FROM fraud_labels l JOIN journal_entries e "
    "ON e.transaction_id = l.transaction_id AND e.kind = 'authorize' ORDER BY l.labelled_at"
)
_INSERT_PROMOTION = (
    "INSERT INTO model_promotions (policy_version, live_model, caller, reason, at) VALUES ($1, $2, $3, $4, $5)"
)
_PROMOTED = "SELECT live_model FROM model_promotions WHERE policy_version = $1 ORDER BY promotion_id DESC LIMIT 1"
# The sequence orders tier changes across every switch writing to this database.
_UPSERT_TIER = (
    "INSERT INTO holder_tiers (holder, tier, seq, set_at) VALUES ($1, $2, nextval('holder_tier_changes'), $3) "
    "ON CONFLICT (holder) DO UPDATE SET tier = excluded.tier, seq = excluded.seq, set_at = excluded.set_at "
    "RETURNING seq"
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
    "decision": "text",
    "alert": "text",
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


# A batch that COPY could not take (one of its keys is already journaled), or a small
# one, as one statement: $1 the entries, $2 their transactions, $3 the pending
# reversals, each one JSON text (one parameter costs the client far less to encode
# than an array per column), $4.. the audit block covering them. All of it goes in,
# or none: a key already held fails the statement on the unique constraint, and the
# batch goes again without the keys found held (which is rare: the pipeline drops
# keys the journal holds just before). The reversals' foreign key is checked at the
# end of the statement, when every row is in.
_RECORD = f"""
    WITH entries_in AS (
        INSERT INTO journal_entries ({_ENTRY_LIST})
        SELECT {_ENTRY_LIST} FROM ({_rows(ENTRY_COLUMNS, 1)}) AS batch
    ), transactions_in AS (
        INSERT INTO transactions ({_TRANSACTION_LIST})
        SELECT {_TRANSACTION_LIST} FROM ({_rows(TRANSACTION_COLUMNS, 2)}) AS batch
    ), reversals_in AS (
        INSERT INTO reversals ({", ".join(_REVERSAL_COLUMNS)})
        SELECT {", ".join(_REVERSAL_COLUMNS)} FROM ({_rows(_REVERSAL_COLUMNS, 3)}) AS batch
        ON CONFLICT (transaction_id) DO NOTHING
    )
    INSERT INTO audit_blocks ({", ".join(BLOCK_COLUMNS)})
    VALUES ({", ".join(f"${n}" for n in range(4, 4 + len(BLOCK_COLUMNS)))})
"""
_RECORD_ATTEMPTS = 4
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


def _insert(table: str, columns: Sequence[str]) -> str:
    values = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values})"


_INSERT_BLOCK = _insert("audit_blocks", BLOCK_COLUMNS)
_INSERT_EVENT = _insert("security_events", EVENT_COLUMNS)
_INSERT_CHECKPOINT = _insert("audit_checkpoints", CHECKPOINT_COLUMNS)

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
    def __init__(self, pool: Any, *, copy_from_rows: int = COPY_FROM_ROWS, audit: AuditChains | None = None) -> None:
        self._pool = pool
        self._copy_from_rows = copy_from_rows
        self._audit = audit or AuditChains()

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

    @contextlib.asynccontextmanager
    async def _sealed(self, connection: Any) -> AsyncIterator[AuditRows]:
        """A transaction whose rows, added to the AuditRows it yields, are sealed into
        one block of the audit chain before it commits."""
        rows = AuditRows()
        block: Block | None = None
        try:
            async with connection.transaction():
                yield rows
                if rows:
                    block = self._audit.seal(rows)
                    await connection.execute(_INSERT_BLOCK, *block.row())
        except BaseException:
            if block is not None:
                self._audit.settle(block, None)  # COMMIT failed: whether it happened is not known
            raise
        if block is not None:
            self._audit.settle(block, True)

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
            if len(fresh) >= self._copy_from_rows and await self._copied(connection, fresh):
                earlier: dict[Scope, JournalEntry] = {}
            else:
                # A small batch, or a key arrived meanwhile (the pipeline asked just
                # before): one statement; the earlier entries of keys found held
                # answer for them.
                earlier = await self._record_skipping_held(connection, fresh)
        return [_earlier(batch, index, earlier, first) for index in range(len(batch))]

    async def _copied(self, connection: Any, batch: Sequence[tuple[TransactionRecord, JournalEntry]]) -> bool:
        """The batch's rows by binary COPY, in one transaction with their block; False
        (having written nothing) when a key or transaction id is already held."""
        reversals = reversal_rows(record for record, _ in batch)
        transactions = [transaction_row(record) for record, _ in batch]
        entries = [entry_row(entry) for _, entry in batch]
        try:
            async with self._sealed(connection) as sealed:
                # Transactions first: an entry never exists without its transaction.
                copy = connection.copy_records_to_table
                await copy("transactions", records=transactions, columns=TRANSACTION_COLUMNS)
                await copy("journal_entries", records=entries, columns=ENTRY_COLUMNS)
                if reversals:
                    await copy("reversals", records=reversals, columns=_REVERSAL_COLUMNS)
                sealed.transactions(transactions).entries(entries)
        except asyncpg.UniqueViolationError:
            return False
        return True

    async def _record_skipping_held(
        self, connection: Any, batch: Sequence[tuple[TransactionRecord, JournalEntry]]
    ) -> dict[Scope, JournalEntry]:
        """The batch as one statement, without the keys the journal holds; returns the
        entries holding them."""
        held: dict[Scope, JournalEntry] = {}
        todo = list(batch)
        for _ in range(_RECORD_ATTEMPTS):
            if not todo:
                return held
            entries = [entry_row(entry) for _, entry in todo]
            transactions = [transaction_row(record) for record, _ in todo]
            block = self._audit.seal(AuditRows().transactions(transactions).entries(entries))
            reversals = _json(reversal_rows(record for record, _ in todo))
            try:
                await connection.execute(_RECORD, _json(entries), _json(transactions), reversals, *block.row())
            except asyncpg.PostgresError as exc:
                self._audit.settle(block, False)  # the statement failed whole: nothing went in
                found = await _entries(connection, [_scope(entry) for _, entry in todo])
                if not isinstance(exc, asyncpg.UniqueViolationError) or not found:
                    raise  # not a key held (a clashing transaction id, say): not ours to skip
                held.update(found)
                todo = [item for item in todo if _scope(item[1]) not in found]
                continue
            except BaseException:
                self._audit.settle(block, None)
                raise
            self._audit.settle(block, True)
            return held
        raise asyncpg.PostgresError("journal: keys kept arriving while a batch was recorded; try again")

    async def apply(
        self, record: TransactionRecord, entry: JournalEntry, *, lease_until: float | None = None
    ) -> ApplyOutcome:
        async with self._pool.acquire() as connection:
            try:
                async with self._sealed(connection) as sealed:
                    await _apply(connection, sealed, record, entry, lease_until)
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
                async with self._sealed(connection) as sealed:
                    done = await connection.execute(
                        "UPDATE reversals SET done = TRUE WHERE transaction_id = $1 AND NOT done",
                        record.transaction_id,
                    )
                    if done != "UPDATE 1":
                        raise _Rollback(ApplyOutcome(ApplyStatus.DUPLICATE))
                    await _apply(connection, sealed, record, entry)
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
        written = AuditRows().entries([entry_row(entry)])
        return await self._settle(record, written, _RESOLVE_OPERATION, entry.merchant_id, entry.idempotency_key, *final)

    async def withdraw_operation(self, entry: JournalEntry, attempts: int, record: TransactionRecord) -> ApplyStatus:
        scope = (entry.merchant_id, entry.idempotency_key)
        written = AuditRows().withdrawn(*scope, entry.created_at)
        return await self._settle(record, written, _WITHDRAW_OPERATION, *scope, attempts)

    async def _settle(
        self, record: TransactionRecord | None, written: AuditRows, statement: str, *parameters: Any
    ) -> ApplyStatus:
        """statement on a pending entry and record's conditional write, in one commit, or
        neither; written is what statement did to the entry, for the audit chain."""
        async with self._pool.acquire() as connection:
            try:
                async with self._sealed(connection) as sealed:
                    if await connection.execute(statement, *parameters) not in ("UPDATE 1", "DELETE 1"):
                        raise _Rollback(ApplyOutcome(ApplyStatus.DUPLICATE))
                    if record is not None and not await _store_next_version(connection, sealed, record):
                        raise _Rollback(ApplyOutcome(ApplyStatus.STALE))
                    sealed.extend(written)
            except _Rollback as rollback:
                return rollback.outcome.status
        return ApplyStatus.APPLIED

    async def get_transaction(self, transaction_id: str) -> TransactionRecord | None:
        row = await self._pool.fetchrow(_SELECT_TRANSACTION, transaction_id)
        return None if row is None else record_from_row(row)

    async def find_entries(self, scopes: Sequence[Scope]) -> dict[Scope, JournalEntry]:
        async with self._pool.acquire() as connection:
            return await _entries(connection, scopes)

    async def list_alerts(self, query: AlertQuery) -> list[RiskAlert]:
        after_at, after_id = query.after if query.after is not None else (-math.inf, "")
        rows = await self._pool.fetch(
            _LIST_ALERTS, query.kind, query.merchant_id, query.since, query.until, after_at, after_id, query.limit
        )
        return [RiskAlert(*row) for row in rows]

    async def record_holder_tier(self, holder: str, tier: str, at: float) -> HolderTier:
        seq = await self._pool.fetchval(_UPSERT_TIER, holder, tier, at)
        return HolderTier(holder, tier, seq)

    async def holder_tiers(self) -> list[HolderTier]:
        return [HolderTier(*row) for row in await self._pool.fetch("SELECT holder, tier, seq FROM holder_tiers")]

    async def record_label(self, transaction_id: str, fraud: bool, at: float) -> None:
        await self._pool.execute(_UPSERT_LABEL, transaction_id, fraud, at)

    async def labelled_decisions(self) -> list[tuple[str, bool]]:
        return [(row[0], row[1]) for row in await self._pool.fetch(_LABELLED)]

    async def record_model_promotion(
        self, policy_version: str, live_model: str, caller: str, reason: str, at: float
    ) -> None:
        await self._pool.execute(_INSERT_PROMOTION, policy_version, live_model, caller, reason, at)

    async def promoted_model(self, policy_version: str) -> str | None:
        live: str | None = await self._pool.fetchval(_PROMOTED, policy_version)
        return live

    async def record_events(self, events: Sequence[SecurityEvent]) -> None:
        rows = [event_row(event) for event in events]
        async with self._pool.acquire() as connection, self._sealed(connection) as sealed:
            await connection.executemany(_INSERT_EVENT, rows)
            sealed.events(rows)

    def audit_heads(self) -> list[tuple[str, int, bytes]]:
        return self._audit.heads()

    async def record_checkpoint(self, checkpoint: Checkpoint) -> None:
        await self._pool.execute(_INSERT_CHECKPOINT, *checkpoint.row())

    async def read_audit(self) -> AuditSnapshot:
        async with self._pool.acquire() as connection, connection.transaction(isolation="repeatable_read"):
            # One snapshot for every table: rows committed meanwhile are in all or none.

            async def rows(table: str, columns: Sequence[str], order: str) -> list[tuple[Any, ...]]:
                query = f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}"
                return [tuple(row) for row in await connection.fetch(query)]

            return AuditSnapshot(
                blocks=[Block(*row) for row in await rows("audit_blocks", BLOCK_COLUMNS, "chain_id, seq")],
                transactions=await rows("transactions", TRANSACTION_COLUMNS, "transaction_id"),
                entries=await rows("journal_entries", ENTRY_COLUMNS, "entry_id"),
                events=await rows("security_events", EVENT_COLUMNS, "created_at, event_id"),
                checkpoints=[
                    Checkpoint(*row) for row in await rows("audit_checkpoints", CHECKPOINT_COLUMNS, "checkpoint_id")
                ],
            )


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


async def _store_next_version(connection: Any, sealed: AuditRows, record: TransactionRecord) -> bool:
    """Stores record if the stored transaction is still the version before it."""
    row = transaction_row(record)
    if await connection.execute(_UPDATE_TRANSACTION, *row, record.version - 1) != "UPDATE 1":
        return False
    sealed.transactions([row])
    return True


async def _apply(
    connection: Any,
    sealed: AuditRows,
    record: TransactionRecord,
    entry: JournalEntry,
    lease_until: float | None = None,
) -> None:
    """Runs inside a transaction; raises _Rollback for anything but APPLIED."""
    existing = await connection.fetchrow(_SELECT_ENTRY, entry.merchant_id, entry.idempotency_key)
    if existing is not None:
        raise _Rollback(ApplyOutcome(ApplyStatus.DUPLICATE, entry_from_row(existing)))
    if not await _store_next_version(connection, sealed, record):
        raise _Rollback(ApplyOutcome(ApplyStatus.STALE))
    row = entry_row(entry)
    if lease_until is None:
        inserted = await connection.execute(_INSERT_ENTRY, *row)
    else:
        inserted = await connection.execute(_INSERT_PENDING_ENTRY, *row, lease_until)
    sealed.entries([row])
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
    stored: dict[Scope, JournalEntry],
    first: dict[Scope, int],
) -> JournalEntry | None:
    """None when batch[index] went in; else the entry that holds its key."""
    scope = _scope(batch[index][1])
    if scope in stored:
        return stored[scope]
    return None if first[scope] == index else batch[first[scope]][1]


def _scope(entry: JournalEntry) -> Scope:
    return (entry.merchant_id, entry.idempotency_key)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _server_settings(schema: str | None) -> dict[str, str] | None:
    return None if schema is None else {"search_path": _quote(schema)}
