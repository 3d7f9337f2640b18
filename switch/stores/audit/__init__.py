"""The journal's audit chain (blocks of RFC 6962 Merkle roots, one per commit)."""

from switch.stores.audit.chain import (
    BLOCK_COLUMNS,
    CHECKPOINT_COLUMNS,
    EVENT_COLUMNS,
    AuditChains,
    AuditRows,
    AuditSnapshot,
    Block,
    Checkpoint,
    checkpoint_message,
    heads_text,
)

__all__ = [
    "BLOCK_COLUMNS",
    "CHECKPOINT_COLUMNS",
    "EVENT_COLUMNS",
    "AuditChains",
    "AuditRows",
    "AuditSnapshot",
    "Block",
    "Checkpoint",
    "checkpoint_message",
    "heads_text",
]
