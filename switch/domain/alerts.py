"""Risk alerts: authorizations a risk step flagged for a person to look at.

An alert is not a row of its own: it is the journal entry of the authorization it
flags (JournalEntry.alert names its kind, JournalEntry.decision says why), written
in the same commit as the answer, so no alert is ever lost or made up after the fact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_PAGE = 100
MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class AlertQuery:
    """Which alerts to list: every filter left empty matches all; oldest first, after a cursor."""

    kind: str = ""
    merchant_id: str = ""
    since: float = 0.0  # seconds since the epoch, inclusive
    until: float = math.inf  # exclusive
    after: tuple[float, str] | None = None  # (created_at, transaction_id) of the last alert already seen
    limit: int = DEFAULT_PAGE


@dataclass(frozen=True, slots=True)
class RiskAlert:
    transaction_id: str
    merchant_id: str
    kind: str  # e.g. "sanctions_review", "sanctions_hit"
    decision: str  # the entry's decision (JSON): versions and reason, never a customer's name
    response_code: str  # what the authorization was answered
    created_at: float

    @property
    def cursor(self) -> tuple[float, str]:
        return self.created_at, self.transaction_id
