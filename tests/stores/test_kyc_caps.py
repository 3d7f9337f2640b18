"""KYC caps in the claim: each holder's tier picks the limit, read in the same atomic call
that checks and moves the counter, on every state store (memory, Redis, Redis Cluster).

The tiers a store reloads come from a list here (the journal's holder_tiers in the
switch: tests/e2e/test_kyc_tiers.py), and from a real SQLite journal across a real
Redis restart.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import MappingProxyType

import pytest
import redis.asyncio as aioredis

from switch.domain.kyc import HolderTier
from switch.domain.models import InstrumentKind, unchecked_instrument
from switch.risk.kyc import KycPolicy, KycRules, TierLimits
from switch.stores.base import Claim, ClaimOutcome, ClaimStatus, Completion, StateStore
from switch.stores.redis import RedisStateStore
from switch.stores.sqlite import SqliteJournal
from tests.conftest import REDIS_URL, drop_redis_keys
from tests.faults.harness import RedisProcess
from tests.stores.test_state_store import Backend

T0 = 1_781_000_000.0  # 2026-06-09 UTC: far from a day's or a year's end
LEASE = 30.0

POLICY = KycPolicy(
    "class_i",
    MappingProxyType(
        {
            "class_i": MappingProxyType({"CNY": TierLimits(lifetime=100_000)}),
            "class_ii": MappingProxyType({"CNY": TierLimits(per_transaction=50_000, daily=80_000, yearly=10_000_000)}),
            "class_iii": MappingProxyType({"CNY": TierLimits(yearly=20_000_000)}),
            "frozen": MappingProxyType({"CNY": TierLimits(per_transaction=0)}),
        }
    ),
)


class Tiers:
    """What the journal holds: the stores reload from it when they lost their tiers."""

    def __init__(self) -> None:
        self.held: dict[str, HolderTier] = {}
        self.reads = 0

    def set(self, holder: str, tier: str) -> HolderTier:
        changed = HolderTier(holder, tier, len(self.held) + 1000 + self.reads)
        self.held[holder] = changed
        return changed

    async def __call__(self) -> Sequence[HolderTier]:
        self.reads += 1
        return list(self.held.values())


class Maker(Backend):
    """A Backend whose stores read their tiers from one Tiers, the journal's stand-in."""

    def __init__(self, kind: str, prefix: str, cluster_url: str = "") -> None:
        super().__init__(kind, prefix, cluster_url)
        self.tiers = Tiers()

    def store(self) -> StateStore:
        return self.make_now(3600.0, LEASE, self.tiers)


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def maker(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[Maker]:
    kind = str(request.param)
    cluster_url = request.getfixturevalue("redis_cluster_url") if kind == "redis-cluster" else ""
    made = Maker(kind, redis_prefix, cluster_url)
    yield made
    await made.close()


CAPS = KycRules(POLICY)


def capped(holder: str, key: str, amount: int, currency: str = "CNY", now: float = T0) -> Claim:
    """A claim with the caps an authorization of this holder and amount carries."""
    from switch.domain.models import unchecked_authorization, unchecked_card, unchecked_money

    authorization = unchecked_authorization(
        key, "m-1", unchecked_money(amount, currency), unchecked_card("4111111111111111", 12, 2030)
    )
    instrument = unchecked_instrument(InstrumentKind.CARD, holder, "411111******1111")
    (counters,) = CAPS.counters_many([authorization], [instrument], now)
    return Claim("m-1", key, "h-" + key, amount, counters)


def keys(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def statuses(outcomes: Sequence[ClaimOutcome]) -> list[ClaimStatus]:
    return [outcome.status for outcome in outcomes]


async def test_an_unclassified_holder_is_held_to_the_default_tier(maker: Maker) -> None:
    store = maker.store()
    outcomes = await store.claim(
        [capped("fp-a", "k1", 60_000), capped("fp-a", "k2", 40_000), capped("fp-a", "k3", 1)], T0
    )
    assert statuses(outcomes) == [ClaimStatus.NEW, ClaimStatus.NEW, ClaimStatus.TIER_LIMIT]
    assert outcomes[2].tier == ""  # none set: the default's caps
    assert outcomes[2].over == "lifetime"


async def test_each_cap_of_a_tier_declines_with_its_name(maker: Maker) -> None:
    store = maker.store()
    await store.set_tiers([maker.tiers.set("fp-b", "class_ii")])
    one = await store.claim([capped("fp-b", "big", 50_001)], T0)
    assert (one[0].status, one[0].tier, one[0].over) == (ClaimStatus.TIER_LIMIT, "class_ii", "per_transaction")
    day = await store.claim([capped("fp-b", "d1", 50_000), capped("fp-b", "d2", 30_000), capped("fp-b", "d3", 1)], T0)
    assert statuses(day) == [ClaimStatus.NEW, ClaimStatus.NEW, ClaimStatus.TIER_LIMIT]
    assert day[2].over == "daily"
    # The next day starts a new daily counter; the lifetime cap of class_i no longer applies.
    tomorrow = T0 + 86_400
    assert statuses(await store.claim([capped("fp-b", "d4", 50_000, now=tomorrow)], tomorrow)) == [ClaimStatus.NEW]


async def test_a_currency_the_tiers_do_not_name_is_not_capped(maker: Maker) -> None:
    store = maker.store()
    assert capped("fp-c", "k", 1, currency="USD").counters == ()
    assert statuses(await store.claim([capped("fp-c", "k", 10**9, currency="USD")], T0)) == [ClaimStatus.NEW]


async def test_a_tier_change_applies_to_the_next_claim(maker: Maker) -> None:
    store, other_worker = maker.store(), maker.store()
    assert statuses(await store.claim([capped("fp-d", "k1", 100_000)], T0)) == [ClaimStatus.NEW]
    assert statuses(await store.claim([capped("fp-d", "k2", 1)], T0)) == [ClaimStatus.TIER_LIMIT]
    await store.set_tiers([maker.tiers.set("fp-d", "class_iii")])
    if maker.kind == "memory":  # each process has its own: only Redis is shared by workers
        other_worker = store
    assert statuses(await other_worker.claim([capped("fp-d", "k3", 1)], T0)) == [ClaimStatus.NEW]
    await store.set_tiers([maker.tiers.set("fp-d", "frozen")])
    assert statuses(await other_worker.claim([capped("fp-d", "k4", 1)], T0)) == [ClaimStatus.TIER_LIMIT]


async def test_an_older_tier_never_replaces_a_newer_one(maker: Maker) -> None:
    store = maker.store()
    await store.set_tiers([HolderTier("fp-e", "frozen", 7)])
    await store.set_tiers([HolderTier("fp-e", "class_iii", 6)])  # a reload that read the journal earlier
    outcome = await store.claim([capped("fp-e", "k", 1)], T0)
    assert (outcome[0].status, outcome[0].tier) == (ClaimStatus.TIER_LIMIT, "frozen")


async def test_a_tier_no_longer_configured_falls_back_to_the_default(maker: Maker) -> None:
    store = maker.store()
    await store.set_tiers([maker.tiers.set("fp-f", "retired")])
    outcomes = await store.claim([capped("fp-f", "k1", 100_000), capped("fp-f", "k2", 1)], T0)
    assert statuses(outcomes) == [ClaimStatus.NEW, ClaimStatus.TIER_LIMIT]


async def test_a_declined_item_gives_its_amount_back(maker: Maker) -> None:
    store = maker.store()
    first = capped("fp-g", "k1", 100_000)
    assert statuses(await store.claim([first], T0)) == [ClaimStatus.NEW]
    await store.complete(
        [Completion("m-1", "k1", first.request_hash, b"declined", first.amount_minor, first.counters)], T0
    )
    assert statuses(await store.claim([capped("fp-g", "k2", 100_000)], T0)) == [ClaimStatus.NEW]


async def test_caps_hold_exactly_under_200_concurrent_racers(maker: Maker) -> None:
    """200 claims at once, from several stores (workers, on Redis), one holder per tier:
    the default's lifetime 100,000 lets 10 of 10,000 through, class_ii's daily 80,000 lets 8."""
    stores = [maker.store() for _ in range(1 if maker.kind == "memory" else 4)]
    await stores[0].set_tiers([maker.tiers.set("fp-two", "class_ii")])
    claims = [capped("fp-one" if i % 2 else "fp-two", f"race-{i}", 10_000) for i in range(200)]

    async def race(i: int, claim: Claim) -> ClaimOutcome:
        (outcome,) = await stores[i % len(stores)].claim([claim], T0)
        return outcome

    outcomes = await asyncio.gather(*(race(i, claim) for i, claim in enumerate(claims)))
    by_holder: dict[str, list[ClaimStatus]] = {"fp-one": [], "fp-two": []}
    for claim, outcome in zip(claims, outcomes, strict=True):
        by_holder[claim.counters[0].subject[2:]].append(outcome.status)
    assert by_holder["fp-one"].count(ClaimStatus.NEW) == 10
    assert by_holder["fp-one"].count(ClaimStatus.TIER_LIMIT) == 90
    assert by_holder["fp-two"].count(ClaimStatus.NEW) == 8
    assert by_holder["fp-two"].count(ClaimStatus.TIER_LIMIT) == 92


async def test_a_batch_of_racers_in_one_call_is_exact_too(maker: Maker) -> None:
    store = maker.store()
    outcomes = await store.claim([capped("fp-h", f"b-{i}", 30_000) for i in range(10)], T0)
    assert statuses(outcomes) == [ClaimStatus.NEW] * 3 + [ClaimStatus.TIER_LIMIT] * 7


async def test_lost_tiers_are_reloaded_before_the_next_claim(maker: Maker) -> None:
    if maker.kind == "memory":
        pytest.skip("the embedded store loses its tiers with its process: tests/e2e/test_kyc_tiers.py restarts it")
    store = maker.store()
    await store.set_tiers([maker.tiers.set("fp-i", "frozen")])
    assert statuses(await store.claim([capped("fp-i", "k1", 1)], T0)) == [ClaimStatus.TIER_LIMIT]
    await drop_redis_keys(
        REDIS_URL if maker.kind == "redis" else maker.cluster_url, maker.prefix, cluster=maker.kind != "redis"
    )
    reads = maker.tiers.reads
    assert statuses(await store.claim([capped("fp-i", "k2", 1)], T0)) == [ClaimStatus.TIER_LIMIT]
    assert maker.tiers.reads == reads + 1
    assert statuses(await store.claim([capped("fp-i", "k3", 1)], T0)) == [ClaimStatus.TIER_LIMIT]
    assert maker.tiers.reads == reads + 1  # loaded once


async def test_a_tier_survives_a_redis_restart(tmp_path: Path, redis_prefix: str) -> None:
    """A real restart of a Redis without persistence: the tier comes back from the journal."""
    own = RedisProcess(tmp_path)
    await own.start()
    journal = await SqliteJournal.open(tmp_path / "journal.db")
    store = RedisStateStore.from_url(
        f"redis://127.0.0.1:{own.port}/0",
        prefix=redis_prefix,
        retention_seconds=3600.0,
        lease_seconds=LEASE,
        tier_source=journal.holder_tiers,
    )
    try:
        await store.set_tiers([await journal.record_holder_tier("fp-r", "frozen", T0)])
        assert statuses(await store.claim([capped("fp-r", "k1", 1)], T0)) == [ClaimStatus.TIER_LIMIT]
        await own.kill()
        await own.start()
        client = aioredis.Redis(port=own.port)
        assert await client.dbsize() == 0  # everything is gone
        await client.aclose()
        for _attempt in range(50):  # the pool's connections died with the server
            try:
                outcome = await store.claim([capped("fp-r", "k2", 1)], T0)
                break
            except (ConnectionError, OSError, aioredis.ConnectionError):
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the store never reconnected")
        assert (outcome[0].status, outcome[0].tier) == (ClaimStatus.TIER_LIMIT, "frozen")
    finally:
        await store.close()
        await journal.close()
        await own.kill()


async def test_a_give_back_after_midnight_leaves_the_new_day_alone(maker: Maker) -> None:
    """An item claimed on one day and declined on the next gives back to the lifetime and
    the year, not to the new day's total."""
    store = maker.store()
    await store.set_tiers([maker.tiers.set("fp-m", "class_ii")])
    late = capped("fp-m", "late", 40_000)
    assert statuses(await store.claim([late], T0)) == [ClaimStatus.NEW]
    tomorrow = T0 + 86_400
    assert statuses(await store.claim([capped("fp-m", "early", 50_000, now=tomorrow)], tomorrow)) == [ClaimStatus.NEW]
    declined = Completion("m-1", "late", late.request_hash, None, late.amount_minor, late.counters)
    await store.complete([declined], tomorrow)
    # The new day still holds 50,000 of its 80,000: 30,001 more is over.
    outcome = await store.claim([capped("fp-m", "more", 30_001, now=tomorrow)], tomorrow)
    assert (outcome[0].status, outcome[0].over) == (ClaimStatus.TIER_LIMIT, "daily")
    assert statuses(await store.claim([capped("fp-m", "fits", 30_000, now=tomorrow)], tomorrow)) == [ClaimStatus.NEW]
