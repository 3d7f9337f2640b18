"""The two store contracts the pipeline talks to, and the values they exchange.

StateStore holds short-lived state: idempotency claims and velocity counters
(memory in the embedded default, Redis in production). Journal holds the durable
record: journal entries and the current state of each transaction (SQLite in the
embedded default, PostgreSQL in production). Every method takes a whole batch, so
a batch costs one round trip to each store.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from switch.domain.alerts import AlertQuery, RiskAlert
from switch.domain.audit import SecurityEvent
from switch.domain.kyc import HolderTier
from switch.domain.models import JournalEntry, Money, TransactionRecord
from switch.stores.audit import AuditSnapshot, Checkpoint

# The KYC caps a tier sets, in this order in KycCaps.limits.
CAP_NAMES = ("per_transaction", "daily", "yearly", "lifetime")
UNCAPPED = -1


@dataclass(frozen=True, slots=True)
class KycCaps:
    """One currency's KYC caps in every tier, and the UTC day and year a payment made now
    counts in: shared by every item of a batch in that currency.

    The store keeps each holder's running totals (the day's, the year's, the lifetime's)
    beside its tier and checks them against the limits of the tier it reads, in the same
    atomic call that moves them, so a tier change applies to the next claim in every
    worker. A holder with no tier, or with one no longer configured, is held to the
    default tier's limits.
    """

    currency: str
    day: str  # "20261207": a daily total kept under another day counts as zero
    year: str  # "2026"
    default: str
    limits: Mapping[str, tuple[int, int, int, int]]  # tier -> its caps in CAP_NAMES order (UNCAPPED: none)

    def limits_for(self, tier: str | None) -> tuple[int, int, int, int]:
        found = self.limits.get(tier) if tier is not None else None
        return found if found is not None else self.limits[self.default]


@dataclass(frozen=True, slots=True)
class Payment:
    """One authorization as its parties' activity records it (switch.risk.activity)."""

    usd_cents: int  # its amount in USD minor units (0 when no rate converts it)
    near_threshold: bool  # just below the AML reporting threshold
    counterparty: str  # the other party's short id ("" for none: a card payment to a merchant)
    receiving: bool  # the counter is the destination's (it counts distinct payers), not the payer's


@dataclass(frozen=True, slots=True)
class Counter:
    """One velocity counter an item must fit under, in one fixed time window, or a
    holder's own state: its KYC totals, its activity.

    subject says whose counter it is ("i:<fingerprint>" or "m:<merchant>"); stores
    use it as the Redis Cluster hash tag. name is unique per subject and already
    includes the window's bucket, so a claim and its release hit the same key. With
    caps or payment it is a holder counter (window_seconds and limit unused): caps,
    the subject's KYC totals in caps.currency, checked against its tier's caps;
    payment, the authorization joins the subject's activity, and the claim answers
    the activity as it was before it (ClaimOutcome.activity).
    """

    subject: str
    name: str
    window_seconds: int
    limit: int
    by_amount: bool  # True: counts minor units (declines "61"); False: counts calls ("65")
    caps: KycCaps | None = None  # the holder's KYC totals: over a cap declines "57"
    payment: Payment | None = None  # the holder's activity: the claim answers it as it stood before


@dataclass(slots=True)  # built per authorization, so not frozen: see switch.domain.models
class Claim:
    merchant_id: str
    idempotency_key: str
    request_hash: str
    amount_minor: int
    counters: tuple[Counter, ...] = ()


class ClaimStatus(enum.Enum):
    NEW = "new"  # claimed; counters moved; the caller must complete it
    REPLAY = "replay"  # done before with the same request: response holds the answer
    IN_FLIGHT = "in_flight"  # someone else holds the claim right now
    CONFLICT = "conflict"  # the key was used for a different request
    COUNT_LIMIT = "count_limit"  # claimed, but a count limit is reached: decline "65"
    AMOUNT_LIMIT = "amount_limit"  # claimed, but an amount limit is reached: decline "61"
    TIER_LIMIT = "tier_limit"  # claimed, but a KYC cap of the holder's tier is reached: decline "57"


@dataclass(slots=True)  # built per authorization, so not frozen: see switch.domain.models
class ClaimOutcome:
    status: ClaimStatus
    response: bytes | None = None
    # TIER_LIMIT: the holder's tier as the store read it ("" for none) and the cap
    # reached (one of CAP_NAMES).
    tier: str = ""
    over: str = ""
    # NEW: for each of the claim's counters with a payment, in order, the activity before
    # it as the store answers it (switch.risk.activity parses it).
    activity: tuple[bytes, ...] = ()


@dataclass(slots=True)  # built per authorization, so not frozen: see switch.domain.models
class Completion:
    """Finishes a claim. response None gives the key back (the call failed and may be
    retried); release lists the counters to move back (the item was not approved)."""

    merchant_id: str
    idempotency_key: str
    request_hash: str
    response: bytes | None
    amount_minor: int = 0
    release: tuple[Counter, ...] = ()


class StateStore(Protocol):
    async def claim(self, claims: Sequence[Claim], now: float) -> list[ClaimOutcome]:
        """Claims each key and, for new claims, moves every counter or none of them.

        Counters move only when all of an item's counters fit; a limit of N lets
        exactly N through however many callers race. Items are applied in order,
        so the same key twice in one batch yields NEW then IN_FLIGHT.
        """
        ...

    async def complete(self, completions: Sequence[Completion], now: float) -> None: ...

    async def set_tiers(self, tiers: Sequence[HolderTier]) -> None:
        """Stores holders' KYC tiers, each unless the store holds a later one (by seq)."""
        ...

    async def close(self) -> None: ...


# What a state store rebuilds the holders' tiers from when it finds it lost them (a
# Redis restart, the embedded store at start): the journal's Journal.holder_tiers.
TierSource = Callable[[], Awaitable[Sequence[HolderTier]]]


class ApplyStatus(enum.Enum):
    APPLIED = "applied"
    STALE = "stale"  # the transaction changed since it was read: re-read and retry
    DUPLICATE = "duplicate"  # an entry with this (merchant, idempotency key) exists


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    status: ApplyStatus
    existing: JournalEntry | None = None


@dataclass(frozen=True, slots=True)
class PendingReversal:
    """An authorization with an unknown outcome, to reverse on its route until acknowledged."""

    transaction_id: str
    route: str
    attempts: int
    next_attempt_at: float


@dataclass(frozen=True, slots=True)
class PendingOperation:
    """A capture, void or refund journaled pending (entry.pending): decided, not yet
    answered by the network. attempts counts the takers that sent or were about to
    send it (the worker that decided it is the first), and fences them: a withdrawal
    or a take names the count it saw. next_attempt_at ends the current taker's lease."""

    entry: JournalEntry
    attempts: int
    next_attempt_at: float


@dataclass(frozen=True, slots=True)
class Intent:
    """An authorization about to be sent to a route, recorded before it is sent.

    It holds what the journal needs to record the authorization as UNKNOWN (and
    reverse it) if no outcome is ever journaled: a switch that crashed, or whose
    commit failed, after the route may have approved it.
    """

    transaction_id: str
    merchant_id: str
    idempotency_key: str
    request_hash: str
    route: str
    amount: Money
    masked_instrument: str
    fingerprint: str
    token: str
    created_at: float


class Journal(Protocol):
    async def record_authorizations(
        self, batch: Sequence[tuple[TransactionRecord, JournalEntry]]
    ) -> list[JournalEntry | None]:
        """Commits every new transaction and its entry in one transaction.

        Returns None for each one recorded, or the earlier entry holding the same
        (merchant, idempotency key): the unique constraint is the last guard
        against a duplicate that slipped past the state store. A transaction whose
        outcome is UNKNOWN gets a pending reversal in the same commit, so the
        reversal is durable before the caller hears anything.
        """
        ...

    async def record_intents(self, intents: Sequence[Intent]) -> set[str]:
        """Durably records that these authorizations are about to be sent; returns the
        transaction ids recorded. One whose (merchant, idempotency key) an intent of
        another transaction holds is not: an earlier attempt may have reached the
        network, so this one must not be sent. Recording an intent again (failover to
        another route) moves it to that route."""
        ...

    async def abandoned_intents(self, before: float, limit: int) -> list[Intent]:
        """Intents recorded before `before` whose authorization has no journal entry:
        sent, perhaps approved, and never journaled."""
        ...

    async def prune_intents(self, before: float) -> int:
        """Forgets intents recorded before `before` whose authorization is journaled."""
        ...

    async def due_reversals(self, now: float, limit: int) -> list[PendingReversal]:
        """Pending reversals whose next attempt is due, oldest first."""
        ...

    async def reschedule_reversal(self, transaction_id: str, attempts: int, next_attempt_at: float) -> None: ...

    async def finish_reversal(self, record: TransactionRecord, entry: JournalEntry) -> bool:
        """Marks the reversal done and stores record (REVERSED, version n+1) with entry, in
        one commit; False, changing nothing, when it was done already or the record moved."""
        ...

    async def apply(
        self, record: TransactionRecord, entry: JournalEntry, *, lease_until: float | None = None
    ) -> ApplyOutcome:
        """Stores record (version n+1) if the stored one is still version n, with entry.

        With lease_until, entry (entry.pending) is an operation decided before it is
        sent: it goes in with attempts 1, its decider's lease running to lease_until.
        """
        ...

    async def due_operations(self, now: float, limit: int) -> list[PendingOperation]:
        """Pending operations whose lease ran out by now, oldest lease first."""
        ...

    async def pending_operations(self, transaction_id: str) -> list[JournalEntry]:
        """The transaction's operations still pending."""
        ...

    async def take_operation(self, entry: JournalEntry, attempts: int, lease_until: float) -> bool:
        """Takes over a pending operation to send it again: attempts + 1, leased to
        lease_until; False, changing nothing, when it is no longer pending or someone
        took it since its attempts were read."""
        ...

    async def resolve_operation(self, entry: JournalEntry, record: TransactionRecord | None) -> ApplyStatus:
        """Stores the final form of a pending entry (entry: not pending, with the network's
        response code, status and answer) and, if given, record (version n+1: the
        reservation undone) if the stored one is still version n, in one commit.
        DUPLICATE: the entry is no longer pending (resolved by someone else); STALE: the
        record moved. Either changes nothing."""
        ...

    async def withdraw_operation(self, entry: JournalEntry, attempts: int, record: TransactionRecord) -> ApplyStatus:
        """Deletes a pending entry no one took over (still at attempts) and stores record
        (version n+1: the reservation undone) if the stored one is still version n, in one
        commit, so that the key is free again. DUPLICATE: resolved or taken over; STALE:
        the record moved. Either changes nothing."""
        ...

    async def get_transaction(self, transaction_id: str) -> TransactionRecord | None: ...

    async def find_entries(self, scopes: Sequence[tuple[str, str]]) -> dict[tuple[str, str], JournalEntry]:
        """The entries holding these (merchant, idempotency key) pairs, in one query."""
        ...

    async def list_alerts(self, query: AlertQuery) -> list[RiskAlert]:
        """The entries that raised an alert and match query, oldest first, at most query.limit."""
        ...

    async def record_holder_tier(self, holder: str, tier: str, at: float) -> HolderTier:
        """Durably sets a holder's KYC tier; returns it with its place in the order of changes."""
        ...

    async def holder_tiers(self) -> list[HolderTier]:
        """Every holder's current tier."""
        ...

    async def record_label(self, transaction_id: str, fraud: bool, at: float) -> None:
        """Labels an authorization as fraud or not (ReportFraud), replacing an earlier label."""
        ...

    async def labelled_decisions(self) -> list[tuple[str, bool]]:
        """Each labelled authorization's journaled decision (JSON) and its label, oldest label first."""
        ...

    async def record_model_promotion(
        self, policy_version: str, live_model: str, caller: str, reason: str, at: float
    ) -> None:
        """Durably makes live_model the live fraud model of that policy bundle (PromoteModel)."""
        ...

    async def promoted_model(self, policy_version: str) -> str | None:
        """The live model the latest promotion gave that policy bundle; None: never promoted."""
        ...

    # The audit trail. Every method above that writes journal rows also seals them
    # into a block of the audit chain in the same commit (switch.stores.audit).

    async def record_events(self, events: Sequence[SecurityEvent]) -> None:
        """Commits security events (and their block); durable when it returns."""
        ...

    def audit_heads(self) -> list[tuple[str, int, bytes]]:
        """This journal's chains at rest: (chain, seq, block hash) of each one's last block."""
        ...

    async def record_checkpoint(self, checkpoint: Checkpoint) -> None: ...

    async def read_audit(self) -> AuditSnapshot:
        """The blocks, checkpoints and every chained row, for verification."""
        ...

    async def close(self) -> None: ...
