"""Security events into the audit trail (the journal's security_events, chained).

record() returns once the event is durable: a Detokenize answers only after its
event is (allowed or not). Records that arrive while a commit is in flight go
together in the next one (a group commit), so a flood of calls costs about one
commit per commit time, not one each. note() is for the rest (a denial, a refused
enumeration): the call must not wait on a journal commit, and a flood of denials
must not turn into a flood of commits, so they are written in batches a moment
later. What is buffered is bounded; past the bound events are counted instead,
and the count goes into the trail as an event of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from switch.domain.audit import EventKind, SecurityEvent

log = logging.getLogger("switch.security")

ALLOWED = "allowed"  # the outcome of an event that refused nothing
FLUSH_SECONDS = 0.2
MAX_BUFFERED = 10_000


class EventJournal(Protocol):
    async def record_events(self, events: Sequence[SecurityEvent]) -> None: ...


class AuditTrail:
    def __init__(
        self, journal: EventJournal, *, flush_seconds: float = FLUSH_SECONDS, max_buffered: int = MAX_BUFFERED
    ) -> None:
        self._journal = journal
        self._flush_seconds = flush_seconds
        self._max_buffered = max_buffered
        self._buffer: list[SecurityEvent] = []
        self._dropped = 0
        self._flusher: asyncio.Task[None] | None = None
        self._waiting: list[tuple[SecurityEvent, asyncio.Future[None]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()  # flush() returns once what was noted before it is written

    async def record(self, event: SecurityEvent) -> None:
        """Durable when it returns; raises what the journal raises, or OverflowError
        when max_buffered records already wait."""
        _log(event)
        if len(self._waiting) >= self._max_buffered:
            raise OverflowError("too many security events wait to be written")
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((event, done))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.get_running_loop().create_task(self._commit_waiting(), name="audit-records")
        await asyncio.shield(done)  # a caller that goes away leaves its event to be written

    async def _commit_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self._journal.record_events([event for event, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    done.set_exception(exc)
            else:
                for _, done in batch:
                    done.set_result(None)

    def note(self, event: SecurityEvent) -> None:
        """Durable within about flush_seconds (or at close)."""
        _log(event)
        if len(self._buffer) >= self._max_buffered:
            self._dropped += 1
            return
        self._buffer.append(event)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later(), name="audit-trail")

    async def flush(self) -> None:
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        events, self._buffer = self._buffer, []
        dropped, self._dropped = self._dropped, 0
        batch = [*events, _dropped(dropped, self._max_buffered)] if dropped else events
        if not batch:
            return
        try:
            await self._journal.record_events(batch)
        except Exception:
            # Kept for the next flush (within the bound, the rest counted): a journal
            # hiccup must not lose them.
            log.exception("could not write %d security events to the audit trail; will retry", len(batch))
            kept = events + self._buffer
            self._buffer = kept[: self._max_buffered]
            self._dropped += dropped + len(kept) - len(self._buffer)
            raise

    async def close(self) -> None:
        if self._committer is not None:
            await asyncio.gather(self._committer, return_exceptions=True)
        # Flushed first (after a write in progress, under the lock), so the flusher is
        # never cancelled holding events it took from the buffer.
        with contextlib.suppress(Exception):
            await self.flush()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher

    async def _flush_later(self) -> None:
        while self._buffer or self._dropped:
            await asyncio.sleep(self._flush_seconds)
            with contextlib.suppress(Exception):  # logged by flush; tried again next time round
                await self.flush()


def _dropped(count: int, bound: int) -> SecurityEvent:
    return SecurityEvent(
        EventKind.DENIED,
        caller="",
        outcome="not recorded",
        subject="audit trail",
        detail=f"{count} security events arrived while {bound} waited to be written; only counted",
        created_at=time.time(),
    )


def _log(event: SecurityEvent) -> None:
    log.log(
        logging.INFO if event.outcome == ALLOWED else logging.WARNING,
        "security event %s: %s by %r on %s: %s (%s)",
        event.event_id,
        event.kind.value,
        event.caller,
        event.subject,
        event.outcome,
        event.detail,
    )
