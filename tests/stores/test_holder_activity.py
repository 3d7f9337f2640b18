"""The online feature store: each payment's parties' activity, answered by the claim as
it stood before the payment, the same from every state store (memory, Redis, Cluster)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from switch.risk.activity import DISTINCT_KEPT, parse_activity
from switch.stores.base import Claim, ClaimStatus, Completion, Counter, Payment, StateStore
from tests.conftest import REDIS_URL, drop_redis_keys
from tests.stores.test_state_store import Backend

T0 = 1_781_000_000.0  # 2026-06-09 10:13:20 UTC
LEASE = 30.0


def pays(payer: str, key: str, cents: int, *, to: str = "", near: bool = False, merchant: str = "m-1") -> Claim:
    counters = [Counter("i:" + payer, "USD", 0, 0, True, payment=Payment(cents, near, to[:12], False))]
    if to:
        counters.append(Counter("i:" + to, "in", 0, 0, True, payment=Payment(cents, near, payer[:12], True)))
    return Claim(merchant, key, "h-" + key, cents, tuple(counters))


def make(kind: str, prefix: str, cluster_url: str) -> StateStore:
    return Backend(kind, prefix, cluster_url).make_now(3600.0, LEASE)


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def store(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[StateStore]:
    kind = str(request.param)
    cluster_url = request.getfixturevalue("redis_cluster_url") if kind == "redis-cluster" else ""
    made = make(kind, redis_prefix, cluster_url)
    yield made
    await made.close()
    if kind == "redis-cluster":
        await drop_redis_keys(cluster_url, redis_prefix, cluster=True)


async def test_a_first_payment_finds_nothing_and_the_next_finds_it(store: StateStore) -> None:
    (first,) = await store.claim([pays("aaa111", "k1", 2_500, to="bbb222")], T0)
    assert first.status is ClaimStatus.NEW
    before = parse_activity(first.activity[0], first.activity[1])
    assert before.first and before.count_1h == 0 and before.sources_24h == 0

    (second,) = await store.claim([pays("aaa111", "k2", 1_000, to="ccc333", near=True)], T0 + 60)
    seen = parse_activity(second.activity[0], second.activity[1])
    assert not seen.first
    assert (seen.count_1h, seen.sum_24h_usd, seen.destinations_24h, seen.count_30d) == (1, 25.0, 1, 1)
    assert (seen.age_seconds, seen.idle_seconds, seen.sources_24h) == (60, 60, 0)

    (third,) = await store.claim([pays("ddd444", "k3", 700, to="ccc333")], T0 + 120)
    fan_in = parse_activity(third.activity[0], third.activity[1])
    assert fan_in.first and fan_in.sources_24h == 1  # aaa111 paid ccc333 before

    (fourth,) = await store.claim([pays("aaa111", "k4", 100)], T0 + 180)
    assert len(fourth.activity) == 1  # a card payment: no destination account
    later = parse_activity(fourth.activity[0], None)
    assert (later.count_1h, later.near_threshold_24h, later.destinations_24h) == (2, 1, 2)


async def test_items_of_one_batch_see_those_before_them(store: StateStore) -> None:
    outcomes = await store.claim([pays("eee555", f"b{i}", 1_000, to=f"dest{i:08d}") for i in range(5)], T0)
    counts = [parse_activity(o.activity[0], o.activity[1]).count_1h for o in outcomes]
    assert counts == [0, 1, 2, 3, 4]
    assert [parse_activity(o.activity[0], o.activity[1]).destinations_24h for o in outcomes] == [0, 1, 2, 3, 4]


async def test_a_decline_counts_once_it_is_answered(store: StateStore) -> None:
    claim = pays("fff666", "d1", 1_000)
    await store.claim([claim], T0)
    await store.complete([Completion("m-1", "d1", claim.request_hash, b"declined", 1_000, claim.counters)], T0 + 1)
    retry = pays("fff666", "d2", 1_000)
    await store.claim([retry], T0 + 2)
    await store.complete(
        [Completion("m-1", "d2", retry.request_hash, None, 1_000, retry.counters)], T0 + 3
    )  # given back
    (after,) = await store.claim([pays("fff666", "d3", 1_000)], T0 + 4)
    activity = parse_activity(after.activity[0], None)
    assert (activity.count_1h, activity.declines_1h) == (2, 1)


async def test_windows_slide(store: StateStore) -> None:
    await store.claim([pays("ggg777", "w1", 10_000)], T0)
    half_an_hour_later = T0 + 1_800
    (later,) = await store.claim([pays("ggg777", "w2", 10_000)], half_an_hour_later)
    assert parse_activity(later.activity[0], None).count_1h == 1
    # Two hours on, the first hour's payments have left the hour window; both are in 24 h.
    (much_later,) = await store.claim([pays("ggg777", "w3", 10_000)], T0 + 7_200)
    activity = parse_activity(much_later.activity[0], None)
    assert activity.count_1h < 1.0
    assert activity.sum_24h_usd == 200.0
    assert activity.idle_seconds == 5_400


async def test_distinct_parties_stop_at_what_is_kept(store: StateStore) -> None:
    claims = [pays("hhh888", f"f{i}", 100, to=f"{i:012x}") for i in range(DISTINCT_KEPT + 8)]
    await store.claim(claims, T0)
    (after,) = await store.claim([pays("hhh888", "f-last", 100)], T0 + 1)
    assert parse_activity(after.activity[0], None).destinations_24h == DISTINCT_KEPT


async def test_every_store_answers_alike(redis_prefix: str, request: pytest.FixtureRequest) -> None:
    """One random stream of payments, declines and give-backs through each store: the same
    answers, byte for byte."""
    cluster_url = request.getfixturevalue("redis_cluster_url")
    rng = random.Random(7)
    holders = [f"{rng.getrandbits(48):012x}" for _ in range(6)]
    steps = []
    now = T0
    for n in range(120):
        now += rng.choice((1.0, 30.0, 600.0, 3_700.0, 40_000.0))
        payer, to = rng.choice(holders), rng.choice([*holders, "", ""])
        steps.append((now, pays(payer, f"s{n}", rng.randint(1, 2_000_000), to=to, near=rng.random() < 0.2)))
    answers: dict[str, list[tuple[bytes, ...]]] = {}
    for kind in ("memory", "redis", "redis-cluster"):
        made = make(kind, f"{redis_prefix}:{kind}", cluster_url)
        try:
            seen = []
            for n, (at, claim) in enumerate(steps):
                (outcome,) = await made.claim([claim], at)
                seen.append(outcome.activity)
                if n % 3 == 0:
                    response = b"declined" if n % 2 else None
                    done = Completion("m-1", claim.idempotency_key, claim.request_hash, response, 1, claim.counters)
                    await made.complete([done], at)
            answers[kind] = seen
        finally:
            await made.close()
            await drop_redis_keys(
                cluster_url if kind == "redis-cluster" else REDIS_URL,
                f"{redis_prefix}:{kind}",
                cluster=kind == "redis-cluster",
            )
    assert answers["memory"] == answers["redis"] == answers["redis-cluster"]
