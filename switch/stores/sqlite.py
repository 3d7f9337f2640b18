"""The embedded Journal: a SQLite file in WAL mode, one transaction per batch.

Statements run on the event loop's own thread, on purpose. A batch costs SQLite
about a millisecond (an indexed lookup and one executemany commit), but on a
worker thread every sqlite3 step releases the GIL and then waits up to the
interpreter's 5 ms switch interval to get it back from the busy loop: measured,
a 0.2 ms lookup took 40 ms there. One writer per process follows from the single
thread; BEGIN IMMEDIATE serializes processes sharing the file. synchronous=FULL
makes each commit durable before the switch answers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from switch.models import JournalEntry, TransactionRecord
from switch.stores.base import ApplyOutcome, ApplyStatus, Intent, PendingReversal
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

T = TypeVar("T")

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE transactions (
        transaction_id TEXT PRIMARY KEY,
        merchant_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        status TEXT NOT NULL,
        currency TEXT NOT NULL,
        authorized_minor INTEGER NOT NULL,
        captured_minor INTEGER NOT NULL,
        refunded_minor INTEGER NOT NULL,
        route TEXT NOT NULL,
        masked_instrument TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        token TEXT NOT NULL,
        response_code TEXT NOT NULL,
        authorization_code TEXT NOT NULL,
        fee_minor INTEGER NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        version INTEGER NOT NULL
    );
    CREATE TABLE journal_entries (
        entry_id INTEGER PRIMARY KEY AUTOINCREMENT,
        transaction_id TEXT NOT NULL REFERENCES transactions (transaction_id),
        merchant_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        kind TEXT NOT NULL,
        currency TEXT NOT NULL,
        amount_minor INTEGER NOT NULL,
        response_code TEXT NOT NULL,
        status TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        response BLOB NOT NULL,
        fee_shares TEXT NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (merchant_id, idempotency_key)
    );
    CREATE INDEX journal_entries_transaction ON journal_entries (transaction_id);
    """,
    """
    CREATE TABLE reversals (
        transaction_id TEXT PRIMARY KEY REFERENCES transactions (transaction_id),
        route TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at REAL NOT NULL,
        done INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX reversals_due ON reversals (done, next_attempt_at);
    """,
    """
    CREATE TABLE authorization_intents (
        merchant_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        transaction_id TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        route TEXT NOT NULL,
        currency TEXT NOT NULL,
        amount_minor INTEGER NOT NULL,
        masked_instrument TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        token TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (merchant_id, idempotency_key)
    );
    CREATE INDEX authorization_intents_age ON authorization_intents (created_at);
    """,
)

_CHUNK = 400  # (merchant, key) pairs per lookup, well under SQLite's bound variables

_INSERT_TRANSACTION = (
    f"INSERT INTO transactions ({', '.join(TRANSACTION_COLUMNS)}) VALUES ({', '.join('?' * len(TRANSACTION_COLUMNS))})"
)
_INSERT_REVERSAL = (
    "INSERT INTO reversals (transaction_id, route, attempts, next_attempt_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (transaction_id) DO NOTHING"
)
_INSERT_ENTRY = (
    f"INSERT INTO journal_entries ({', '.join(ENTRY_COLUMNS)}) VALUES ({', '.join('?' * len(ENTRY_COLUMNS))})"
)
_UPDATE_TRANSACTION = (
    f"UPDATE transactions SET {', '.join(f'{c} = ?' for c in TRANSACTION_COLUMNS[1:])} "
    "WHERE transaction_id = ? AND version = ?"
)
_SELECT_ENTRY_JOINED = f"SELECT {', '.join(f'e.{c}' for c in ENTRY_COLUMNS)}"
# An intent of the same transaction moves to the new route; one of another transaction stays.
_RECORD_INTENT = (
    f"INSERT INTO authorization_intents ({', '.join(INTENT_COLUMNS)}) VALUES ({', '.join('?' * len(INTENT_COLUMNS))}) "
    "ON CONFLICT (merchant_id, idempotency_key) DO UPDATE SET route = excluded.route, created_at = excluded.created_at "
    "WHERE authorization_intents.transaction_id = excluded.transaction_id"
)
_UNJOURNALED = (
    "NOT EXISTS (SELECT 1 FROM journal_entries AS e "
    "WHERE e.merchant_id = i.merchant_id AND e.idempotency_key = i.idempotency_key)"
)


class SqliteJournal:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    @classmethod
    async def open(cls, path: str | Path) -> SqliteJournal:
        return cls(_connect(str(path)))

    async def close(self) -> None:
        self._db.close()

    async def record_authorizations(
        self, batch: Sequence[tuple[TransactionRecord, JournalEntry]]
    ) -> list[JournalEntry | None]:
        return self._record_authorizations(batch)

    async def apply(self, record: TransactionRecord, entry: JournalEntry) -> ApplyOutcome:
        return self._apply(record, entry)

    async def get_transaction(self, transaction_id: str) -> TransactionRecord | None:
        return self._get_transaction(transaction_id)

    async def find_entries(self, scopes: Sequence[tuple[str, str]]) -> dict[tuple[str, str], JournalEntry]:
        return self._existing_entries(scopes)

    def _record_authorizations(
        self, batch: Sequence[tuple[TransactionRecord, JournalEntry]]
    ) -> list[JournalEntry | None]:
        with _transaction(self._db):
            existing = self._existing_entries([(e.merchant_id, e.idempotency_key) for _, e in batch])
            results: list[JournalEntry | None] = []
            fresh: list[tuple[TransactionRecord, JournalEntry]] = []
            for record, entry in batch:
                scope = (entry.merchant_id, entry.idempotency_key)
                earlier = existing.get(scope)
                results.append(earlier)
                if earlier is None:
                    existing[scope] = entry  # a repeat later in this batch is a duplicate too
                    fresh.append((record, entry))
            self._db.executemany(_INSERT_TRANSACTION, [transaction_row(r) for r, _ in fresh])
            self._db.executemany(_INSERT_ENTRY, [entry_row(e) for _, e in fresh])
            self._db.executemany(_INSERT_REVERSAL, reversal_rows(r for r, _ in fresh))
        return results

    def _apply(self, record: TransactionRecord, entry: JournalEntry) -> ApplyOutcome:
        # Nothing is written before either check fails, so returning inside the block
        # (which commits an empty transaction) is as good as a rollback.
        with _transaction(self._db):
            return self._apply_within(record, entry)

    def _apply_within(self, record: TransactionRecord, entry: JournalEntry) -> ApplyOutcome:
        """_apply's work, inside the caller's transaction."""
        earlier = self._existing_entries([(entry.merchant_id, entry.idempotency_key)])
        if earlier:
            return ApplyOutcome(ApplyStatus.DUPLICATE, next(iter(earlier.values())))
        row = transaction_row(record)
        updated = self._db.execute(_UPDATE_TRANSACTION, (*row[1:], record.transaction_id, record.version - 1))
        if updated.rowcount != 1:
            return ApplyOutcome(ApplyStatus.STALE)
        self._db.execute(_INSERT_ENTRY, entry_row(entry))
        return ApplyOutcome(ApplyStatus.APPLIED)

    async def record_intents(self, intents: Sequence[Intent]) -> set[str]:
        with _transaction(self._db):
            self._db.executemany(_RECORD_INTENT, [intent_row(intent) for intent in intents])
            held = {
                (intent.merchant_id, intent.idempotency_key, intent.transaction_id)
                for intent in self._intents_of([(i.merchant_id, i.idempotency_key) for i in intents])
            }
        return {i.transaction_id for i in intents if (i.merchant_id, i.idempotency_key, i.transaction_id) in held}

    async def abandoned_intents(self, before: float, limit: int) -> list[Intent]:
        rows = self._db.execute(
            f"SELECT {', '.join(f'i.{c}' for c in INTENT_COLUMNS)} FROM authorization_intents AS i "
            f"WHERE i.created_at < ? AND {_UNJOURNALED} ORDER BY i.created_at LIMIT ?",
            (before, limit),
        )
        return [intent_from_row(row) for row in rows]

    async def prune_intents(self, before: float) -> int:
        with _transaction(self._db):
            pruned = self._db.execute(
                f"DELETE FROM authorization_intents AS i WHERE i.created_at < ? AND NOT {_UNJOURNALED}", (before,)
            )
        return int(pruned.rowcount)

    def _intents_of(self, scopes: Sequence[tuple[str, str]]) -> list[Intent]:
        found: list[Intent] = []
        for start in range(0, len(scopes), _CHUNK):
            chunk = scopes[start : start + _CHUNK]
            placeholders = ", ".join("(?, ?)" for _ in chunk)
            rows = self._db.execute(
                f"SELECT {', '.join(f'i.{c}' for c in INTENT_COLUMNS)} FROM (VALUES {placeholders}) AS wanted "
                "JOIN authorization_intents AS i "
                "ON i.merchant_id = wanted.column1 AND i.idempotency_key = wanted.column2",
                [value for scope in chunk for value in scope],
            )
            found.extend(intent_from_row(row) for row in rows)
        return found

    async def due_reversals(self, now: float, limit: int) -> list[PendingReversal]:
        rows = self._db.execute(
            "SELECT transaction_id, route, attempts, next_attempt_at FROM reversals "
            "WHERE done = 0 AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
            (now, limit),
        )
        return [PendingReversal(row[0], row[1], int(row[2]), float(row[3])) for row in rows]

    async def reschedule_reversal(self, transaction_id: str, attempts: int, next_attempt_at: float) -> None:
        with _transaction(self._db):
            self._db.execute(
                "UPDATE reversals SET attempts = ?, next_attempt_at = ? WHERE transaction_id = ? AND done = 0",
                (attempts, next_attempt_at, transaction_id),
            )

    async def finish_reversal(self, record: TransactionRecord, entry: JournalEntry) -> bool:
        try:
            with _transaction(self._db):
                done = self._db.execute(
                    "UPDATE reversals SET done = 1 WHERE transaction_id = ? AND done = 0", (record.transaction_id,)
                )
                if done.rowcount != 1 or self._apply_within(record, entry).status is not ApplyStatus.APPLIED:
                    raise _Undo
        except _Undo:
            return False
        return True

    def _get_transaction(self, transaction_id: str) -> TransactionRecord | None:
        row = self._db.execute(
            f"SELECT {', '.join(TRANSACTION_COLUMNS)} FROM transactions WHERE transaction_id = ?",
            (transaction_id,),
        ).fetchone()
        return None if row is None else record_from_row(row)

    def _existing_entries(self, scopes: Sequence[tuple[str, str]]) -> dict[tuple[str, str], JournalEntry]:
        found: dict[tuple[str, str], JournalEntry] = {}
        for start in range(0, len(scopes), _CHUNK):
            chunk = scopes[start : start + _CHUNK]
            # A join on VALUES, not "(a, b) IN (VALUES ...)": SQLite plans the IN form
            # as a scan of the whole table, the join as one unique-index probe per key.
            placeholders = ", ".join("(?, ?)" for _ in chunk)
            rows = self._db.execute(
                f"{_SELECT_ENTRY_JOINED} FROM (VALUES {placeholders}) AS wanted JOIN journal_entries AS e "
                "ON e.merchant_id = wanted.column1 AND e.idempotency_key = wanted.column2",
                [value for scope in chunk for value in scope],
            )
            for row in rows:
                entry = entry_from_row(row)
                found[(entry.merchant_id, entry.idempotency_key)] = entry
        return found


class _Undo(Exception):
    """Leaves a _transaction block with a rollback."""


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the block raises."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def _connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA foreign_keys = ON")
    migrate(db)
    return db


def migrate(db: sqlite3.Connection) -> int:
    """Applies the migrations this file has not seen yet; returns how many ran."""
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL)")
    with _transaction(db):
        done = int(db.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0])
        for version, script in enumerate(MIGRATIONS[done:], start=done + 1):
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
            db.execute("INSERT INTO schema_migrations VALUES (?, strftime('%s', 'now'))", (version,))
    return len(MIGRATIONS) - done
