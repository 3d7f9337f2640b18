"""`switch audit verify`: recomputes the audit chains from the journal and names
what no longer matches.

Three things are checked, in this order:

1. Each chain: blocks numbered from 0 without a gap, each naming the hash of the
   one before it, each block's root recomputed from its leaves (RFC 6962) and its
   hash from its header. A changed, removed or inserted block breaks its chain there.
2. Each row against the blocks: the rows the chains say exist now (a transaction's
   latest version; an entry's final form, or its pending form until resolved, and
   none once withdrawn; every security event) must be in the journal exactly as
   hashed. A row edited behind the switch's back no longer hashes to its leaf; a
   row deleted leaves a leaf with no row; a row inserted has no leaf at all.
3. Each signed checkpoint: its signature verifies (against the trusted public keys,
   when given) and every head it signed is still in its chain, so a chain rewritten
   from some block on, hashes and all, or cut short, is caught too.

What no check can see: blocks appended after the last checkpoint and removed
together with their rows before anyone verified. Checkpoints are signed often for
that reason.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from switch.stores.audit import AuditSnapshot, Block, Checkpoint, checkpoint_message, leaves, merkle
from switch.stores.audit import chain as audit_chain
from switch.stores.rows import entry_from_row, entry_row, event_from_row, event_row, record_from_row, transaction_row

SignatureCheck = Callable[[bytes, str, bytes, bytes], bool]  # (public key PEM, algorithm, message, signature)


@dataclass(frozen=True, slots=True)
class Finding:
    block: str  # "chain#seq", or "" when no block covers it
    row: str  # "journal_entries merchant/key", "transactions t_...", "security_events ev_...", or ""
    problem: str

    def __str__(self) -> str:
        where = " ".join(part for part in (f"block {self.block}" if self.block else "", self.row) if part)
        return f"{where}: {self.problem}"


@dataclass(slots=True)
class Report:
    chains: int = 0
    blocks: int = 0
    rows: int = 0
    checkpoints: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.findings


@dataclass(slots=True)
class _Leaf:
    digest: bytes
    block: str


def verify(
    snapshot: AuditSnapshot,
    check_signature: SignatureCheck,
    trusted_keys: Sequence[bytes] = (),
) -> Report:
    """trusted_keys: public keys (PEM) a checkpoint must be signed with; empty: any
    key a checkpoint carries, which proves the checkpoint is whole, not who made it."""
    report = Report(blocks=len(snapshot.blocks), checkpoints=len(snapshot.checkpoints))
    by_chain: dict[str, list[Block]] = defaultdict(list)
    for block in snapshot.blocks:
        by_chain[block.chain_id].append(block)
    report.chains = len(by_chain)
    expected = _Expected()
    for chain_id in sorted(by_chain):
        report.findings += _check_chain(by_chain[chain_id], expected)
    report.findings += expected.compare(snapshot)
    report.rows = len(snapshot.transactions) + len(snapshot.entries) + len(snapshot.events)
    blocks = {(block.chain_id, block.seq): block for block in snapshot.blocks}
    for number, checkpoint in enumerate(snapshot.checkpoints, start=1):
        report.findings += _check_checkpoint(number, checkpoint, blocks, check_signature, trusted_keys)
    return report


def _name(block: Block) -> str:
    return f"{block.chain_id}#{block.seq}"


def _check_chain(blocks: list[Block], expected: _Expected) -> list[Finding]:
    findings: list[Finding] = []
    previous = audit_chain.GENESIS
    for position, block in enumerate(sorted(blocks, key=lambda b: b.seq)):
        name = _name(block)
        if block.seq != position:
            findings.append(Finding(name, "", f"expected block {position} here: a block is missing"))
        elif block.prev_hash != previous:
            findings.append(Finding(name, "", "does not follow the block before it (removed, inserted or changed)"))
        previous = block.block_hash
        try:
            keys = orjson.loads(block.keys)
        except orjson.JSONDecodeError:
            findings.append(Finding(name, "", "its row keys do not parse"))
            continue
        leaves = merkle.split_leaves(block.leaves)
        if len(leaves) != len(keys) or len(block.leaves) % merkle.HASH_SIZE:
            findings.append(Finding(name, "", "its leaves and row keys do not pair up"))
            continue
        if merkle.root(leaves) != block.root:
            findings.append(Finding(name, "", "its leaves no longer hash to its root"))
        recomputed = audit_chain.block_hash(
            block.chain_id, block.seq, block.prev_hash, block.root, created_at=block.created_at, keys=block.keys
        )
        if recomputed != block.block_hash:
            findings.append(Finding(name, "", "its header no longer hashes to its hash"))
        for key, leaf in zip(keys, leaves, strict=True):
            expected.add(key, _Leaf(leaf, name))
    return findings


class _Expected:
    """What the leaves say the journal holds now."""

    def __init__(self) -> None:
        self.transactions: dict[str, tuple[int, _Leaf]] = {}  # the latest version's leaf
        self.entries: dict[tuple[str, str, float], dict[str, _Leaf]] = defaultdict(dict)  # form -> leaf
        self.events: dict[str, _Leaf] = {}

    def add(self, key: list[Any], leaf: _Leaf) -> None:
        kind = key[0]
        if kind == "t":
            latest = self.transactions.get(key[1])
            if latest is None or key[2] > latest[0]:
                self.transactions[key[1]] = (key[2], leaf)
        elif kind == "e":
            self.entries[(key[1], key[2], key[3])]["pending" if key[4] else "final"] = leaf
        elif kind == "w":
            self.entries[(key[1], key[2], key[3])]["withdrawn"] = leaf
        elif kind == "v":
            self.events[key[1]] = leaf

    def compare(self, snapshot: AuditSnapshot) -> list[Finding]:
        findings: list[Finding] = []
        live_entries = {
            incarnation: forms.get("final") or forms["pending"]
            for incarnation, forms in self.entries.items()
            if "final" in forms or ("pending" in forms and "withdrawn" not in forms)
        }
        withdrawn = {incarnation for incarnation, forms in self.entries.items() if "withdrawn" in forms}
        findings += _compare_rows(
            "transactions",
            snapshot.transactions,
            _transaction_leaf,
            {txn: leaf for txn, (_, leaf) in self.transactions.items()},
        )
        findings += _compare_rows("journal_entries", snapshot.entries, _entry_leaf, live_entries, withdrawn)
        findings += _compare_rows("security_events", snapshot.events, _event_leaf, self.events)
        return findings


def _transaction_leaf(row: tuple[Any, ...]) -> tuple[Any, str, bytes]:
    normal = transaction_row(record_from_row(row))
    return normal[0], normal[0], merkle.leaf_hash(leaves.transaction_payload(normal))


def _entry_leaf(row: tuple[Any, ...]) -> tuple[Any, str, bytes]:
    normal = entry_row(entry_from_row(row))
    incarnation = (normal[1], normal[2], normal[11])
    return incarnation, f"{normal[1]}/{normal[2]}", merkle.leaf_hash(leaves.entry_payload(normal))


def _event_leaf(row: tuple[Any, ...]) -> tuple[Any, str, bytes]:
    normal = event_row(event_from_row(row))
    return normal[0], normal[0], merkle.leaf_hash(leaves.event_payload(normal))


def _compare_rows(
    table: str,
    rows: Iterable[tuple[Any, ...]],
    leaf_of: Callable[[tuple[Any, ...]], tuple[Any, str, bytes]],
    expected: dict[Any, _Leaf],
    gone: set[Any] = frozenset(),  # type: ignore[assignment]
) -> list[Finding]:
    findings: list[Finding] = []
    seen: set[Any] = set()
    for row in rows:
        try:
            key, label, digest = leaf_of(row)
        except (ValueError, TypeError, KeyError, IndexError, orjson.JSONDecodeError):
            findings.append(Finding("", f"{table} {_label(row)}", "the row no longer decodes (edited)"))
            continue
        seen.add(key)
        leaf = expected.get(key)
        if leaf is None:
            problem = "was withdrawn, yet is back" if key in gone else "is in no block (inserted behind the switch)"
            findings.append(Finding("", f"{table} {label}", problem))
        elif leaf.digest != digest:
            findings.append(Finding(leaf.block, f"{table} {label}", "differs from the row its block sealed (edited)"))
    for key, leaf in expected.items():
        if key not in seen:
            label = key if isinstance(key, str) else f"{key[0]}/{key[1]}"
            findings.append(Finding(leaf.block, f"{table} {label}", "sealed in its block, but gone (deleted)"))
    return findings


def _label(row: tuple[Any, ...]) -> str:
    """A row that does not decode, named by what it most likely is keyed by."""
    first = row[0] if row else ""
    return str(first)[:80]


def _check_checkpoint(
    number: int,
    checkpoint: Checkpoint,
    blocks: dict[tuple[str, int], Block],
    check_signature: SignatureCheck,
    trusted_keys: Sequence[bytes],
) -> list[Finding]:
    name = f"checkpoint {number}"
    if trusted_keys and checkpoint.public_key not in trusted_keys:
        return [Finding("", name, "signed with a key that is not trusted")]
    message = checkpoint_message(checkpoint.created_at, checkpoint.heads)
    if not check_signature(checkpoint.public_key, checkpoint.algorithm, message, checkpoint.signature):
        return [Finding("", name, "its signature does not verify (the checkpoint was changed)")]
    findings: list[Finding] = []
    for chain_id, seq, digest in orjson.loads(checkpoint.heads):
        block = blocks.get((chain_id, seq))
        if block is None:
            findings.append(Finding(f"{chain_id}#{seq}", name, "signed, but gone (the chain was cut)"))
        elif block.block_hash.hex() != digest:
            findings.append(Finding(f"{chain_id}#{seq}", name, "signed, but changed since (the chain was rewritten)"))
    return findings
