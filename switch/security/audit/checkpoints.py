"""Signed checkpoints: the heads of this journal's chains, signed with the audit key
(held in the HSM under pkcs11 custody), so a chain cannot be rewritten or cut
short up to a signed head without verify noticing (switch.security.audit.verify)."""

from __future__ import annotations

import time
from typing import Protocol

from switch.stores.audit import Checkpoint, checkpoint_message, heads_text


class Signer(Protocol):
    key_id: str
    algorithm: str

    def sign(self, message: bytes) -> bytes: ...

    def public_key_pem(self) -> bytes: ...


class CheckpointJournal(Protocol):
    def audit_heads(self) -> list[tuple[str, int, bytes]]: ...

    async def record_checkpoint(self, checkpoint: Checkpoint) -> None: ...


class Checkpoints:
    """Signs the journal's heads whenever they moved since the last checkpoint."""

    def __init__(self, journal: CheckpointJournal, signer: Signer) -> None:
        self._journal = journal
        self._signer = signer
        self._public_key = signer.public_key_pem()
        self._last = ""

    async def sign(self) -> Checkpoint | None:
        heads = heads_text(self._journal.audit_heads())
        if heads in (self._last, "[]"):
            return None
        created_at = time.time()
        signature = self._signer.sign(checkpoint_message(created_at, heads))
        checkpoint = Checkpoint(
            created_at, heads, self._signer.key_id, self._signer.algorithm, self._public_key, signature
        )
        await self._journal.record_checkpoint(checkpoint)
        self._last = heads
        return checkpoint
