"""Redis key names cannot be injected through the identifiers that go into them.

The scripts build each key name from its parts; a merchant id or idempotency key
holding '{', '}' or ':' must not make one item's key another item's. Run on one
Redis primary and on the test cluster (the cluster places keys by the hash tag the
store computes, so a tag it computes differently from the scripts' fails there),
and on the memory store, whose answers are the contract's.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from redis.crc import key_slot

from switch.stores.base import Claim, ClaimOutcome, ClaimStatus, Completion, Counter, StateStore
from switch.stores.memory import MemoryStateStore
from switch.stores.redis import KeyLayout, RedisStateStore
from switch.stores.redis_cluster import RedisClusterStateStore
from tests.conftest import REDIS_URL, drop_redis_keys

T0 = 1_700_000_000.0
NEW = ClaimOutcome(ClaimStatus.NEW)
COUNT_LIMIT = ClaimOutcome(ClaimStatus.COUNT_LIMIT)
IN_FLIGHT = ClaimOutcome(ClaimStatus.IN_FLIGHT)

# Pairs that concatenated into the same key name (the first two), pairs that only a
# wrong encoding would merge (an escaped character against its escape written out),
# and the characters one by one, non-ASCII included.
PAIRS = [
    ("a", "b}:i:c"),
    ("a}:i:b", "c"),
    ("a}", "k"),
    ("a%7D", "k"),
    ("a%257D", "k"),
    ("{a", "k"),
    ("a{", "k"),
    ("a:", "k"),
    (":a", "k"),
    ("a", ":k"),
    ("%", "%"),
    ("ü}:i:€", "k"),
    ("ü", "€}:i:k"),
    ("中{文}:", "{}"),
]


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    kind = str(request.param)
    prefix = f"test:keys:{secrets.token_hex(6)}"
    made: StateStore
    if kind == "memory":
        made = MemoryStateStore(600, 30)
        url = ""
    elif kind == "redis":
        url = REDIS_URL
        made = RedisStateStore.from_url(url, prefix=prefix, retention_seconds=600, lease_seconds=30)
    else:
        url = request.getfixturevalue("redis_cluster_url")
        made = RedisClusterStateStore.from_url(url, prefix=prefix, retention_seconds=600, lease_seconds=30)
    yield made
    await made.close()
    if url:
        await drop_redis_keys(url, prefix, cluster=kind == "redis-cluster")


@pytest.mark.parametrize("victim_first", [True, False])
async def test_a_merchant_id_cannot_make_its_counter_another_items_key(store: StateStore, victim_first: bool) -> None:
    # Concatenated, the counter of merchant "m-1}:i:victim" was named
    # sw:{m:m-1}:i:victim}:v:c60, the idempotency key of ("m-1", "victim}:v:c60"). Victim
    # first, the script read that claim as the counter (no number) and answered a reply
    # the store could not read, failing the whole batch and leaving the items before it
    # claimed; attacker first, the counter's first write replaced the claim, and the
    # next claim of that key failed the script ("arithmetic on ... a nil value").
    attacker = "m-1}:i:victim"
    own = Counter("m:" + attacker, "c60", 60, 2, by_amount=False)
    innocent = Counter("m:m-2", "c60", 60, 5, by_amount=False)
    pair = [Claim("m-1", "victim}:v:c60", "h", 100), Claim(attacker, "k1", "h", 100, (own,))]
    batch = [
        Claim("m-2", "first", "h", 100, (innocent,)),
        *(pair if victim_first else pair[::-1]),
        Claim("m-2", "last", "h", 100, (innocent,)),
    ]
    assert await store.claim(batch, T0) == [NEW] * 4
    assert await store.claim(pair, T0) == [IN_FLIGHT] * 2  # each still holds its own claim
    again = [Claim(attacker, "k2", "h", 100, (own,)), Claim(attacker, "k3", "h", 100, (own,))]
    assert await store.claim(again, T0) == [NEW, COUNT_LIMIT]  # its own counter, at 2 of 2
    await store.complete(
        [Completion(c.merchant_id, c.idempotency_key, "h", c.idempotency_key.encode()) for c in batch], T0
    )
    assert await store.claim(batch, T0) == [ClaimOutcome(ClaimStatus.REPLAY, c.idempotency_key.encode()) for c in batch]


async def test_different_merchant_and_key_pairs_never_share_a_key(store: StateStore) -> None:
    # Each pair under its own request hash: a shared key would answer CONFLICT.
    claims = [Claim(merchant, key, f"h{i}", 100) for i, (merchant, key) in enumerate(PAIRS)]
    assert await store.claim(claims, T0) == [NEW] * len(PAIRS)
    answers = [f"answer {i}".encode() for i in range(len(PAIRS))]
    await store.complete(
        [Completion(c.merchant_id, c.idempotency_key, c.request_hash, a) for c, a in zip(claims, answers, strict=True)],
        T0,
    )
    assert await store.claim(claims, T0) == [ClaimOutcome(ClaimStatus.REPLAY, a) for a in answers]


async def test_every_merchants_counter_is_its_own_whatever_its_id(store: StateStore) -> None:
    merchants = sorted({merchant for merchant, _ in PAIRS})
    counters = {m: Counter("m:" + m, "c60:1", 60, 1, by_amount=False) for m in merchants}
    first = [Claim(m, "first", "h", 1, (counters[m],)) for m in merchants]
    second = [Claim(m, "second", "h", 1, (counters[m],)) for m in merchants]
    assert await store.claim(first + second, T0) == [NEW] * len(merchants) + [COUNT_LIMIT] * len(merchants)


def test_the_layout_names_every_pair_apart_and_keeps_a_merchant_on_one_slot() -> None:
    layout = KeyLayout("sw", 600, 30)
    keys = {layout.idempotency_key(merchant, key) for merchant, key in PAIRS}
    counters = {layout.counter_key(Counter("m:" + merchant, "c60", 60, 1, False)) for merchant, _ in PAIRS}
    assert len(keys) == len(PAIRS) and not keys & counters
    for merchant, key in PAIRS:
        name = layout.idempotency_key(merchant, key)
        # One hash tag, the merchant's whole id: its key and its counters share a slot.
        assert name.count("{") == name.count("}") == 1, name
        counter = layout.counter_key(Counter("m:" + merchant, "c60", 60, 1, False))
        assert (
            key_slot(name.encode()) == key_slot(counter.encode()) == key_slot(layout.tagged("m:" + merchant).encode())
        )
    # Plain ids keep the names they had, so an upgrade finds their keys where they were.
    assert layout.idempotency_key("m-1", "3f0c-9a.b_c") == "sw:{m:m-1}:i:3f0c-9a.b_c"
    assert layout.counter_key(Counter("i:ab12", "a60:USD:7", 60, 1, True)) == "sw:{i:ab12}:v:a60:USD:7"
