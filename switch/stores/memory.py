"""The embedded StateStore: idempotency claims, velocity counters and KYC tiers in this process.

Right for one process (the embedded default, tests, demos). Several worker
processes each have their own, so production uses the Redis store instead. A claim
runs without awaiting, so on one event loop it is atomic like the Redis script.
Holders' tiers are read from the journal (tier_source) before the first claim that
needs one, since a restarted process holds none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from switch.domain.kyc import HolderTier
from switch.stores.base import PER_ITEM, Claim, ClaimOutcome, ClaimStatus, Completion, Counter, TierSource

_SWEEP_INTERVAL_SECONDS = 30.0


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

    async def claim(self, claims: Sequence[Claim], now: float) -> list[ClaimOutcome]:
        if self._tiers is None and any(counter.cap for claim in claims for counter in claim.counters):
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
                if self._value(counter, now):  # a window that ended has nothing to give back
                    self._add(counter, -self._increment(counter, done.amount_minor), now)

    async def close(self) -> None:
        self._keys.clear()
        self._counters.clear()

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
        for counter in claim.counters:
            increment = self._increment(counter, claim.amount_minor)
            if counter.cap is None:
                if self._value(counter, now) + increment > counter.limit:
                    return ClaimOutcome(ClaimStatus.AMOUNT_LIMIT if counter.by_amount else ClaimStatus.COUNT_LIMIT)
                continue
            tier = self._tier(counter.subject)
            limit = counter.cap.limit_for(tier)
            if limit is None:
                continue
            counted = 0 if counter.window_seconds == PER_ITEM else self._value(counter, now)
            if counted + increment > limit:
                return ClaimOutcome(ClaimStatus.TIER_LIMIT, tier=tier or "", over=counter.name)
        for counter in claim.counters:
            if counter.window_seconds != PER_ITEM:
                self._add(counter, self._increment(counter, claim.amount_minor), now)
        return ClaimOutcome(ClaimStatus.NEW)

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
            value = 0
            expires_at = now + counter.window_seconds if counter.window_seconds > 0 else math.inf  # LIFETIME
        self._counters[key] = (max(value + delta, 0), expires_at)

    def _maybe_sweep(self, now: float) -> None:
        """Drops expired keys and counters now and then, so memory stays bounded."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_INTERVAL_SECONDS
        self._keys = {k: v for k, v in self._keys.items() if v.expires_at > now}
        self._counters = {k: v for k, v in self._counters.items() if v[1] > now}
