"""The Journal contract, run against every implementation (SQLite and PostgreSQL).

Each test is written once and takes a `backend` that opens journals over one
store (a temporary SQLite file, or a fresh PostgreSQL schema), so a test can
close a journal and open the same data again.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import orjson
import pytest

from switch.domain.models import (
    INT64_MAX,
    JournalEntry,
    Money,
    OperationKind,
    TransactionRecord,
    TransactionStatus,
    mask_pan,
)
from switch.stores import postgres
from switch.stores.base import ApplyOutcome, ApplyStatus, Intent, Journal
from switch.stores.postgres import PostgresJournal
from switch.stores.sqlite import SqliteJournal
from tests.conftest import POSTGRES_DSN

PAN = "4111111111111111"
FINGERPRINT = hashlib.sha256(b"key" + PAN.encode()).hexdigest()
T0 = 1_700_000_000.123456
TABLES = ("transactions", "journal_entries", "schema_migrations")


class Backend:
    """Opens journals over one store, and dumps every row it holds."""

    def __init__(self, kind: str, sqlite_path: Path, pg_schema: str) -> None:
        self.kind = kind
        self.sqlite_path = sqlite_path
        self.pg_schema = pg_schema
        self.open_journals: list[Journal] = []

    async def open(self) -> Journal:
        journal: Journal
        if self.kind == "sqlite":
            journal = await SqliteJournal.open(self.sqlite_path)
        else:
            # "postgres" takes these small batches as one statement, "postgres-copy" by COPY.
            copy_from_rows = 1 if self.kind == "postgres-copy" else postgres.COPY_FROM_ROWS
            journal = await PostgresJournal.open(POSTGRES_DSN, schema=self.pg_schema, copy_from_rows=copy_from_rows)
        self.open_journals.append(journal)
        return journal

    async def close(self, journal: Journal) -> None:
        self.open_journals.remove(journal)
        await journal.close()

    async def orphans(self) -> int:
        """Journal entries without their transaction (none, ever)."""
        query = (
            "SELECT COUNT(*) FROM journal_entries AS e LEFT JOIN transactions AS t"
            " ON t.transaction_id = e.transaction_id WHERE t.transaction_id IS NULL"
        )
        if self.kind == "sqlite":
            with sqlite3.connect(self.sqlite_path) as db:
                return int(db.execute(query).fetchone()[0])
        connection = await asyncpg.connect(POSTGRES_DSN, server_settings={"search_path": self.pg_schema})
        try:
            return int(await connection.fetchval(query))
        finally:
            await connection.close()

    async def dump(self) -> str:
        if self.kind == "sqlite":
            with sqlite3.connect(self.sqlite_path) as db:
                return repr([db.execute(f"SELECT * FROM {table}").fetchall() for table in TABLES])
        connection = await asyncpg.connect(POSTGRES_DSN, server_settings={"search_path": self.pg_schema})
        try:
            return repr([[tuple(row) for row in await connection.fetch(f"SELECT * FROM {t}")] for t in TABLES])
        finally:
            await connection.close()


@pytest.fixture(params=["sqlite", "postgres", "postgres-copy"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path, pg_schema: str) -> AsyncIterator[Backend]:
    made = Backend(str(request.param), tmp_path / "journal.sqlite3", pg_schema)
    yield made
    for journal in list(made.open_journals):
        await made.close(journal)


@pytest.fixture
async def journal(backend: Backend) -> Journal:
    return await backend.open()


def record(n: int, merchant: str = "m-1", **changes: object) -> TransactionRecord:
    """A transaction with every field set to something other than its default."""
    made = TransactionRecord(
        transaction_id=f"tx-{n}",
        merchant_id=merchant,
        idempotency_key=f"key-{n}",
        status=TransactionStatus.AUTHORIZED,
        authorized=Money(INT64_MAX - n, "EUR"),
        captured_minor=0,
        refunded_minor=0,
        route="sim-visa",
        masked_instrument=mask_pan(PAN),
        fingerprint=FINGERPRINT,
        token=f"tok_{n}",
        response_code="00",
        authorization_code=f"A{n:05d}",
        fee_minor=37,
        created_at=T0 + n,
        updated_at=T0 + n + 0.5,
        version=1,
    )
    return replace(made, **changes)  # type: ignore[arg-type]


def entry(
    rec: TransactionRecord, key: str | None = None, kind: OperationKind = OperationKind.AUTHORIZE
) -> JournalEntry:
    return JournalEntry(
        transaction_id=rec.transaction_id,
        merchant_id=rec.merchant_id,
        idempotency_key=key or rec.idempotency_key,
        kind=kind,
        amount=rec.authorized,
        response_code=rec.response_code,
        status=rec.status,
        request_hash=f"hash-{key or rec.idempotency_key}",
        response=orjson.dumps({"masked": rec.masked_instrument, "code": rec.response_code}) + b"\x00\xff",
        created_at=rec.updated_at,
        fee_shares=(("acquirer", 20), ("scheme", 17)),
        decision='{"sanctions":"5f1e","verdict":"pass"}',
    )


def authorization(n: int, merchant: str = "m-1") -> tuple[TransactionRecord, JournalEntry]:
    rec = record(n, merchant)
    return rec, entry(rec)


def captured(rec: TransactionRecord, key: str) -> tuple[TransactionRecord, JournalEntry]:
    """The next version of rec after a full capture, and the capture's entry."""
    after = replace(
        rec,
        status=TransactionStatus.CAPTURED,
        captured_minor=rec.authorized.minor_units,
        updated_at=rec.updated_at + 10,
        version=rec.version + 1,
    )
    return after, entry(after, key, OperationKind.CAPTURE)


async def test_an_empty_batch(journal: Journal) -> None:
    assert await journal.record_authorizations([]) == []


async def test_every_field_round_trips(journal: Journal) -> None:
    batch = [authorization(n) for n in range(3)]
    assert await journal.record_authorizations(batch) == [None, None, None]
    for rec, ent in batch:
        assert await journal.get_transaction(rec.transaction_id) == rec
        assert (await journal.find_entries([(ent.merchant_id, ent.idempotency_key)])).get(
            (ent.merchant_id, ent.idempotency_key)
        ) == ent


async def test_unknown_transactions_and_entries_are_none(journal: Journal) -> None:
    assert await journal.get_transaction("tx-missing") is None
    assert (await journal.find_entries([("m-1", "key-missing")])).get(("m-1", "key-missing")) is None


async def test_a_duplicate_inside_a_batch_gets_the_first(journal: Journal) -> None:
    first, other = authorization(1), authorization(2)
    again = (record(3, idempotency_key="key-1"), replace(entry(record(3)), idempotency_key="key-1"))
    assert await journal.record_authorizations([first, other, again]) == [None, None, first[1]]
    assert await journal.get_transaction("tx-3") is None


async def test_a_duplicate_of_an_earlier_batch_gets_the_stored_entry(journal: Journal) -> None:
    stored = authorization(1)
    await journal.record_authorizations([stored])
    again = (record(2), replace(entry(record(2)), idempotency_key="key-1"))
    results = await journal.record_authorizations([authorization(3), again, again])
    assert results == [None, stored[1], stored[1]]
    assert await journal.get_transaction("tx-2") is None
    assert await journal.get_transaction("tx-3") is not None


async def test_a_batch_that_meets_a_held_key_keeps_its_other_rows(backend: Backend, journal: Journal) -> None:
    """The held key's row is skipped; the rest of the batch, pending reversal included, goes in."""
    stored = authorization(1)
    await journal.record_authorizations([stored])
    again = (record(2), replace(entry(record(2)), idempotency_key="key-1"))
    results = await journal.record_authorizations([again, unknown(3), authorization(4)])
    assert results == [stored[1], None, None]
    assert [p.transaction_id for p in await journal.due_reversals(T0 + 100, 10)] == ["tx-3"]
    assert await journal.get_transaction("tx-4") is not None
    assert await backend.orphans() == 0


async def test_a_clashing_transaction_id_fails_the_whole_batch(backend: Backend, journal: Journal) -> None:
    await journal.record_authorizations([authorization(1)])
    before = await backend.dump()
    clash = (record(1, idempotency_key="key-other"), replace(entry(record(1)), idempotency_key="key-other"))
    with pytest.raises((sqlite3.IntegrityError, asyncpg.UniqueViolationError)):
        await journal.record_authorizations([authorization(2), clash])
    assert await backend.dump() == before
    assert await backend.orphans() == 0


async def test_keys_are_scoped_by_merchant(journal: Journal) -> None:
    one = authorization(1, merchant="m-1")
    two = (record(2, merchant="m-2"), replace(entry(record(2, merchant="m-2")), idempotency_key="key-1"))
    assert await journal.record_authorizations([one, two]) == [None, None]


async def test_racing_batches_record_a_key_once(journal: Journal) -> None:
    one = authorization(1)
    two = (record(2), replace(entry(record(2)), idempotency_key="key-1"))
    results = await asyncio.gather(journal.record_authorizations([one]), journal.record_authorizations([two]))
    winners = [batch[0] for batch in results]
    assert winners.count(None) == 1
    stored = (await journal.find_entries([("m-1", "key-1")])).get(("m-1", "key-1"))
    assert stored in (one[1], two[1])
    assert stored in winners


async def test_apply_stores_the_next_version(journal: Journal) -> None:
    rec, ent = authorization(1)
    await journal.record_authorizations([(rec, ent)])
    after, capture = captured(rec, "cap-1")
    assert await journal.apply(after, capture) == ApplyOutcome(ApplyStatus.APPLIED)
    assert await journal.get_transaction(rec.transaction_id) == after
    assert (await journal.find_entries([("m-1", "cap-1")])).get(("m-1", "cap-1")) == capture


async def test_apply_over_a_changed_transaction_is_stale(journal: Journal) -> None:
    rec, ent = authorization(1)
    await journal.record_authorizations([(rec, ent)])
    after, capture = captured(rec, "cap-1")
    await journal.apply(after, capture)
    late, late_capture = captured(rec, "cap-2")
    assert await journal.apply(late, late_capture) == ApplyOutcome(ApplyStatus.STALE)
    assert (await journal.find_entries([("m-1", "cap-2")])).get(("m-1", "cap-2")) is None
    assert await journal.get_transaction(rec.transaction_id) == after


async def test_apply_to_an_unknown_transaction_is_stale(journal: Journal) -> None:
    after, capture = captured(record(1), "cap-1")
    assert await journal.apply(after, capture) == ApplyOutcome(ApplyStatus.STALE)
    assert (await journal.find_entries([("m-1", "cap-1")])).get(("m-1", "cap-1")) is None


async def test_apply_with_a_used_key_is_a_duplicate(journal: Journal) -> None:
    rec, ent = authorization(1)
    await journal.record_authorizations([(rec, ent)])
    after, capture = captured(rec, "key-1")
    assert await journal.apply(after, capture) == ApplyOutcome(ApplyStatus.DUPLICATE, ent)
    assert await journal.get_transaction(rec.transaction_id) == rec


async def test_racing_applies_with_one_key_apply_once(journal: Journal) -> None:
    one, two = authorization(1), authorization(2)
    await journal.record_authorizations([one, two])
    first, second = captured(one[0], "cap-x"), captured(two[0], "cap-x")
    outcomes = await asyncio.gather(journal.apply(*first), journal.apply(*second))
    statuses = sorted(outcome.status.value for outcome in outcomes)
    assert statuses == ["applied", "duplicate"]
    stored = (await journal.find_entries([("m-1", "cap-x")])).get(("m-1", "cap-x"))
    assert stored is not None
    assert [o.existing for o in outcomes if o.status is ApplyStatus.DUPLICATE] == [stored]


async def test_data_survives_a_restart(backend: Backend, journal: Journal) -> None:
    rec, ent = authorization(1)
    await journal.record_authorizations([(rec, ent)])
    after, capture = captured(rec, "cap-1")
    await journal.apply(after, capture)
    await backend.close(journal)
    reopened = await backend.open()
    assert await reopened.get_transaction(rec.transaction_id) == after
    assert (await reopened.find_entries([("m-1", "key-1")])).get(("m-1", "key-1")) == ent
    assert (await reopened.find_entries([("m-1", "cap-1")])).get(("m-1", "cap-1")) == capture


async def test_no_card_number_is_stored(backend: Backend, journal: Journal) -> None:
    rec, ent = authorization(1)
    await journal.record_authorizations([(rec, ent)])
    await journal.apply(*captured(rec, "cap-1"))
    dump = await backend.dump()
    assert mask_pan(PAN) in dump  # the dump does show what was stored
    assert PAN not in dump


# PostgreSQL only: migrations and choosing the schema.


async def test_concurrent_migrators_apply_each_migration_once(pg_schema: str) -> None:
    ran = await asyncio.gather(*(postgres.migrate(POSTGRES_DSN, schema=pg_schema) for _ in range(4)))
    assert sorted(ran) == [0, 0, 0, len(postgres.MIGRATIONS)]
    assert await postgres.migrate(POSTGRES_DSN, schema=pg_schema) == 0


async def test_the_dsn_can_choose_the_schema(pg_schema: str) -> None:
    await postgres.migrate(POSTGRES_DSN, schema=pg_schema)
    journal = await PostgresJournal.open(f"{POSTGRES_DSN}?options=-csearch_path%3D{pg_schema}")
    try:
        await journal.record_authorizations([authorization(1)])
    finally:
        await journal.close()
    connection = await asyncpg.connect(POSTGRES_DSN)
    try:
        assert await connection.fetchval(f'SELECT COUNT(*) FROM "{pg_schema}".transactions') == 1
    finally:
        await connection.close()


async def test_the_read_of_held_keys_probes_the_index_on_a_journal_never_analyzed(pg_schema: str) -> None:
    """A new or just-truncated journal has no statistics; the read must not become a scan."""
    journal = await PostgresJournal.open(POSTGRES_DSN, schema=pg_schema)
    try:
        for start in range(0, 3000, 500):
            await journal.record_authorizations(
                [authorization(n, merchant=f"m-{n % 16}") for n in range(start, start + 500)]
            )
        held = [("m-1", "key-1"), ("m-2", "key-2"), ("m-0", "no-such-key")]
        assert set(await journal.find_entries(held)) == {("m-1", "key-1"), ("m-2", "key-2")}
    finally:
        await journal.close()
    connection = await asyncpg.connect(POSTGRES_DSN, server_settings={"search_path": pg_schema})
    try:
        assert await connection.fetchval("SELECT reltuples FROM pg_class WHERE oid = 'journal_entries'::regclass") < 0
        plan = "\n".join(
            row[0] for row in await connection.fetch("EXPLAIN " + postgres._SELECT_ENTRIES, orjson.dumps(held).decode())
        )
    finally:
        await connection.close()
    assert "Index Scan using journal_entries_scope" in plan
    assert "Seq Scan on journal_entries" not in plan


# --- the reversal queue ----------------------------------------------------------------------------------------


def unknown(n: int) -> tuple[TransactionRecord, JournalEntry]:
    rec = record(n, status=TransactionStatus.UNKNOWN, response_code="91")
    return rec, entry(rec)


def reversed_(rec: TransactionRecord) -> tuple[TransactionRecord, JournalEntry]:
    done = replace(rec, status=TransactionStatus.REVERSED, version=rec.version + 1)
    return done, entry(done, key=f"reversal:{rec.transaction_id}", kind=OperationKind.REVERSE)


async def test_an_unknown_outcome_is_journaled_with_a_pending_reversal(journal: Journal) -> None:
    await journal.record_authorizations([authorization(1), unknown(2)])
    (pending,) = await journal.due_reversals(T0 + 100, 10)
    assert (pending.transaction_id, pending.route, pending.attempts) == ("tx-2", "sim-visa", 0)
    assert await journal.due_reversals(T0, 10) == []  # not due before the outcome was recorded


async def test_a_rescheduled_reversal_waits_for_its_time(journal: Journal) -> None:
    await journal.record_authorizations([unknown(3)])
    await journal.reschedule_reversal("tx-3", 1, T0 + 500)
    assert await journal.due_reversals(T0 + 499, 10) == []
    (pending,) = await journal.due_reversals(T0 + 500, 10)
    assert pending.attempts == 1


async def test_a_reversal_finishes_exactly_once(journal: Journal) -> None:
    rec, ent = unknown(4)
    await journal.record_authorizations([(rec, ent)])
    done, done_entry = reversed_(rec)
    assert await journal.finish_reversal(done, done_entry) is True
    assert await journal.finish_reversal(done, done_entry) is False  # a second acknowledgement changes nothing
    stored = await journal.get_transaction("tx-4")
    assert stored is not None and (stored.status, stored.version) == (TransactionStatus.REVERSED, 2)
    assert await journal.due_reversals(T0 + 10_000, 10) == []


async def test_a_stale_finish_changes_nothing(journal: Journal) -> None:
    rec, ent = unknown(5)
    await journal.record_authorizations([(rec, ent)])
    done, done_entry = reversed_(replace(rec, version=7))  # read from a version that is not stored
    assert await journal.finish_reversal(done, done_entry) is False
    assert len(await journal.due_reversals(T0 + 10_000, 10)) == 1  # still pending


async def test_pending_reversals_survive_a_restart(backend: Backend) -> None:
    journal = await backend.open()
    await journal.record_authorizations([unknown(6)])
    await backend.close(journal)
    reopened = await backend.open()
    try:
        assert [p.transaction_id for p in await reopened.due_reversals(T0 + 100, 10)] == ["tx-6"]
    finally:
        await backend.close(reopened)


# --- intents: recorded before a send, settled if never journaled ---


def intent(n: int, merchant: str = "m-1", route: str = "sim-visa", at: float = T0, tx: str = "") -> Intent:
    rec = record(n, merchant)
    return Intent(
        transaction_id=tx or rec.transaction_id,
        merchant_id=merchant,
        idempotency_key=rec.idempotency_key,
        request_hash=f"hash-{rec.idempotency_key}",
        route=route,
        amount=rec.authorized,
        masked_instrument=rec.masked_instrument,
        fingerprint=rec.fingerprint,
        token=rec.token,
        created_at=at,
    )


async def test_an_intent_is_held_by_its_transaction_alone(journal: Journal) -> None:
    assert await journal.record_intents([intent(1), intent(2)]) == {"tx-1", "tx-2"}
    # Another attempt with key-1 (a new transaction id) must not be sent; the same one may move route.
    assert await journal.record_intents([intent(1, tx="tx-other"), intent(2, route="sim-mc", at=T0 + 1)]) == {"tx-2"}
    (moved,) = [i for i in await journal.abandoned_intents(T0 + 2, 10) if i.transaction_id == "tx-2"]
    assert (moved.route, moved.created_at) == ("sim-mc", T0 + 1)


async def test_intents_without_an_outcome_are_abandoned_once_old(journal: Journal) -> None:
    await journal.record_intents([intent(1, at=T0), intent(2, at=T0), intent(3, at=T0 + 50)])
    await journal.record_authorizations([authorization(2)])  # tx-2's outcome was journaled
    assert [i.transaction_id for i in await journal.abandoned_intents(T0 + 10, 10)] == ["tx-1"]
    assert [i for i in await journal.abandoned_intents(T0 + 10, 10)] == [intent(1, at=T0)]  # round trip
    assert await journal.prune_intents(T0 + 100) == 1  # tx-2's, journaled; tx-1 and tx-3 stay
    assert {i.transaction_id for i in await journal.abandoned_intents(T0 + 100, 10)} == {"tx-1", "tx-3"}
