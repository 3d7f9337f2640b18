"""Reading the sanctions lists again, and swapping a new version in.

Every worker refreshes on its own: it reads the files off the event loop, and when
their version (SHA-256) changed it builds the new index, also off the loop, and
swaps list, index and verdict cache in one assignment (Screening.swap). A refresh
that fails, for a file missing, truncated or malformed, changes nothing: the list
already loaded keeps serving, and the failure is logged and counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from switch.telemetry.metrics import Counter

from .lists import ListError, ListSource, SanctionsList, load
from .screening import Screening

log = logging.getLogger(__name__)


class ListRefresh:
    def __init__(
        self,
        screening: Screening,
        sources: Sequence[ListSource],
        *,
        outcomes: Counter | None = None,
        reader: Callable[[Sequence[ListSource]], SanctionsList] = load,
    ) -> None:
        """outcomes counts refreshes by outcome: swapped, unchanged, failed (the old list kept)."""
        self._screening = screening
        self._sources = tuple(sources)
        self._outcomes = outcomes
        self._reader = reader

    async def first(self) -> SanctionsList:
        """Reads and serves the lists at start; raises ListError, for the start to fail."""
        sanctions = await asyncio.to_thread(self._reader, self._sources)
        await self._screening.swap(sanctions)
        log.info("sanctions lists %s served: %d parties", sanctions.version[:12], len(sanctions.parties))
        return sanctions

    async def refresh(self) -> bool:
        """Reads the lists again; True when a new version is now served."""
        try:
            sanctions = await asyncio.to_thread(self._reader, self._sources)
        except (ListError, OSError) as error:
            log.error("sanctions lists not refreshed, %s still serves: %s", self._screening.version[:12], error)
            self._count("failed")
            return False
        if not await self._screening.swap(sanctions):
            self._count("unchanged")
            return False
        log.info("sanctions lists %s now served: %d parties", sanctions.version[:12], len(sanctions.parties))
        self._count("swapped")
        return True

    def _count(self, outcome: str) -> None:
        if self._outcomes is not None:
            self._outcomes.inc((("outcome", outcome),))
