"""The audit chain: RFC 6962 hashing against the published vectors, and `verify`
against journals (SQLite and PostgreSQL) that the switch wrote and a test then
tampered with behind its back, one kind of tampering at a time."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.domain.audit import EventKind, SecurityEvent
from switch.domain.models import TransactionStatus
from switch.security.audit.checkpoints import Checkpoints
from switch.security.audit.verify import Report, verify
from switch.stores.audit import AuditChains, AuditRows, leaves, merkle
from switch.stores.audit.merkle import reference_seal, reference_seal_rows
from switch.stores.base import ApplyStatus, Journal
from switch.stores.rows import entry_row, transaction_row
from tests.conftest import POSTGRES_DSN
from tests.stores.test_journal import Backend, authorization, backend, captured, entry, journal, record

__all__ = ["backend", "journal"]  # fixtures, shared with the journal contract

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "rfc6962.json").read_text())
LEAVES = [merkle.leaf_hash(bytes.fromhex(data)) for data in VECTORS["leaves"]]


# --- RFC 6962 -----------------------------------------------------------------


def test_roots_match_the_published_tree_heads() -> None:
    for size, expected in enumerate(VECTORS["roots"]):
        assert merkle.root(LEAVES[:size]).hex() == expected
        payloads = [bytes.fromhex(data) for data in VECTORS["leaves"][:size]]
        assert merkle.seal(payloads)[1].hex() == expected  # compiled, when built
        assert reference_seal(payloads)[1].hex() == expected


def test_inclusion_proofs_match_the_published_paths() -> None:
    for case in VECTORS["inclusion"]:
        index, size = case["index"], case["size"]
        path = merkle.inclusion_proof(index, LEAVES[:size])
        assert [node.hex() for node in path] == case["path"]
        assert merkle.root_from_proof(index, size, LEAVES[index], path) == merkle.root(LEAVES[:size])


def test_every_proof_verifies_and_no_wrong_one_does() -> None:
    leaves = [merkle.leaf_hash(bytes([n, n * 7 % 256])) for n in range(40)]
    for size in range(1, 41):
        tree_root = merkle.root(leaves[:size])
        for index in range(size):
            path = merkle.inclusion_proof(index, leaves[:size])
            assert merkle.root_from_proof(index, size, leaves[index], path) == tree_root
            other = leaves[(index + 1) % size]
            if other != leaves[index]:
                assert merkle.root_from_proof(index, size, other, path) != tree_root
            if path:
                assert merkle.root_from_proof(index, size, leaves[index], path[:-1]) != tree_root


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=70))
def test_the_compiled_seal_is_the_reference(payloads: list[bytes]) -> None:
    assert merkle.seal(payloads) == reference_seal(payloads)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(1, 10**6), max_size=20),
    st.lists(
        st.tuples(
            st.integers(1, 10**6),
            st.booleans(),
            st.binary(max_size=40),
            st.sampled_from([("", ""), ('{"s":"a1"}', ""), ('{"s":"a1"}', "sanctions_review")]),
        ),
        max_size=20,
    ),
    st.lists(st.binary(max_size=60), max_size=5),
)
def test_the_compiled_seal_of_rows_is_the_reference(
    transactions: list[int], entries: list[tuple[int, bool, bytes, tuple[str, str]]], others: list[bytes]
) -> None:
    transaction_rows = [transaction_row(record(n, version=n % 7 + 1)) for n in transactions]
    entry_rows = [
        entry_row(replace(entry(record(n)), pending=pending, response=response, decision=risk[0], alert=risk[1]))
        for n, pending, response, risk in entries
    ]
    assert merkle.seal_rows(transaction_rows, entry_rows, others) == reference_seal_rows(
        transaction_rows, entry_rows, others
    )


def test_an_entry_without_a_decision_seals_as_before_the_column_existed() -> None:
    """Rows sealed before journal_entries had a decision and an alert verify after the migration adds them empty."""
    row = entry_row(replace(entry(record(1)), decision="", alert=""))
    before = row[:-2]  # the thirteen columns the journal had
    assert leaves.entry_payload(row) == leaves.ENTRY + orjson.dumps(before[:9] + before[10:]) + before[9]
    decided = entry_row(replace(entry(record(1)), decision='{"sanctions":"ab12"}'))
    alerted = entry_row(replace(entry(record(1)), decision='{"sanctions":"ab12"}', alert="sanctions_review"))
    payloads = {leaves.entry_payload(r) for r in (row, decided, alerted)}
    assert len(payloads) == 3  # a decision and an alert are sealed with their entry
    rows = [row, decided, alerted]
    assert merkle.seal_rows([], rows, []) == reference_seal_rows([], rows, [])


# --- chains ---------------------------------------------------------------------


def rows(n: int) -> AuditRows:
    return AuditRows().events([(f"ev-{n}", "denied", "caller", "PERMISSION_DENIED", "Capture", "no role", float(n))])


def test_a_chain_moves_on_only_when_its_commit_is_known() -> None:
    chains = AuditChains("test")
    first = chains.seal(rows(1))
    assert (first.seq, first.prev_hash) == (0, bytes(32))
    chains.settle(first, True)
    rolled_back = chains.seal(rows(2))
    assert (rolled_back.chain_id, rolled_back.seq, rolled_back.prev_hash) == (first.chain_id, 1, first.block_hash)
    chains.settle(rolled_back, False)
    again = chains.seal(rows(3))
    assert (again.chain_id, again.seq, again.prev_hash) == (first.chain_id, 1, first.block_hash)
    chains.settle(again, None)  # unknown: this chain's head may or may not be `again`
    fresh = chains.seal(rows(4))
    assert fresh.chain_id != first.chain_id and fresh.seq == 0


def test_commits_in_flight_hold_chains_of_their_own() -> None:
    chains = AuditChains("test")
    a, b = chains.seal(rows(1)), chains.seal(rows(2))
    assert a.chain_id != b.chain_id
    chains.settle(a, True)
    chains.settle(b, True)
    assert sorted(chain for chain, _, _ in chains.heads()) == sorted([a.chain_id, b.chain_id])


# --- verify against real journals -----------------------------------------------


class Signer:
    key_id = "test"
    algorithm = "ed25519"

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def public_key_pem(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def check_signature(public_key: bytes, algorithm: str, message: bytes, signature: bytes) -> bool:
    key = serialization.load_pem_public_key(public_key)
    assert algorithm == "ed25519" and isinstance(key, Ed25519PublicKey)
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


async def busy_day(journal: Journal) -> None:
    """Everything that writes journal rows: batches, a capture decided pending and
    resolved, one withdrawn, a reversal finished, security events."""
    batch = [authorization(n) for n in range(1, 9)]
    assert await journal.record_authorizations(batch) == [None] * 8
    assert await journal.record_authorizations([authorization(9), authorization(1)]) == [None, batch[0][1]]
    rec1, capture1 = captured(batch[1][0], "cap-2")
    assert (await journal.apply(rec1, capture1)).status is ApplyStatus.APPLIED
    rec2, capture2 = captured(batch[2][0], "cap-3")
    pending = replace(capture2, pending=True, response_code="")
    assert (await journal.apply(rec2, pending, lease_until=1e10)).status is ApplyStatus.APPLIED
    final = replace(capture2, pending=False)
    assert await journal.resolve_operation(final, None) is ApplyStatus.APPLIED
    rec3, capture3 = captured(batch[3][0], "cap-4")
    pending3 = replace(capture3, pending=True, response_code="")
    assert (await journal.apply(rec3, pending3, lease_until=1e10)).status is ApplyStatus.APPLIED
    undone = replace(batch[3][0], version=3, updated_at=rec3.updated_at + 1)
    assert await journal.withdraw_operation(pending3, 1, undone) is ApplyStatus.APPLIED
    unknown = record(20, status=TransactionStatus.UNKNOWN, response_code="")
    await journal.record_authorizations([(unknown, entry(unknown))])
    reversed_ = replace(unknown, status=TransactionStatus.REVERSED, version=2)
    assert await journal.finish_reversal(reversed_, entry(reversed_, "rev-20"))
    await journal.record_events(
        [SecurityEvent(EventKind.DENIED, "spiffe://x/y", "PERMISSION_DENIED", "Capture", "no role", 1.5)]
    )


async def checked(journal: Journal, signer: Signer) -> Report:
    return verify(await journal.read_audit(), check_signature, [signer.public_key_pem()])


async def run_sql(backend: Backend, statement: str, *parameters: Any) -> None:
    if backend.kind == "sqlite":
        with sqlite3.connect(backend.sqlite_path) as db:
            db.execute(statement.replace("$1", "?").replace("$2", "?"), parameters)
        return
    connection = await asyncpg.connect(POSTGRES_DSN, server_settings={"search_path": backend.pg_schema})
    try:
        await connection.execute(statement, *parameters)
    finally:
        await connection.close()


async def test_an_untouched_journal_verifies(backend: Backend, journal: Journal) -> None:
    signer = Signer()
    await busy_day(journal)
    assert await Checkpoints(journal, signer).sign() is not None
    report = await checked(journal, signer)
    assert report.intact, [str(f) for f in report.findings]
    assert report.blocks >= 8 and report.checkpoints == 1 and report.rows > 20


Tamper = Callable[[Backend], Awaitable[None]]

TAMPERING: dict[str, tuple[str, str, str]] = {
    # name: (statement, the row verify must name, what it must say)
    "an entry's amount edited": (
        "UPDATE journal_entries SET amount_minor = amount_minor - 1 WHERE idempotency_key = 'key-5'",
        "journal_entries m-1/key-5",
        "edited",
    ),
    "a transaction captured behind the switch": (
        "UPDATE transactions SET status = 'captured' WHERE transaction_id = 'tx-6'",
        "transactions tx-6",
        "edited",
    ),
    "an entry deleted": (
        "DELETE FROM journal_entries WHERE idempotency_key = 'cap-2'",
        "journal_entries m-1/cap-2",
        "deleted",
    ),
    "a resolved capture put back to pending": (
        "UPDATE journal_entries SET pending = TRUE WHERE idempotency_key = 'cap-3'",
        "journal_entries m-1/cap-3",
        "edited",
    ),
    "a security event deleted": ("DELETE FROM security_events", "security_events", "deleted"),
    "a transaction inserted": (
        "INSERT INTO transactions SELECT 'tx-forged', merchant_id, 'forged', status, currency, authorized_minor,"
        " captured_minor, refunded_minor, route, masked_instrument, fingerprint, token, response_code,"
        " authorization_code, fee_minor, created_at, updated_at, version"
        " FROM transactions WHERE transaction_id = 'tx-1'",
        "transactions tx-forged",
        "inserted",
    ),
}


@pytest.mark.parametrize("tampering", sorted(TAMPERING))
async def test_tampering_with_a_row_names_its_block_and_row(backend: Backend, journal: Journal, tampering: str) -> None:
    signer = Signer()
    await busy_day(journal)
    await Checkpoints(journal, signer).sign()
    statement, row, problem = TAMPERING[tampering]
    if backend.kind == "sqlite":
        statement = statement.replace("TRUE", "1")
    await run_sql(backend, statement)
    report = await checked(journal, signer)
    assert not report.intact
    first = report.findings[0]
    assert first.row.startswith(row) and problem in first.problem, [str(f) for f in report.findings]
    if problem != "inserted":
        assert first.block, "an edited or deleted row is named with the block that sealed it"


async def test_a_block_edited_to_match_an_edited_row_breaks_at_that_block(backend: Backend, journal: Journal) -> None:
    signer = Signer()
    await busy_day(journal)
    await Checkpoints(journal, signer).sign()
    snapshot = await journal.read_audit()
    victim = snapshot.blocks[0]
    await run_sql(
        backend,
        "UPDATE audit_blocks SET root = $1 WHERE chain_id = $2 AND seq = 0",
        bytes(32),
        victim.chain_id,
    )
    report = await checked(journal, signer)
    assert report.findings[0].block == f"{victim.chain_id}#0"


async def test_a_chain_cut_short_after_a_checkpoint_is_caught(backend: Backend, journal: Journal) -> None:
    signer = Signer()
    await busy_day(journal)
    await Checkpoints(journal, signer).sign()
    snapshot = await journal.read_audit()
    last = max(snapshot.blocks, key=lambda block: block.seq)
    # The last block and the rows it sealed: nothing left for the rows to disagree with.
    await run_sql(backend, "DELETE FROM audit_blocks WHERE chain_id = $1 AND seq = $2", last.chain_id, last.seq)
    await run_sql(backend, "DELETE FROM security_events")
    report = await checked(journal, signer)
    assert [str(f) for f in report.findings] == [
        f"block {last.chain_id}#{last.seq} checkpoint 1: signed, but gone (the chain was cut)"
    ]


async def test_a_checkpoint_signed_by_someone_else_is_not_trusted(journal: Journal) -> None:
    ours, theirs = Signer(), Signer()
    await busy_day(journal)
    await Checkpoints(journal, theirs).sign()
    report = await checked(journal, ours)
    assert [f.problem for f in report.findings] == ["signed with a key that is not trusted"]


async def test_racing_commits_keep_every_chain_whole(backend: Backend, journal: Journal) -> None:
    signer = Signer()
    batches = [[authorization(100 * b + n) for n in range(5)] for b in range(12)]
    await asyncio.gather(*(journal.record_authorizations(batch) for batch in batches))
    events = [
        SecurityEvent(EventKind.DENIED, "c", "PERMISSION_DENIED", "Tokenize", "no role", float(n)) for n in range(8)
    ]
    await asyncio.gather(*(journal.record_events([event]) for event in events))
    await Checkpoints(journal, signer).sign()
    report = await checked(journal, signer)
    assert report.intact, [str(f) for f in report.findings]
    assert report.rows == 12 * 5 * 2 + 8
