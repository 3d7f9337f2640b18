"""The journal's audit chain: each commit seals the rows it writes into one block.

A block holds one leaf hash per row the commit wrote (a transaction's new version,
a journal entry in its pending or final form, the withdrawal of a pending entry,
a security event), their RFC 6962 root, and the hash of the block before it on the
same chain, so that a row edited, deleted or inserted behind the switch's back no
longer matches its block (switch.security.audit.verify finds which). The block is
written in the same database transaction as the rows: both are durable, or
neither.

Chains: a commit takes a chain no other commit in flight holds and gives it back
advanced once the commit is known to have happened. Concurrent commits therefore
never race for one head, and a commit whose outcome is unknown (the connection
dropped during COMMIT) retires its chain: its last block may or may not exist, and
a new chain starts instead of guessing. A chain is named after the host and
process that made it, plus a random part, so that workers and machines never share
one. Signed checkpoints of the heads (switch.security.audit.checkpoints) keep a
whole chain from being rewritten or cut short unnoticed.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from switch.stores.audit import leaves, merkle

GENESIS = bytes(merkle.HASH_SIZE)  # the "previous block" of a chain's first block
_BLOCK_DOMAIN = b"switch-audit-block/1\n"


@dataclass(frozen=True, slots=True)
class Block:
    chain_id: str
    seq: int
    prev_hash: bytes
    root: bytes
    block_hash: bytes
    created_at: float
    leaves: bytes  # 32 bytes per row, in the order of keys
    keys: str  # a JSON array: which row each leaf stands for (see AuditRows)

    def row(self) -> tuple[Any, ...]:
        return (
            self.chain_id,
            self.seq,
            self.prev_hash,
            self.root,
            self.block_hash,
            self.created_at,
            self.leaves,
            self.keys,
        )


BLOCK_COLUMNS = ("chain_id", "seq", "prev_hash", "root", "block_hash", "created_at", "leaves", "keys")


def block_hash(chain_id: str, seq: int, prev_hash: bytes, root: bytes, *, created_at: float, keys: str) -> bytes:
    """Covers the block's place in its chain, its root and which row each leaf is."""
    header = orjson.dumps([chain_id, seq, prev_hash.hex(), root.hex(), created_at])
    return hashlib.sha256(_BLOCK_DOMAIN + header + b"\n" + keys.encode()).digest()


class AuditRows:
    """What one commit wrote: rows of transactions and entries as they went in, and other
    leaves (withdrawals, events) as payloads with their keys.

    Keys (what verify finds a leaf's row by): ["t", transaction_id, version]; ["e",
    merchant_id, idempotency_key, created_at, pending]; ["w", merchant_id,
    idempotency_key, created_at] for a withdrawn pending entry; ["v", event_id]. An
    entry's created_at names its incarnation: a key withdrawn and used again is a new
    entry.
    """

    __slots__ = ("entries_in", "keys", "payloads", "transactions_in")

    def __init__(self) -> None:
        self.transactions_in: list[tuple[Any, ...]] = []
        self.entries_in: list[tuple[Any, ...]] = []
        self.payloads: list[bytes] = []
        self.keys: list[list[Any]] = []

    def __bool__(self) -> bool:
        return bool(self.transactions_in or self.entries_in or self.payloads)

    def extend(self, other: AuditRows) -> AuditRows:
        self.transactions_in += other.transactions_in
        self.entries_in += other.entries_in
        self.payloads += other.payloads
        self.keys += other.keys
        return self

    def transactions(self, rows: list[tuple[Any, ...]]) -> AuditRows:
        """rows: in switch.stores.rows.TRANSACTION_COLUMNS order."""
        self.transactions_in += rows
        return self

    def entries(self, rows: list[tuple[Any, ...]]) -> AuditRows:
        """rows: in switch.stores.rows.ENTRY_COLUMNS order."""
        self.entries_in += rows
        return self

    def withdrawn(self, merchant_id: str, idempotency_key: str, created_at: float) -> AuditRows:
        self.payloads.append(leaves.withdrawn_payload(merchant_id, idempotency_key, created_at))
        self.keys.append(["w", merchant_id, idempotency_key, created_at])
        return self

    def events(self, rows: list[tuple[Any, ...]]) -> AuditRows:
        """rows: in EVENT_COLUMNS order."""
        for row in rows:
            self.payloads.append(leaves.event_payload(row))
            self.keys.append(["v", row[0]])
        return self


EVENT_COLUMNS = ("event_id", "kind", "caller", "outcome", "subject", "detail", "created_at")


@dataclass(slots=True)
class _Chain:
    chain_id: str
    seq: int = 0
    head: bytes = GENESIS


class AuditChains:
    """The chains of one journal (one process): one per commit in flight."""

    def __init__(self, node: str = "") -> None:
        self._node = node or f"{socket.gethostname()}.{os.getpid()}"
        self._free: list[_Chain] = []
        self._held: dict[str, _Chain] = {}
        self._retired = 0

    def seal(self, rows: AuditRows) -> Block:
        """The next block of a chain this commit now holds; settle it after the commit."""
        chain = self._free.pop() if self._free else _Chain(f"{self._node}.{secrets.token_hex(6)}")
        self._held[chain.chain_id] = chain
        hashes, root, row_keys = merkle.seal_rows(rows.transactions_in, rows.entries_in, rows.payloads)
        keys = orjson.dumps(row_keys + rows.keys).decode()
        created_at = time.time()
        digest = block_hash(chain.chain_id, chain.seq, chain.head, root, created_at=created_at, keys=keys)
        return Block(chain.chain_id, chain.seq, chain.head, root, digest, created_at, hashes, keys)

    def settle(self, block: Block, committed: bool | None) -> None:
        """committed True: the block is durable, the chain moves on; False: the commit
        rolled back, the chain is as it was; None: unknown, the chain is retired."""
        chain = self._held.pop(block.chain_id)
        if committed:
            chain.seq, chain.head = block.seq + 1, block.block_hash
        if committed is not None:
            self._free.append(chain)
        else:
            self._retired += 1

    def heads(self) -> list[tuple[str, int, bytes]]:
        """(chain, seq of its last block, that block's hash) for each chain at rest
        that has a block: what a checkpoint signs."""
        return [(c.chain_id, c.seq - 1, c.head) for c in self._free if c.seq > 0]


CHECKPOINT_COLUMNS = ("created_at", "heads", "key_id", "algorithm", "public_key", "signature")
_CHECKPOINT_DOMAIN = b"switch-audit-checkpoint/1\n"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Chain heads signed at one moment: after it, no block up to a signed head can
    change, and no chain it names can lose those blocks, without the signature
    failing to match."""

    created_at: float
    heads: str  # a JSON array of [chain_id, seq, block hash as hex]
    key_id: str
    algorithm: str
    public_key: bytes  # PEM
    signature: bytes

    def row(self) -> tuple[Any, ...]:
        return (self.created_at, self.heads, self.key_id, self.algorithm, self.public_key, self.signature)


def checkpoint_message(created_at: float, heads: str) -> bytes:
    """The bytes a checkpoint's signature covers."""
    return _CHECKPOINT_DOMAIN + orjson.dumps(created_at) + b"\n" + heads.encode()


def heads_text(heads: Iterable[tuple[str, int, bytes]]) -> str:
    return orjson.dumps([[chain, seq, digest.hex()] for chain, seq, digest in sorted(heads)]).decode()


@dataclass(frozen=True, slots=True)
class AuditSnapshot:
    """Everything verify reads, as the journal holds it now (rows undecoded: a
    tampered row may not even decode)."""

    blocks: list[Block]
    transactions: list[tuple[Any, ...]]  # TRANSACTION_COLUMNS order
    entries: list[tuple[Any, ...]]  # ENTRY_COLUMNS order
    events: list[tuple[Any, ...]]  # EVENT_COLUMNS order
    checkpoints: list[Checkpoint]
