"""The embedded Journal: a SQLite file in WAL mode, one transaction per batch.

Statements run on the event loop's own thread, on purpose. A batch is little work
for SQLite (an indexed lookup and one executemany commit), but on a worker thread
every sqlite3 step releases the GIL and then waits up to the interpreter's switch
interval (sys.getswitchinterval()) to get it back from the busy loop, so a short
lookup would take many times its own cost. One writer per process follows from
the single thread; BEGIN IMMEDIATE serializes processes sharing the file.
synchronous=FULL makes each commit durable before the switch answers.

The journal holds tokens and amounts: its folder is made 0700 and the database
0600 before SQLite opens it (private_file), whatever the process umask.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from switch.domain.alerts import AlertQuery, RiskAlert
from switch.domain.audit import SecurityEvent
from switch.domain.errors import StartupError
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

T = TypeVar("T")

log = logging.getLogger(__name__)

FOLDER_MODE = 0o700
FILE_MODE = 0o600
# The files SQLite keeps beside the database: write-ahead log, its index, rollback journal.
_COMPANIONS = ("-wal", "-shm", "-journal")

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
    # Captures, voids and refunds are journaled pending before they are sent (see
    # switch.flow.pending_operations); attempts and next_attempt_at are the lease of whoever
    # sends one, and mean nothing once it is resolved.
    """
    ALTER TABLE journal_entries ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE journal_entries ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE journal_entries ADD COLUMN next_attempt_at REAL NOT NULL DEFAULT 0;
    CREATE INDEX journal_entries_pending ON journal_entries (next_attempt_at) WHERE pending;
    """,
    # The audit trail (switch.stores.audit): a block per commit, security events, and
    # signed checkpoints of the chains' heads.
    """
    CREATE TABLE audit_blocks (
        chain_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        prev_hash BLOB NOT NULL,
        root BLOB NOT NULL,
        block_hash BLOB NOT NULL,
        created_at REAL NOT NULL,
        leaves BLOB NOT NULL,
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
        created_at REAL NOT NULL
    );
    CREATE TABLE audit_checkpoints (
        checkpoint_id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at REAL NOT NULL,
        heads TEXT NOT NULL,
        key_id TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        public_key BLOB NOT NULL,
        signature BLOB NOT NULL
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
    CREATE TABLE holder_tiers (
        holder TEXT PRIMARY KEY,
        tier TEXT NOT NULL,
        seq INTEGER NOT NULL,
        set_at REAL NOT NULL
    );
    """,
    # Authorizations reported as fraud, or as not fraud (ReportFraud): the training set's labels.
    """
    CREATE TABLE fraud_labels (
        transaction_id TEXT PRIMARY KEY,
        fraud INTEGER NOT NULL,
        labelled_at REAL NOT NULL
    );
    """,
    # Who made which model of a policy bundle its live one (PromoteModel): the latest row
    # for a bundle's version is applied by every worker's reload and at every start.
    """
    CREATE TABLE model_promotions (
        promotion_id INTEGER PRIMARY KEY AUTOINCREMENT,
        policy_version TEXT NOT NULL,
        live_model TEXT NOT NULL,
        caller TEXT NOT NULL,
        reason TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX model_promotions_policy ON model_promotions (policy_version, promotion_id);
    """,
)

# The partial index on alerted entries serves the order and the time range; kind and
# merchant are filtered on what it finds. ? = '' leaves a filter out.
_LIST_ALERTS = (
    "SELECT transaction_id, merchant_id, alert, decision, response_code, created_at FROM journal_entries "
    "WHERE alert <> '' AND (? = '' OR alert = ?) AND (? = '' OR merchant_id = ?) "
    "AND created_at >= ? AND created_at < ? AND (created_at > ? OR (created_at = ? AND transaction_id > ?)) "
    "ORDER BY created_at, transaction_id LIMIT ?"
)
_UPSERT_LABEL = (
    "INSERT INTO fraud_labels (transaction_id, fraud, labelled_at) VALUES (?, ?, ?) "
    "ON CONFLICT (transaction_id) DO UPDATE SET fraud = excluded.fraud, labelled_at = excluded.labelled_at"
)
# Each label beside its authorization's decision (which holds the features it was scored on).
_LABELLED = (
    "SELECT e.decision, l.fraud FROM fraud_labels l JOIN journal_entries e "
    "ON e.transaction_id = l.transaction_id AND e.kind = 'authorize' ORDER BY l.labelled_at"
)
_INSERT_PROMOTION = (
    "INSERT INTO model_promotions (policy_version, live_model, caller, reason, at) VALUES (?, ?, ?, ?, ?)"
)
_PROMOTED = "SELECT live_model FROM model_promotions WHERE policy_version = ? ORDER BY promotion_id DESC LIMIT 1"
_UPSERT_TIER = (
    "INSERT INTO holder_tiers (holder, tier, seq, set_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (holder) DO UPDATE SET tier = excluded.tier, seq = excluded.seq, set_at = excluded.set_at"
)
_FAR_FUTURE = 1e300  # "until" left open: SQLite compares REALs with it as with infinity

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
_ENTRY_COLUMNS_E = ", ".join(f"e.{c}" for c in ENTRY_COLUMNS)
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
_INSERT_PENDING_ENTRY = (
    f"INSERT INTO journal_entries ({', '.join(ENTRY_COLUMNS)}, attempts, next_attempt_at) "
    f"VALUES ({', '.join('?' * len(ENTRY_COLUMNS))}, 1, ?)"
)
_SELECT_PENDING = f"SELECT {', '.join(ENTRY_COLUMNS)}, attempts, next_attempt_at FROM journal_entries WHERE pending"
_PENDING_SCOPE = "merchant_id = ? AND idempotency_key = ? AND pending"
_TAKE_OPERATION = (
    f"UPDATE journal_entries SET attempts = attempts + 1, next_attempt_at = ? WHERE {_PENDING_SCOPE} AND attempts = ?"
)
_RESOLVE_OPERATION = (
    f"UPDATE journal_entries SET pending = 0, response_code = ?, status = ?, response = ? WHERE {_PENDING_SCOPE}"
)
_WITHDRAW_OPERATION = f"DELETE FROM journal_entries WHERE {_PENDING_SCOPE} AND attempts = ?"


def _insert(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


_INSERT_BLOCK = _insert("audit_blocks", BLOCK_COLUMNS)
_INSERT_EVENT = _insert("security_events", EVENT_COLUMNS)
_INSERT_CHECKPOINT = _insert("audit_checkpoints", CHECKPOINT_COLUMNS)


class SqliteJournal:
    def __init__(self, connection: sqlite3.Connection, audit: AuditChains | None = None) -> None:
        self._db = connection
        self._audit = audit or AuditChains()

    @classmethod
    async def open(cls, path: str | Path) -> SqliteJournal:
        private_file(Path(path))
        return cls(_connect(str(path)))

    @contextlib.contextmanager
    def _sealed(self) -> Iterator[AuditRows]:
        """A transaction whose rows, added to the AuditRows it yields, are sealed into
        one block of the audit chain before it commits."""
        rows = AuditRows()
        block: Block | None = None
        try:
            with _transaction(self._db):
                yield rows
                if rows:
                    block = self._audit.seal(rows)
                    self._db.execute(_INSERT_BLOCK, block.row())
        except BaseException:
            if block is not None:
                self._audit.settle(block, None)  # COMMIT failed: whether it happened is not known
            raise
        if block is not None:
            self._audit.settle(block, True)

    async def close(self) -> None:
        self._db.close()

    async def record_authorizations(
        self, batch: Sequence[tuple[TransactionRecord, JournalEntry]]
    ) -> list[JournalEntry | None]:
        return self._record_authorizations(batch)

    async def apply(
        self, record: TransactionRecord, entry: JournalEntry, *, lease_until: float | None = None
    ) -> ApplyOutcome:
        return self._apply(record, entry, lease_until)

    async def get_transaction(self, transaction_id: str) -> TransactionRecord | None:
        return self._get_transaction(transaction_id)

    async def find_entries(self, scopes: Sequence[tuple[str, str]]) -> dict[tuple[str, str], JournalEntry]:
        return self._existing_entries(scopes)

    async def list_alerts(self, query: AlertQuery) -> list[RiskAlert]:
        after_at, after_id = query.after if query.after is not None else (-math.inf, "")
        until = query.until if math.isfinite(query.until) else _FAR_FUTURE
        parameters = (query.kind, query.kind, query.merchant_id, query.merchant_id, query.since, until)
        rows = self._db.execute(_LIST_ALERTS, (*parameters, after_at, after_at, after_id, query.limit))
        return [RiskAlert(*row) for row in rows]

    async def record_holder_tier(self, holder: str, tier: str, at: float) -> HolderTier:
        with _transaction(self._db):
            (seq,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM holder_tiers").fetchone()
            self._db.execute(_UPSERT_TIER, (holder, tier, seq, at))
        return HolderTier(holder, tier, seq)

    async def holder_tiers(self) -> list[HolderTier]:
        return [HolderTier(*row) for row in self._db.execute("SELECT holder, tier, seq FROM holder_tiers")]

    async def record_label(self, transaction_id: str, fraud: bool, at: float) -> None:
        with _transaction(self._db):
            self._db.execute(_UPSERT_LABEL, (transaction_id, fraud, at))

    async def labelled_decisions(self) -> list[tuple[str, bool]]:
        return [(decision, bool(fraud)) for decision, fraud in self._db.execute(_LABELLED)]

    async def record_model_promotion(
        self, policy_version: str, live_model: str, caller: str, reason: str, at: float
    ) -> None:
        with _transaction(self._db):
            self._db.execute(_INSERT_PROMOTION, (policy_version, live_model, caller, reason, at))

    async def promoted_model(self, policy_version: str) -> str | None:
        row = self._db.execute(_PROMOTED, (policy_version,)).fetchone()
        return None if row is None else str(row[0])

    def _record_authorizations(
        self, batch: Sequence[tuple[TransactionRecord, JournalEntry]]
    ) -> list[JournalEntry | None]:
        with self._sealed() as sealed:
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
            transactions = [transaction_row(r) for r, _ in fresh]
            entries = [entry_row(e) for _, e in fresh]
            self._db.executemany(_INSERT_TRANSACTION, transactions)
            self._db.executemany(_INSERT_ENTRY, entries)
            self._db.executemany(_INSERT_REVERSAL, reversal_rows(r for r, _ in fresh))
            sealed.transactions(transactions).entries(entries)
        return results

    def _apply(self, record: TransactionRecord, entry: JournalEntry, lease_until: float | None) -> ApplyOutcome:
        # Nothing is written before either check fails, so returning inside the block
        # (which commits an empty transaction, and seals no block) is as good as a rollback.
        with self._sealed() as sealed:
            return self._apply_within(sealed, record, entry, lease_until)

    def _apply_within(
        self, sealed: AuditRows, record: TransactionRecord, entry: JournalEntry, lease_until: float | None = None
    ) -> ApplyOutcome:
        """_apply's work, inside the caller's transaction."""
        earlier = self._existing_entries([(entry.merchant_id, entry.idempotency_key)])
        if earlier:
            return ApplyOutcome(ApplyStatus.DUPLICATE, next(iter(earlier.values())))
        if not self._store_next_version(record, sealed):
            return ApplyOutcome(ApplyStatus.STALE)
        row = entry_row(entry)
        if lease_until is None:
            self._db.execute(_INSERT_ENTRY, row)
        else:
            self._db.execute(_INSERT_PENDING_ENTRY, (*row, lease_until))
        sealed.entries([row])
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
        columns = ", ".join(f"i.{c}" for c in INTENT_COLUMNS)
        return [intent_from_row(row) for row in self._rows_by_scope(columns, "authorization_intents AS i", scopes)]

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
            with self._sealed() as sealed:
                done = self._db.execute(
                    "UPDATE reversals SET done = 1 WHERE transaction_id = ? AND done = 0", (record.transaction_id,)
                )
                if done.rowcount != 1 or self._apply_within(sealed, record, entry).status is not ApplyStatus.APPLIED:
                    raise _Undo
        except _Undo:
            return False
        return True

    async def due_operations(self, now: float, limit: int) -> list[PendingOperation]:
        rows = self._db.execute(
            f"{_SELECT_PENDING} AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?", (now, limit)
        )
        return [PendingOperation(entry_from_row(row), int(row[-2]), float(row[-1])) for row in rows]

    async def pending_operations(self, transaction_id: str) -> list[JournalEntry]:
        return [
            entry_from_row(row)
            for row in self._db.execute(f"{_SELECT_PENDING} AND transaction_id = ?", (transaction_id,))
        ]

    async def take_operation(self, entry: JournalEntry, attempts: int, lease_until: float) -> bool:
        with _transaction(self._db):
            taken = self._db.execute(_TAKE_OPERATION, (lease_until, entry.merchant_id, entry.idempotency_key, attempts))
        return taken.rowcount == 1

    async def resolve_operation(self, entry: JournalEntry, record: TransactionRecord | None) -> ApplyStatus:
        final = (entry.response_code, entry.status.value, entry.response, entry.merchant_id, entry.idempotency_key)
        return self._settle(_RESOLVE_OPERATION, final, record, AuditRows().entries([entry_row(entry)]))

    async def withdraw_operation(self, entry: JournalEntry, attempts: int, record: TransactionRecord) -> ApplyStatus:
        scope = (entry.merchant_id, entry.idempotency_key)
        gone = AuditRows().withdrawn(*scope, entry.created_at)
        return self._settle(_WITHDRAW_OPERATION, (*scope, attempts), record, gone)

    def _settle(
        self, statement: str, parameters: tuple[object, ...], record: TransactionRecord | None, written: AuditRows
    ) -> ApplyStatus:
        """statement on a pending entry and record's conditional write, in one commit, or
        neither; written is what statement did to the entry, for the audit chain."""
        status = ApplyStatus.APPLIED
        try:
            with self._sealed() as sealed:
                if self._db.execute(statement, parameters).rowcount != 1:
                    status = ApplyStatus.DUPLICATE
                elif record is not None and not self._store_next_version(record, sealed):
                    status = ApplyStatus.STALE
                if status is not ApplyStatus.APPLIED:
                    raise _Undo
                sealed.extend(written)
        except _Undo:
            pass
        return status

    def _store_next_version(self, record: TransactionRecord, sealed: AuditRows) -> bool:
        """Stores record if the stored transaction is still the version before it."""
        row = transaction_row(record)
        stored = (
            self._db.execute(_UPDATE_TRANSACTION, (*row[1:], record.transaction_id, record.version - 1)).rowcount == 1
        )
        if stored:
            sealed.transactions([row])
        return stored

    async def record_events(self, events: Sequence[SecurityEvent]) -> None:
        rows = [event_row(event) for event in events]
        with self._sealed() as sealed:
            self._db.executemany(_INSERT_EVENT, rows)
            sealed.events(rows)

    def audit_heads(self) -> list[tuple[str, int, bytes]]:
        return self._audit.heads()

    async def record_checkpoint(self, checkpoint: Checkpoint) -> None:
        with _transaction(self._db):
            self._db.execute(_INSERT_CHECKPOINT, checkpoint.row())

    async def read_audit(self) -> AuditSnapshot:
        def rows(table: str, columns: Sequence[str], order: str) -> list[tuple[Any, ...]]:
            query = f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}"
            return [tuple(row) for row in self._db.execute(query)]

        return AuditSnapshot(
            blocks=[Block(*row) for row in rows("audit_blocks", BLOCK_COLUMNS, "chain_id, seq")],
            transactions=rows("transactions", TRANSACTION_COLUMNS, "transaction_id"),
            entries=rows("journal_entries", ENTRY_COLUMNS, "entry_id"),
            events=rows("security_events", EVENT_COLUMNS, "created_at, event_id"),
            checkpoints=[Checkpoint(*row) for row in rows("audit_checkpoints", CHECKPOINT_COLUMNS, "checkpoint_id")],
        )

    def _get_transaction(self, transaction_id: str) -> TransactionRecord | None:
        row = self._db.execute(
            f"SELECT {', '.join(TRANSACTION_COLUMNS)} FROM transactions WHERE transaction_id = ?",
            (transaction_id,),
        ).fetchone()
        return None if row is None else record_from_row(row)

    def _existing_entries(self, scopes: Sequence[tuple[str, str]]) -> dict[tuple[str, str], JournalEntry]:
        entries = (entry_from_row(row) for row in self._rows_by_scope(_ENTRY_COLUMNS_E, "journal_entries AS e", scopes))
        return {(entry.merchant_id, entry.idempotency_key): entry for entry in entries}

    def _rows_by_scope(self, columns: str, table: str, scopes: Sequence[tuple[str, str]]) -> list[tuple[Any, ...]]:
        """columns of table's rows (aliased, by its primary key or unique (merchant_id,
        idempotency_key)) holding these pairs, in chunks of bound variables."""
        alias = table.rpartition(" ")[2]
        found: list[tuple[Any, ...]] = []
        for start in range(0, len(scopes), _CHUNK):
            chunk = scopes[start : start + _CHUNK]
            # A join on VALUES, not "(a, b) IN (VALUES ...)": SQLite plans the IN form
            # as a scan of the whole table, the join as one unique-index probe per key.
            placeholders = ", ".join("(?, ?)" for _ in chunk)
            found += self._db.execute(
                f"SELECT {columns} FROM (VALUES {placeholders}) AS wanted JOIN {table} "
                f"ON {alias}.merchant_id = wanted.column1 AND {alias}.idempotency_key = wanted.column2",
                [value for scope in chunk for value in scope],
            )
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


def private_file(path: Path) -> None:
    """Makes the journal's folder (0700, when this creates it) and the database file
    (0600, empty: SQLite takes that for a new database) if they are missing, whatever
    the umask; tightens to 0600 an existing database, or a file SQLite keeps beside it,
    that others may read, and logs it once.

    SQLite would create the database 0644 less the umask, but creates its -wal, -shm
    and -journal files with the database file's own mode, so a database made 0600
    first keeps them all 0600. The umask is left alone: it is the whole process's,
    and another thread may be creating files meanwhile.
    """
    if str(path) in ("", ":memory:"):
        return  # SQLite's names for a private, temporary database: no file
    try:
        path.parent.mkdir(mode=FOLDER_MODE, parents=True)
    except FileExistsError:
        pass  # an existing folder may be shared (the working directory): left as it is
    else:
        path.parent.chmod(FOLDER_MODE)  # mkdir's mode went through the umask
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        pass
    else:
        try:
            os.fchmod(fd, FILE_MODE)  # os.open's mode went through the umask too
        finally:
            os.close(fd)
    loose: list[str] = []
    for file in (path, *(path.with_name(path.name + suffix) for suffix in _COMPANIONS)):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
            if mode & 0o077:
                file.chmod(FILE_MODE)
                loose.append(f"{file.name} (was {mode:04o})")
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StartupError(
                f"stores.sqlite_path: {file} may be read by others and cannot be made 0600: {exc.strerror}"
            ) from None
    if loose:
        log.info("tightened to %04o, since the journal holds tokens and amounts: %s", FILE_MODE, ", ".join(loose))


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
