"""RFC 6962 Merkle tree hashing, the reference the compiled twin is tested against.

A leaf is hashed as SHA-256(0x00 || data) and an interior node as SHA-256(0x01 ||
left || right), so a leaf can never pass for a node. The tree over n leaves splits
at the largest power of two below n (RFC 6962 section 2.1), and an inclusion proof
is the audit path of that section: the sibling hashes from the leaf up.

seal_rows is what a journal commit calls: the leaf hashes of its rows (concatenated,
32 bytes each, as the block stores them), their root and the rows' keys, compiled
when the extensions are built (switch.stores.audit._merkle).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from switch import native
from switch.stores.audit import leaves as rows_of

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 over leaf hashes."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root(leaves[:k]), root(leaves[k:]))


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962: the audit path of leaf index (0-based)."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} of a tree of {len(leaves)}")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_proof(index, leaves[:k]), root(leaves[k:])]
    return [*inclusion_proof(index - k, leaves[k:]), root(leaves[:k])]


def root_from_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """The root that leaf (a leaf hash) at index of a tree of size leaves implies with
    this audit path, or None when the path has the wrong length for that position
    (RFC 9162 section 2.1.3.2, which a client can run without trusting the switch)."""
    if not 0 <= index < size:
        return None
    fn, sn, node = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            node = node_hash(node, sibling)
        fn >>= 1
        sn >>= 1
    return node if sn == 0 else None


def reference_seal(payloads: Sequence[bytes]) -> tuple[bytes, bytes]:
    """(the payloads' leaf hashes concatenated, their root)."""
    leaves = [leaf_hash(payload) for payload in payloads]
    return b"".join(leaves), root(leaves)


def reference_seal_rows(
    transactions: list[tuple[Any, ...]], entries: list[tuple[Any, ...]], payloads: list[bytes]
) -> tuple[bytes, bytes, list[list[Any]]]:
    """(leaf hashes, root, keys) of transaction rows, then entry rows, then other
    payloads (switch.stores.audit.leaves); the keys of the rows only."""
    built = [rows_of.transaction_payload(row) for row in transactions]
    built += [rows_of.entry_payload(row) for row in entries]
    keys = [rows_of.transaction_key(row) for row in transactions] + [rows_of.entry_key(row) for row in entries]
    return (*reference_seal(built + payloads), keys)


def split_leaves(blob: bytes) -> list[bytes]:
    """The leaf hashes a block stores, one per row."""
    return [blob[start : start + HASH_SIZE] for start in range(0, len(blob), HASH_SIZE)]


seal: Callable[[Sequence[bytes]], tuple[bytes, bytes]] = reference_seal
seal_rows = reference_seal_rows
_compiled = native.load("switch.stores.audit._merkle")
if _compiled is not None:
    seal = _compiled.seal
    seal_rows = _compiled.seal_rows
