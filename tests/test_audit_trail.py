"""The security events' trail on its own: records are group-committed and durable when
they return, notes are written in batches, kept across a failed write, and bounded.
(Against real journals: tests/e2e/test_detokenize.py, tests/e2e/test_roles_matrix.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from switch.domain.audit import EventKind, SecurityEvent
from switch.security.audit.trail import AuditTrail


class Journal:
    """Records what was committed, one list per commit; fails while `down`."""

    def __init__(self) -> None:
        self.commits: list[list[str]] = []
        self.down = False

    async def record_events(self, events: Sequence[SecurityEvent]) -> None:
        await asyncio.sleep(0.01)  # a commit takes a while: others queue behind it
        if self.down:
            raise ConnectionError("journal down")
        self.commits.append([event.subject for event in events])


def event(subject: str) -> SecurityEvent:
    return SecurityEvent(EventKind.DENIED, "caller", "PERMISSION_DENIED", subject, "no role", 1.0)


async def test_records_that_arrive_together_share_commits_and_are_durable_on_return() -> None:
    journal = Journal()
    trail = AuditTrail(journal)
    await asyncio.gather(*(trail.record(event(f"r{n}")) for n in range(50)))
    written = [subject for commit in journal.commits for subject in commit]
    assert sorted(written) == sorted(f"r{n}" for n in range(50))
    assert len(journal.commits) <= 3  # the first alone, then the ones that waited behind it


async def test_a_record_the_journal_refuses_raises() -> None:
    journal = Journal()
    journal.down = True
    with pytest.raises(ConnectionError):
        await AuditTrail(journal).record(event("r"))


async def test_notes_are_written_later_in_one_commit() -> None:
    journal = Journal()
    trail = AuditTrail(journal, flush_seconds=0.05)
    for n in range(10):
        trail.note(event(f"n{n}"))
    assert journal.commits == []
    await asyncio.sleep(0.2)
    assert journal.commits == [[f"n{n}" for n in range(10)]]


async def test_notes_survive_a_failed_write_and_a_flood_is_counted() -> None:
    journal = Journal()
    journal.down = True
    trail = AuditTrail(journal, flush_seconds=0.05, max_buffered=5)
    for n in range(8):
        trail.note(event(f"n{n}"))
    with pytest.raises(ConnectionError):
        await trail.flush()
    journal.down = False
    await trail.close()
    (written,) = journal.commits
    assert written[:5] == [f"n{n}" for n in range(5)]
    assert written[5] == "audit trail"  # the three past the bound, as a count
