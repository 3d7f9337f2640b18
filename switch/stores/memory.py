"""The embedded StateStore: idempotency claims, velocity counters and KYC tiers in this process.

Right for one process (the embedded default, tests, demos). Several worker
processes each have their own, so production uses the Redis store instead. A claim
runs without awaiting, so on one event loop it is atomic like the Redis script.
Holders' tiers are read from the journal (tier_source) before the first claim that
needs one, since a restarted process holds none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from switch.domain.kyc import HolderTier
from switch.stores.base import (
    CAP_NAMES,
    UNCAPPED,
    Claim,
    ClaimOutcome,
    ClaimStatus,
    Completion,
    Counter,
    KycCaps,
    TierSource,
)
from switch.stores.holder_activity import HolderActivity

_SWEEP_INTERVAL_SECONDS = 30.0
_NO_TOTALS = ("", 0, "", 0, 0)


@dataclass(slots=True)
class _Key:
    request_hash: str
    response: bytes | None  # None while the claim is in flight
    claimed_at: float
    expires_at: float


class MemoryStateStore:
    def __init__(self, retention_seconds: float, lease_seconds: float, tier_source: TierSource | None = None) -> None:
        self._retention = retention_seconds
        self._lease = lease_seconds
        self._keys: dict[tuple[str, str], _Key] = {}
        self._counters: dict[tuple[str, str], tuple[int, float]] = {}  # value, expires_at
        self._next_sweep = 0.0
        self._tier_source = tier_source
        self._tiers: dict[str, HolderTier] | None = None if tier_source else {}  # by subject; None: not read yet
        # (subject, currency) -> KYC totals: day, its total, year, its total, lifetime total.
        self._kyc: dict[tuple[str, str], tuple[str, int, str, int, int]] = {}
        self._activity: dict[str, HolderActivity] = {}  # by subject

    async def claim(self, claims: Sequence[Claim], now: float) -> list[ClaimOutcome]:
        if self._tiers is None and any(counter.caps for claim in claims for counter in claim.counters):
            await self._read_tiers()
        self._maybe_sweep(now)
        return [self._claim_one(claim, now) for claim in claims]

    async def set_tiers(self, tiers: Sequence[HolderTier]) -> None:
        if self._tiers is None:
            await self._read_tiers()
        self._keep(tiers)

    async def _read_tiers(self) -> None:
        assert self._tier_source is not None
        read = await self._tier_source()
        if self._tiers is None:  # unless another call read them meanwhile
            self._tiers = {}
        self._keep(read)

    def _keep(self, tiers: Sequence[HolderTier]) -> None:
        assert self._tiers is not None
        for tier in tiers:
            subject = "i:" + tier.holder
            held = self._tiers.get(subject)
            if held is None or held.seq < tier.seq:
                self._tiers[subject] = tier

    async def complete(self, completions: Sequence[Completion], now: float) -> None:
        for done in completions:
            scope = (done.merchant_id, done.idempotency_key)
            if done.response is None:
                self._keys.pop(scope, None)
            else:
                self._keys[scope] = _Key(done.request_hash, done.response, now, now + self._retention)
            for counter in done.release:
                if counter.caps is not None:
                    self._move_totals(counter.subject, counter.caps, -done.amount_minor)
                if counter.payment is not None and not counter.payment.receiving and done.response is not None:
                    self._activity_of(counter.subject).declined(now)
                if counter.caps is not None or counter.payment is not None:
                    continue
                if self._value(counter, now):  # a window that ended has nothing to give back
                    self._add(counter, -self._increment(counter, done.amount_minor), now)

    async def close(self) -> None:
        self._keys.clear()
        self._counters.clear()
        self._kyc.clear()
        self._activity.clear()

    def _claim_one(self, claim: Claim, now: float) -> ClaimOutcome:
        scope = (claim.merchant_id, claim.idempotency_key)
        held = self._keys.get(scope)
        if held is not None and held.expires_at > now:
            if held.request_hash != claim.request_hash:
                return ClaimOutcome(ClaimStatus.CONFLICT)
            if held.response is not None:
                return ClaimOutcome(ClaimStatus.REPLAY, held.response)
            if now - held.claimed_at < self._lease:
                return ClaimOutcome(ClaimStatus.IN_FLIGHT)
            # The holder's lease ran out (it crashed): this caller takes the claim over.
        self._keys[scope] = _Key(claim.request_hash, None, now, now + self._retention)
        amount = claim.amount_minor
        for counter in claim.counters:
            caps = counter.caps
            if caps is None:
                if counter.payment is not None:
                    continue  # activity alone: no limit
                if self._value(counter, now) + self._increment(counter, amount) > counter.limit:
                    return ClaimOutcome(ClaimStatus.AMOUNT_LIMIT if counter.by_amount else ClaimStatus.COUNT_LIMIT)
                continue
            tier = self._tier(counter.subject)
            totals = self._totals(counter.subject, caps)
            for name, limit, total in zip(CAP_NAMES, caps.limits_for(tier), (0, *totals), strict=True):
                if limit != UNCAPPED and total + amount > limit:
                    return ClaimOutcome(ClaimStatus.TIER_LIMIT, tier=tier or "", over=name)
        activity: list[bytes] = []
        for counter in claim.counters:
            if counter.caps is None and counter.payment is None:
                self._add(counter, self._increment(counter, amount), now)
            if counter.caps is not None:
                self._move_totals(counter.subject, counter.caps, amount)
            if counter.payment is not None:
                activity.append(self._activity_of(counter.subject).record(counter.payment, now))
        return ClaimOutcome(ClaimStatus.NEW, activity=tuple(activity))

    def _activity_of(self, subject: str) -> HolderActivity:
        held = self._activity.get(subject)
        if held is None:
            held = self._activity[subject] = HolderActivity()
        return held

    def _totals(self, subject: str, caps: KycCaps) -> tuple[int, int, int]:
        """The holder's day, year and lifetime totals in the caps' currency as a payment of the
        caps' day counts them: a day (or year) after the one kept starts afresh; the one kept,
        or a later one (a claim timed by a clock behind), is counted."""
        day, on_day, year, in_year, lifetime = self._kyc.get((subject, caps.currency), _NO_TOTALS)
        return (on_day if day >= caps.day else 0), (in_year if year >= caps.year else 0), lifetime

    def _move_totals(self, subject: str, caps: KycCaps, delta: int) -> None:
        """Adds delta (negative: gives back) to the holder's totals, none below zero, as
        _totals counts them; a give-back reaches a day's (or year's) total only when it is
        the payment's day (an ended day keeps what it had)."""
        day, on_day, year, in_year, lifetime = self._kyc.get((subject, caps.currency), _NO_TOTALS)
        if delta > 0:
            if caps.day > day:
                day, on_day = caps.day, 0
            if caps.year > year:
                year, in_year = caps.year, 0
            on_day, in_year = on_day + delta, in_year + delta
        else:
            if day == caps.day:
                on_day = max(on_day + delta, 0)
            if year == caps.year:
                in_year = max(in_year + delta, 0)
        self._kyc[(subject, caps.currency)] = (day, on_day, year, in_year, max(lifetime + delta, 0))

    def _tier(self, subject: str) -> str | None:
        assert self._tiers is not None  # read by claim() before any capped counter
        held = self._tiers.get(subject)
        return None if held is None else held.tier

    @staticmethod
    def _increment(counter: Counter, amount_minor: int) -> int:
        return amount_minor if counter.by_amount else 1

    def _value(self, counter: Counter, now: float) -> int:
        value, expires_at = self._counters.get((counter.subject, counter.name), (0, 0.0))
        return value if expires_at > now else 0

    def _add(self, counter: Counter, delta: int, now: float) -> None:
        key = (counter.subject, counter.name)
        value, expires_at = self._counters.get(key, (0, 0.0))
        if expires_at <= now:
            value, expires_at = 0, now + counter.window_seconds
        self._counters[key] = (max(value + delta, 0), expires_at)

    def _maybe_sweep(self, now: float) -> None:
        """Drops expired keys and counters now and then, so memory stays bounded."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_INTERVAL_SECONDS
        self._keys = {k: v for k, v in self._keys.items() if v.expires_at > now}
        self._counters = {k: v for k, v in self._counters.items() if v[1] > now}
