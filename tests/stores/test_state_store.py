"""The StateStore contract, run against every implementation (memory, Redis, Redis Cluster).

Each test is written once and takes a `backend` that makes stores of one kind;
time is the `now` passed in, except where Redis's own TTLs are under test.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from switch.domain.errors import StartupError
from switch.domain.models import mask_pan
from switch.stores.base import Claim, ClaimOutcome, ClaimStatus, Completion, Counter, StateStore, TierSource
from switch.stores.memory import MemoryStateStore
from switch.stores.redis import GIVEN_BACK, NOT_SERVED_EVENT, KeyNotServed, RedisStateStore, supports
from switch.stores.redis_cluster import RedisClusterStateStore
from switch.telemetry.metrics import Counter as MetricCounter
from tests.conftest import REDIS_URL, drop_redis_keys

T0 = 1_700_000_000.0
LEASE = 30.0
PAN = "4111111111111111"

NEW = ClaimOutcome(ClaimStatus.NEW)
IN_FLIGHT = ClaimOutcome(ClaimStatus.IN_FLIGHT)
CONFLICT = ClaimOutcome(ClaimStatus.CONFLICT)
COUNT_LIMIT = ClaimOutcome(ClaimStatus.COUNT_LIMIT)
AMOUNT_LIMIT = ClaimOutcome(ClaimStatus.AMOUNT_LIMIT)


class Backend:
    """Makes stores of one kind, lets their stored time run out, and dumps what they hold."""

    def __init__(self, kind: str, redis_prefix: str, cluster_url: str = "") -> None:
        self.kind = kind
        self.prefix = redis_prefix
        self.cluster_url = cluster_url
        self.stores: list[StateStore] = []

    async def make(
        self, retention_seconds: float = 3600.0, lease_seconds: float = LEASE, tier_source: TierSource | None = None
    ) -> StateStore:
        return self.make_now(retention_seconds, lease_seconds, tier_source)

    def make_now(
        self, retention_seconds: float = 3600.0, lease_seconds: float = LEASE, tier_source: TierSource | None = None
    ) -> StateStore:
        """A store of this kind; tier_source: where it reads holders' KYC tiers from."""
        store: StateStore
        if self.kind == "memory":
            store = MemoryStateStore(retention_seconds, lease_seconds, tier_source=tier_source)
        elif self.kind == "redis":
            store = RedisStateStore.from_url(
                REDIS_URL,
                prefix=self.prefix,
                retention_seconds=retention_seconds,
                lease_seconds=lease_seconds,
                tier_source=tier_source,
            )
        else:
            store = RedisClusterStateStore.from_url(
                self.cluster_url,
                prefix=self.prefix,
                retention_seconds=retention_seconds,
                lease_seconds=lease_seconds,
                tier_source=tier_source,
            )
        self.stores.append(store)
        return store

    async def let_expire(self, seconds: float) -> None:
        """The memory store expires by the `now` it is given; Redis by its own clock."""
        if self.kind != "memory":
            await asyncio.sleep(seconds)

    async def dump(self) -> bytes:
        if self.kind == "memory":
            return repr([vars(store) for store in self.stores]).encode()
        client: Any = (
            aioredis.Redis.from_url(REDIS_URL) if self.kind == "redis" else RedisCluster.from_url(self.cluster_url)
        )
        try:
            parts: list[bytes] = []
            async for key in client.scan_iter(match=f"{self.prefix}:*"):
                value: Any = await (client.hgetall(key) if await client.type(key) == b"hash" else client.get(key))
                parts.append(key + b"=" + repr(value).encode())
            return b"\n".join(parts)
        finally:
            await client.aclose()

    async def close(self) -> None:
        for store in self.stores:
            await store.close()
        if self.kind == "redis-cluster":
            await drop_redis_keys(self.cluster_url, self.prefix, cluster=True)


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def backend(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[Backend]:
    kind = str(request.param)
    # The cluster starts only when a test asks for it, once per session.
    cluster_url = request.getfixturevalue("redis_cluster_url") if kind == "redis-cluster" else ""
    made = Backend(kind, redis_prefix, cluster_url)
    yield made
    await made.close()


@pytest.fixture
async def store(backend: Backend) -> StateStore:
    return await backend.make()


def claim(key: str, amount: int = 100, *counters: Counter, merchant: str = "m-1", request: str = "h1") -> Claim:
    return Claim(merchant, key, request, amount, counters)


def done(
    key: str, response: bytes | None, amount: int = 100, *release: Counter, merchant: str = "m-1", request: str = "h1"
) -> Completion:
    return Completion(merchant, key, request, response, amount, release)


def calls(limit: int, name: str = "calls", subject: str = "m:m-1", window: int = 60) -> Counter:
    return Counter(subject, name, window, limit, by_amount=False)


# On the test cluster's even split of slots, "m:m-1" and "i:fp-2" live on different
# primaries, so the suite takes the Cluster's two-step path wherever both are used.
def amount(limit: int, name: str = "amount", subject: str = "i:fp-2", window: int = 60) -> Counter:
    return Counter(subject, name, window, limit, by_amount=True)


async def test_empty_batches(store: StateStore) -> None:
    assert await store.claim([], T0) == []
    await store.complete([], T0)


async def test_claim_then_in_flight_then_replay(store: StateStore) -> None:
    assert await store.claim([claim("k1")], T0) == [NEW]
    assert await store.claim([claim("k1")], T0 + 1) == [IN_FLIGHT]
    await store.complete([done("k1", b"answer")], T0 + 2)
    assert await store.claim([claim("k1")], T0 + 3) == [ClaimOutcome(ClaimStatus.REPLAY, b"answer")]


async def test_a_different_request_under_a_used_key_conflicts(store: StateStore) -> None:
    await store.claim([claim("pending"), claim("finished")], T0)
    await store.complete([done("finished", b"answer")], T0)
    outcomes = await store.claim([claim("pending", request="h2"), claim("finished", request="h2")], T0 + 1)
    assert outcomes == [CONFLICT, CONFLICT]


async def test_the_same_key_twice_in_one_batch(store: StateStore) -> None:
    assert await store.claim([claim("k1"), claim("k1")], T0) == [NEW, IN_FLIGHT]


async def test_keys_are_scoped_by_merchant(store: StateStore) -> None:
    assert await store.claim([claim("k1", merchant="m-1"), claim("k1", merchant="m-2")], T0) == [NEW, NEW]


async def test_an_expired_lease_is_taken_over(store: StateStore) -> None:
    await store.claim([claim("k1")], T0)
    assert await store.claim([claim("k1")], T0 + LEASE - 0.5) == [IN_FLIGHT]
    assert await store.claim([claim("k1")], T0 + LEASE) == [NEW]
    # The taker holds a fresh lease from its own claim time.
    assert await store.claim([claim("k1")], T0 + LEASE + 1) == [IN_FLIGHT]


async def test_a_given_back_key_can_be_claimed_again(store: StateStore) -> None:
    await store.claim([claim("k1")], T0)
    await store.complete([done("k1", None)], T0 + 1)
    assert await store.claim([claim("k1")], T0 + 2) == [NEW]


async def test_responses_replay_byte_for_byte(store: StateStore) -> None:
    binary, empty = bytes(range(256)), b""
    await store.claim([claim("binary"), claim("empty")], T0)
    await store.complete([done("binary", binary), done("empty", empty)], T0)
    outcomes = await store.claim([claim("binary"), claim("empty")], T0 + 1)
    assert outcomes == [ClaimOutcome(ClaimStatus.REPLAY, binary), ClaimOutcome(ClaimStatus.REPLAY, empty)]


async def test_count_limit(store: StateStore) -> None:
    limit = calls(2)
    outcomes = await store.claim([claim(f"k{i}", 100, limit) for i in range(3)], T0)
    assert outcomes == [NEW, NEW, COUNT_LIMIT]
    # The declined item still holds its key until the caller completes it.
    assert await store.claim([claim("k2", 100, limit)], T0 + 1) == [IN_FLIGHT]


async def test_amount_limit(store: StateStore) -> None:
    limit = amount(250)
    outcomes = await store.claim([claim(f"k{i}", 100, limit) for i in range(3)], T0)
    assert outcomes == [NEW, NEW, AMOUNT_LIMIT]
    assert await store.claim([claim("k3", 50, limit)], T0) == [NEW]


async def test_an_item_over_one_limit_moves_no_counter(store: StateStore) -> None:
    count, total = calls(2), amount(100)
    assert await store.claim([claim("a", 80, count, total)], T0) == [NEW]
    assert await store.claim([claim("b", 30, count, total)], T0) == [AMOUNT_LIMIT]
    # Had "b" moved the count, "c" would be over it.
    assert await store.claim([claim("c", 20, count, total)], T0) == [NEW]
    assert await store.claim([claim("d", 0, count, total)], T0) == [COUNT_LIMIT]


async def test_the_first_counter_over_its_limit_names_the_decline(store: StateStore) -> None:
    # Both the merchant's: on a Cluster, counters on the merchant's node are checked
    # first (test_redis_cluster.py), so the order holds among one subject's counters.
    count, total = calls(0), amount(0, subject="m:m-1")
    outcomes = await store.claim([claim("a", 1, count, total), claim("b", 1, total, count)], T0)
    assert outcomes == [COUNT_LIMIT, AMOUNT_LIMIT]


async def test_complete_releases_counters(store: StateStore) -> None:
    count, total = calls(1), amount(100)
    await store.claim([claim("a", 100, count, total)], T0)
    assert await store.claim([claim("b", 0, count, total)], T0) == [COUNT_LIMIT]
    await store.complete([done("a", b"declined", 100, count, total), done("b", None)], T0 + 1)
    assert await store.claim([claim("c", 100, count, total)], T0 + 2) == [NEW]


async def test_a_release_never_takes_a_counter_below_zero(store: StateStore) -> None:
    count = calls(1)
    await store.claim([claim("a", 100, count)], T0)
    await store.complete([done("a", b"x", 100, count, count, count)], T0)
    assert await store.claim([claim("b", 100, count), claim("c", 100, count)], T0) == [NEW, COUNT_LIMIT]


async def test_retained_keys_and_counter_windows_expire(backend: Backend) -> None:
    store = await backend.make(retention_seconds=1.0)
    window = calls(1, window=1)
    await store.claim([claim("finished", 100, window), claim("pending")], T0)
    await store.complete([done("finished", b"answer")], T0)
    assert await store.claim([claim("other", 100, window)], T0) == [COUNT_LIMIT]
    await backend.let_expire(1.1)
    later = T0 + 1.1
    outcomes = await store.claim([claim("finished", 100, window), claim("pending"), claim("x", 100, window)], later)
    assert outcomes == [NEW, NEW, COUNT_LIMIT]


@pytest.mark.parametrize("counter", [calls(7), amount(700)], ids=["count", "amount"])
async def test_exactly_n_pass_a_limit_of_n_under_concurrency(store: StateStore, counter: Counter) -> None:
    racers = [store.claim([claim(f"k{i}", 100, counter)], T0) for i in range(200)]
    outcomes = [batch[0] for batch in await asyncio.gather(*racers)]
    declined = AMOUNT_LIMIT if counter.by_amount else COUNT_LIMIT
    assert outcomes.count(NEW) == 7
    assert outcomes.count(declined) == 193


async def test_no_card_number_is_stored(backend: Backend, store: StateStore) -> None:
    fingerprint = hashlib.sha256(b"key" + PAN.encode()).hexdigest()
    per_card = amount(10_000, subject=f"i:{fingerprint}")
    response = orjson.dumps({"masked": mask_pan(PAN), "code": "00"})
    await store.claim([claim("k1", 100, per_card, request=fingerprint), claim("k2", 100, per_card)], T0)
    await store.complete([done("k1", response, request=fingerprint), done("k2", None, 100, per_card)], T0)
    dump = await backend.dump()
    assert mask_pan(PAN).encode() in dump  # the dump does show what was stored
    assert PAN.encode() not in dump


# Redis only: what the contract cannot see.


@pytest.fixture
async def redis_store(redis_prefix: str) -> AsyncIterator[RedisStateStore]:
    made = RedisStateStore.from_url(REDIS_URL, prefix=redis_prefix, retention_seconds=600, lease_seconds=LEASE)
    yield made
    await made.close()


async def test_redis_key_layout_and_expiry(redis_store: RedisStateStore, redis_prefix: str) -> None:
    window = Counter("i:fp-9", "c-1", 60, 5, by_amount=False)
    await redis_store.claim([claim("k1", 100, window, merchant="m-7")], T0)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = {key.decode() async for key in client.scan_iter(match=f"{redis_prefix}:*")}
        assert keys == {f"{redis_prefix}:{{m:m-7}}:i:k1", f"{redis_prefix}:{{i:fp-9}}:v:c-1"}
        assert redis_store.keys.idempotency_key("m-7", "k1") == f"{redis_prefix}:{{m:m-7}}:i:k1"
        assert await client.type(f"{redis_prefix}:{{m:m-7}}:i:k1") == b"string"
        assert 595_000 < await client.pttl(f"{redis_prefix}:{{m:m-7}}:i:k1") <= 600_000
        assert 55 < await client.ttl(f"{redis_prefix}:{{i:fp-9}}:v:c-1") <= 60
    finally:
        await client.aclose()


async def test_redis_replays_a_response_holding_the_separator_byte_exact(redis_store: RedisStateStore) -> None:
    response = b"\x1f" + b"a\x1f\x1fb\x00\xff" + b"\x1f"
    assert await redis_store.claim([claim("k1")], T0) == [NEW]
    await redis_store.complete([done("k1", response)], T0)
    assert await redis_store.claim([claim("k1")], T0 + 1) == [ClaimOutcome(ClaimStatus.REPLAY, response)]
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        assert await client.get(redis_store.keys.idempotency_key("m-1", "k1")) == b"rh1\x1f" + response
    finally:
        await client.aclose()
    # A different request under the same key still conflicts, whatever the response holds.
    assert await redis_store.claim([claim("k1", request="h2")], T0 + 2) == [CONFLICT]


async def test_redis_takes_over_a_claim_past_its_lease(redis_store: RedisStateStore) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    key = redis_store.keys.idempotency_key("m-1", "k1")
    try:
        assert await redis_store.claim([claim("k1")], T0) == [NEW]
        assert await redis_store.claim([claim("k1")], T0 + LEASE - 1) == [IN_FLIGHT]
        assert await client.get(key) == f"th1\x1f{T0!r}".encode()
        assert await redis_store.claim([claim("k1")], T0 + LEASE + 1) == [NEW]  # the holder crashed
        assert await client.get(key) == f"th1\x1f{T0 + LEASE + 1!r}".encode()
        assert 595_000 < await client.pttl(key) <= 600_000
        assert await redis_store.claim([claim("k1")], T0 + LEASE + 2) == [IN_FLIGHT]  # the new lease holds
        # A different request conflicts with an in-flight claim, even one past its lease.
        assert await redis_store.claim([claim("k1", request="h2")], T0 + 10 * LEASE) == [CONFLICT]
        assert await client.get(key) == f"th1\x1f{T0 + LEASE + 1!r}".encode()
    finally:
        await client.aclose()


async def test_redis_conflict_and_replay_of_a_done_key(redis_store: RedisStateStore) -> None:
    await redis_store.claim([claim("k1"), claim("k2")], T0)
    await redis_store.complete([done("k1", b"one"), done("k2", b"two")], T0)
    assert await redis_store.claim(
        [claim("k1", request="other"), claim("k1"), claim("k2"), claim("k2", request="h1\x00")], T0 + 1
    ) == [CONFLICT, ClaimOutcome(ClaimStatus.REPLAY, b"one"), ClaimOutcome(ClaimStatus.REPLAY, b"two"), CONFLICT]


async def test_redis_completion_keeps_the_retention_and_a_give_back_deletes(redis_store: RedisStateStore) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await redis_store.claim([claim("k1"), claim("k2")], T0)
        await redis_store.complete([done("k1", b"answer"), done("k2", None)], T0)
        stored = redis_store.keys.idempotency_key("m-1", "k1")
        assert await client.get(stored) == b"rh1\x1fanswer"
        assert 595_000 < await client.pttl(stored) <= 600_000
        assert await client.exists(redis_store.keys.idempotency_key("m-1", "k2")) == 0
        assert await redis_store.claim([claim("k2")], T0 + 1) == [NEW]
    finally:
        await client.aclose()


async def test_redis_a_declined_claim_keeps_the_key_claimed(redis_store: RedisStateStore) -> None:
    assert await redis_store.claim([claim("k1", 100, calls(0))], T0) == [COUNT_LIMIT]
    assert await redis_store.claim([claim("k2", 100, amount(50))], T0) == [AMOUNT_LIMIT]
    assert await redis_store.claim([claim("k1"), claim("k2")], T0 + 1) == [IN_FLIGHT, IN_FLIGHT]


async def test_redis_a_batch_with_a_broken_key_fails_whole_and_holds_nothing(redis_prefix: str) -> None:
    events = MetricCounter("switch_state_store_events", "")
    redis_store = RedisStateStore.from_url(
        REDIS_URL, prefix=redis_prefix, retention_seconds=600, lease_seconds=LEASE, events=events
    )
    client = aioredis.Redis.from_url(REDIS_URL)
    count, limit_zero = calls(5), calls(0, name="none")
    try:
        await client.hset(redis_store.keys.idempotency_key("m-1", "broken"), "h", "x")  # a hash where a string belongs
        batch = [claim("fine", 100, count), claim("declined", 100, limit_zero), claim("broken")]
        with pytest.raises(KeyNotServed, match="WRONGTYPE"):
            await redis_store.claim(batch, T0)
        assert events.values == {NOT_SERVED_EVENT: 1, GIVEN_BACK: 2}
        # The keys the failed call took are free again and its counters are back.
        assert await client.exists(redis_store.keys.idempotency_key("m-1", "fine")) == 0
        assert await client.exists(redis_store.keys.idempotency_key("m-1", "declined")) == 0
        assert await client.get(redis_store.keys.counter_key(count)) in (None, b"0")
        assert await redis_store.claim(batch[:2], T0 + 1) == [NEW, COUNT_LIMIT]
    finally:
        await client.aclose()
        await redis_store.close()


async def test_redis_ignores_a_key_of_the_earlier_hash_layout(redis_store: RedisStateStore, redis_prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.hset(f"{redis_prefix}:{{m:m-1}}:k:k1", mapping={"h": "h1", "r": "old"})
        assert await redis_store.claim([claim("k1")], T0) == [NEW]
    finally:
        await client.aclose()


async def test_redis_sends_one_command_per_batch(redis_store: RedisStateStore) -> None:
    counters = (calls(1000), amount(10**9))
    await redis_store.claim([claim("warm-up")], T0)  # loads the scripts: NOSCRIPT costs one more trip once
    await redis_store.complete([done("warm-up", b"x")], T0)
    sent = _count_commands(redis_store)
    await redis_store.claim([claim(f"k{i}", 100, *counters) for i in range(50)], T0)
    await redis_store.complete([done(f"k{i}", b"x", 100, *counters) for i in range(50)], T0)
    assert sent == ["EVALSHA", "EVALSHA"]


def _count_commands(store: RedisStateStore) -> list[str]:
    """Records the name of every command the store's client sends from now on."""
    client = store._client
    sent: list[str] = []
    send: Callable[..., Awaitable[Any]] = client.execute_command

    async def counted(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return await send(*args, **options)

    client.execute_command = counted  # type: ignore[method-assign]
    return sent


@pytest.mark.parametrize(
    ("version", "supported"),
    [
        ("7.0.15", True),
        ("7.2.4", True),
        ("8.0.0", True),
        ("10.1", True),
        ("6.2.14", False),
        ("5.0.7", False),
        ("7", True),
    ],
)
def test_the_scripts_need_redis_7(version: str, supported: bool) -> None:
    assert supports(version) is supported


async def test_this_redis_passes_the_start_check(redis_store: RedisStateStore) -> None:
    await redis_store.check_server()  # the test servers run Redis 7


async def test_an_old_redis_is_refused_at_start(redis_store: RedisStateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    async def old_info(section: str) -> dict[str, str]:
        return {"redis_version": "6.2.14"}

    monkeypatch.setattr(redis_store._client, "info", old_info)
    with pytest.raises(StartupError, match=r"stores\.redis_url: Redis 6\.2\.14; the switch needs Redis 7\.0 or later"):
        await redis_store.check_server()
