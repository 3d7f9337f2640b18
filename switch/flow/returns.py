"""Returns: money a network sends back on its own, after a recall it accepted.

An adapter with Capability.RETURNS hands each return here and acknowledges it to the
network only once this has returned, so a return is durable before the network
stops resending it; one delivered twice is journaled once (its reference is the
entry's key). A return completes the reversal of its transaction:
- RETURN_PENDING (the recall accepted) or RECALL_REJECTED (money a rejected recall
  left moved, sent back after all) -> REVERSED;
- UNKNOWN (the return overtook the recall's answer) -> REVERSED, and the pending
  reversal is done, in one commit.
A return for a transaction in any other state, or for none the journal holds, is not
applied: it is counted and logged for operations to settle, and acknowledged, since
the money did arrive and resending cannot change that.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from switch.adapters.contract import Return
from switch.domain.models import JournalEntry, TransactionRecord, TransactionStatus
from switch.domain.response_codes import ResponseCode
from switch.flow.reversals import reversal_step
from switch.stores.base import ApplyStatus, Journal
from switch.telemetry.metrics import Counter

log = logging.getLogger(__name__)

# A transaction that moves between reading it and applying the return (the recall's
# answer landing meanwhile) is read again; past this many tries the return goes back
# unacknowledged and the network delivers it again.
ATTEMPTS = 3

_AWAITING = frozenset({TransactionStatus.RETURN_PENDING, TransactionStatus.RECALL_REJECTED})


class ReturnsNotApplied(Exception):
    """The transaction kept moving under a return: it stays unacknowledged, for a resend."""


class Returns:
    def __init__(
        self, journal: Journal, *, outcomes: Counter | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        """outcomes counts returns by outcome: applied, duplicate, unexpected (not applied)."""
        self._journal = journal
        self._outcomes = outcomes
        self._clock = clock

    async def __call__(self, returns: Sequence[Return]) -> None:
        """Journals every return; raises (a store error, ReturnsNotApplied) when one is not
        durable, and the adapter then acknowledges none of them."""
        for returned in returns:
            self._count(await self._apply(returned))

    async def _apply(self, returned: Return) -> str:
        for _ in range(ATTEMPTS):
            record = await self._journal.get_transaction(returned.transaction_id)
            if record is None or record.status not in (*_AWAITING, TransactionStatus.UNKNOWN):
                return await self._unexpected(returned, record)
            reversed_record, entry = self._reversed(record, returned)
            if record.status is TransactionStatus.UNKNOWN:
                applied = await self._journal.finish_reversal(reversed_record, entry)
            else:
                outcome = await self._journal.apply(reversed_record, entry)
                if outcome.status is ApplyStatus.DUPLICATE:
                    return "duplicate"
                applied = outcome.status is ApplyStatus.APPLIED
            if applied:
                self._log_applied(record, returned)
                return "applied"
        raise ReturnsNotApplied(f"{returned.transaction_id} kept changing under return {returned.reference}")

    def _reversed(self, record: TransactionRecord, returned: Return) -> tuple[TransactionRecord, JournalEntry]:
        return reversal_step(
            record,
            TransactionStatus.REVERSED,
            key=return_key(returned.reference),
            amount=returned.amount,
            code=ResponseCode.APPROVED.code,
            now=self._clock(),
        )

    async def _unexpected(self, returned: Return, record: TransactionRecord | None) -> str:
        if record is not None and record.status is TransactionStatus.REVERSED:
            found = await self._journal.find_entries([(record.merchant_id, return_key(returned.reference))])
            if found:
                return "duplicate"  # delivered again after its acknowledgement was lost
        state = "no transaction the journal holds" if record is None else f"a transaction that is {record.status.value}"
        log.error(
            "return %s of %s %s (%s) names %s (%s): not applied; settle it by hand",
            returned.reference,
            returned.amount.minor_units,
            returned.amount.currency,
            returned.reason,
            state,
            returned.transaction_id,
        )
        return "unexpected"

    def _log_applied(self, record: TransactionRecord, returned: Return) -> None:
        if returned.amount != record.authorized:
            log.warning(
                "return %s brought back %s %s of %s's %s %s",
                returned.reference,
                returned.amount.minor_units,
                returned.amount.currency,
                record.transaction_id,
                record.authorized.minor_units,
                record.authorized.currency,
            )
        log.info("reversed %s: return %s arrived (%s)", record.transaction_id, returned.reference, returned.reason)

    def _count(self, outcome: str) -> None:
        if self._outcomes is not None:
            self._outcomes.inc((("outcome", outcome),))


def return_key(reference: str) -> str:
    """The journal entry key of a return: one entry per return, however often delivered."""
    return f"return:{reference}"
