"""The production stores' batch encodings: what the contract suites do not reach.

The Redis store sends a batch as JSON arrays and lets its scripts build the key
names; the PostgreSQL journal sends a batch as JSON to one
statement. These tests pin the edges of those encodings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest
import redis.asyncio as aioredis

from switch.domain.models import TransactionStatus
from switch.stores.base import Claim, ClaimOutcome, ClaimStatus, Completion, Counter
from switch.stores.postgres import PostgresJournal
from switch.stores.redis import RedisStateStore
from tests.conftest import POSTGRES_DSN, REDIS_URL
from tests.stores.test_journal import T0, authorization, entry, record, unknown

NEW = ClaimOutcome(ClaimStatus.NEW)


@pytest.fixture
async def redis_store(redis_prefix: str) -> AsyncIterator[RedisStateStore]:
    made = RedisStateStore.from_url(REDIS_URL, prefix=redis_prefix, retention_seconds=600, lease_seconds=30)
    yield made
    await made.close()


@pytest.fixture
async def journal(pg_schema: str) -> AsyncIterator[PostgresJournal]:
    made = await PostgresJournal.open(POSTGRES_DSN, schema=pg_schema)
    yield made
    await made.close()


async def test_the_scripts_build_the_key_names_the_store_documents(redis_store: RedisStateStore) -> None:
    merchant, key = "m:{ü}", "order: {42} é"
    counter = Counter("i:fp {x}", "c60:ünï", 60, 5, by_amount=False)
    await redis_store.claim([Claim(merchant, key, "h1", 100, (counter,))], T0)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        held = await client.get(redis_store.keys.idempotency_key(merchant, key))
        assert isinstance(held, bytes) and held.startswith(b"th1\x1f")  # in flight: 't', request hash, \x1f, claim time
        assert float(held.split(b"\x1f", 1)[1]) == T0
        assert await client.get(redis_store.keys.counter_key(counter)) == b"1"
    finally:
        await client.aclose()


async def test_a_mixed_batch_answers_in_order(redis_store: RedisStateStore) -> None:
    shared = Counter("m:m-1", "a60", 60, 1_000, by_amount=True)
    equal = Counter("m:m-1", "a60", 60, 1_000, by_amount=True)  # the same counter, another object
    await redis_store.claim([Claim("m-1", "done-1", "h", 100), Claim("m-1", "done-2", "h", 100)], T0)
    await redis_store.complete(
        [Completion("m-1", "done-1", "h", b"one\x1f\x00"), Completion("m-1", "done-2", "h", b"")], T0
    )
    batch = [
        Claim("m-1", "new-1", "h", 400, (shared,)),
        Claim("m-1", "done-1", "h", 100),
        Claim("m-1", "new-1", "h", 100),
        Claim("m-1", "done-2", "other", 100),
        Claim("m-1", "new-2", "h", 500, (equal,)),
        Claim("m-1", "done-2", "h", 100),
        Claim("m-1", "new-3", "h", 200, (shared, equal)),
    ]
    assert await redis_store.claim(batch, T0) == [
        NEW,
        ClaimOutcome(ClaimStatus.REPLAY, b"one\x1f\x00"),
        ClaimOutcome(ClaimStatus.IN_FLIGHT),
        ClaimOutcome(ClaimStatus.CONFLICT),
        NEW,
        ClaimOutcome(ClaimStatus.REPLAY, b""),
        ClaimOutcome(ClaimStatus.AMOUNT_LIMIT),  # 900 + 200 does not fit under 1,000
    ]


async def test_a_counter_shared_across_a_batch_moves_in_order_and_is_written_once(
    redis_store: RedisStateStore,
) -> None:
    merchant = Counter("m:m-1", "c60", 60, 7, by_amount=False)
    outcomes = await redis_store.claim([Claim("m-1", f"k{i}", "h", 1, (merchant,)) for i in range(10)], T0)
    assert outcomes == [NEW] * 7 + [ClaimOutcome(ClaimStatus.COUNT_LIMIT)] * 3
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        key = redis_store.keys.counter_key(merchant)
        assert await client.get(key) == b"7"
        assert 0 < await client.ttl(key) <= 60  # created by this batch: it got its window
        await client.expire(key, 30)
        await redis_store.claim(
            [Claim("m-1", "later", "h", 1, (Counter("m:m-1", "c60", 60, 100, by_amount=False),))], T0
        )
        assert await client.get(key) == b"8"
        assert await client.ttl(key) <= 30  # an existing counter keeps its window
    finally:
        await client.aclose()


async def test_amounts_beyond_a_doubles_exact_range_add_up_exactly(redis_store: RedisStateStore) -> None:
    total = Counter("m:m-1", "a60", 60, 2**63 - 1, by_amount=True)
    amounts = [2**53 + 1, 2**51 + 3, 2**51 + 5, 2**51 + 7, 11]  # one beyond 2**52; the rest cross it together
    claims = [Claim("m-1", f"big-{i}", "h", amount, (total,)) for i, amount in enumerate(amounts)]
    assert await redis_store.claim(claims, T0) == [NEW] * len(amounts)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        stored = await client.get(redis_store.keys.counter_key(total))
        assert stored is not None and int(stored) == sum(amounts)
    finally:
        await client.aclose()


async def test_a_request_hash_holding_the_separator_is_refused(redis_store: RedisStateStore) -> None:
    # A stored record is cut at the first \x1f after its request hash.
    with pytest.raises(ValueError, match="x1f"):
        await redis_store.claim([Claim("m-1", "ok", "h", 1), Claim("m-1", "k", "bad\x1fhash", 1)], T0)
    with pytest.raises(ValueError, match="x1f"):
        await redis_store.complete([Completion("m-1", "k", "h\x1f", b"x")], T0)
    assert await redis_store.claim([Claim("m-1", "ok", "h", 1)], T0) == [NEW]  # nothing was sent


async def test_keys_and_counter_names_travel_whatever_they_hold(redis_store: RedisStateStore) -> None:
    # JSON carries any text: quotes, backslashes, the separator, non-ASCII.
    odd = 'k"\\\x1f\u00e9\u4e2d'
    counter = Counter(f"m:{odd}", f"c60:{odd}", 60, 1, by_amount=False)
    assert await redis_store.claim([Claim(odd, odd, "h", 1, (counter,))], T0) == [NEW]
    assert await redis_store.claim([Claim(odd, f"{odd}2", "h", 1, (counter,))], T0) == [
        ClaimOutcome(ClaimStatus.COUNT_LIMIT)
    ]
    await redis_store.complete([Completion(odd, odd, "h", b"answer")], T0)
    assert await redis_store.claim([Claim(odd, odd, "h", 1, (counter,))], T0) == [
        ClaimOutcome(ClaimStatus.REPLAY, b"answer")
    ]
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        assert await client.get(redis_store.keys.idempotency_key(odd, odd)) == b"rh\x1fanswer"
        assert await client.get(redis_store.keys.counter_key(counter)) == b"1"
    finally:
        await client.aclose()


async def test_conflicting_items_leave_no_transaction_or_reversal(journal: PostgresJournal) -> None:
    stored = unknown(1)
    await journal.record_authorizations([stored])
    clash = replace(record(2, status=TransactionStatus.UNKNOWN), idempotency_key="key-1")
    clash_entry = replace(entry(clash), idempotency_key="key-1")
    results = await journal.record_authorizations([unknown(3), (clash, clash_entry), authorization(4)])
    assert results == [None, stored[1], None]
    assert await journal.get_transaction("tx-2") is None
    pending = await journal.due_reversals(T0 + 100, 10)
    assert sorted(p.transaction_id for p in pending) == ["tx-1", "tx-3"]


async def test_a_clashing_transaction_id_fails_the_whole_batch(journal: PostgresJournal) -> None:
    await journal.record_authorizations([authorization(1)])
    same_id = replace(authorization(2)[0], transaction_id="tx-1")
    with pytest.raises(asyncpg.UniqueViolationError):
        await journal.record_authorizations(
            [authorization(3), (same_id, replace(entry(same_id), idempotency_key="key-2"))]
        )
    assert await journal.get_transaction("tx-3") is None
    assert await journal.find_entries([("m-1", "key-2"), ("m-1", "key-3")]) == {}
