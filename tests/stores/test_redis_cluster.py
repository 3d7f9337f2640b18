"""The Redis Cluster store beyond the shared contract: keys spread over primaries, the
two steps of a claim across nodes, slots that move, and failures that give back.

The cluster is real (tests/redis_cluster.py: three primaries on this machine). Keys
are placed on chosen primaries by their hash tags' slots.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisError

from loadtests.redis_cluster import free_ports, node_id, node_of_slot, running_cluster
from switch.stores.base import Claim, ClaimOutcome, ClaimStatus, Completion, Counter
from switch.stores.redis import GIVEN_BACK, NOT_SERVED_EVENT, SLOT_MAP_READ, KeyNotServed
from switch.stores.redis_cluster import RedisClusterStateStore
from switch.telemetry.metrics import Counter as MetricCounter
from tests.conftest import drop_redis_keys

T0 = 1_700_000_000.0
NEW = ClaimOutcome(ClaimStatus.NEW)


@pytest.fixture
async def prefix(redis_cluster_url: str) -> AsyncIterator[str]:
    made = f"test:cluster:{secrets.token_hex(6)}"
    yield made
    await drop_redis_keys(redis_cluster_url, made, cluster=True)


@pytest.fixture
def events() -> MetricCounter:
    return MetricCounter("switch_state_store_events", "")


@pytest.fixture
async def store(redis_cluster_url: str, prefix: str, events: MetricCounter) -> AsyncIterator[RedisClusterStateStore]:
    made = RedisClusterStateStore.from_url(
        redis_cluster_url, prefix=prefix, retention_seconds=600, lease_seconds=30, events=events
    )
    await made.check_server()
    yield made
    await made.close()


@pytest.fixture
async def cluster(redis_cluster_url: str) -> AsyncIterator[RedisCluster]:
    client = RedisCluster.from_url(redis_cluster_url)
    yield client
    await client.aclose()


def port_of(ports: list[int], subject: str) -> int:
    """The port of the primary serving a subject's hash tag."""
    return node_of_slot(ports, key_slot(subject.encode()))


def on_other_nodes(ports: list[int], merchant: str, instrument: str) -> None:
    assert port_of(ports, f"m:{merchant}") != port_of(ports, instrument), "the test needs them apart"


def split_pair(ports: list[int], merchant_limit: int, card_limit: int) -> tuple[Counter, Counter]:
    """Merchant m-1's call count and card fp-2's amount, which live on different primaries."""
    on_other_nodes(ports, "m-1", "i:fp-2")
    merchant = Counter("m:m-1", "calls", 60, merchant_limit, by_amount=False)
    return merchant, Counter("i:fp-2", "amount", 60, card_limit, by_amount=True)


async def value(cluster: RedisCluster, key: str) -> int:
    stored = await cluster.get(key)
    return int(stored or 0)


async def test_a_batch_spreads_over_every_primary(
    store: RedisClusterStateStore, cluster: RedisCluster, redis_cluster_ports: list[int], prefix: str
) -> None:
    per_card = [Counter(f"i:card-{i}", "calls", 60, 10, by_amount=False) for i in range(60)]
    claims = [Claim(f"m-{i}", f"k{i}", "h1", 100, (per_card[i],)) for i in range(60)]
    assert await store.claim(claims, T0) == [NEW] * 60
    holding = set()
    for port in redis_cluster_ports:
        node = cluster.get_node(host="127.0.0.1", port=port)
        keys = await cluster.execute_command("KEYS", f"{prefix}:*", target_nodes=node)
        if keys:
            holding.add(port)
    assert holding == set(redis_cluster_ports)


@pytest.mark.parametrize(
    ("limits", "declined"),
    [
        # The card's node declines first: the merchant's counters, moved last, never move.
        ((1000, 150), ClaimStatus.AMOUNT_LIMIT),
        # The merchant's node declines last: the card's counters, moved before, are given back.
        ((1, 1000), ClaimStatus.COUNT_LIMIT),
    ],
    ids=["card-declines", "merchant-declines"],
)
async def test_a_decline_on_either_primary_leaves_no_counter_moved(
    store: RedisClusterStateStore,
    cluster: RedisCluster,
    redis_cluster_ports: list[int],
    limits: tuple[int, int],
    declined: ClaimStatus,
) -> None:
    merchant, card = split_pair(redis_cluster_ports, *limits)
    assert await store.claim([Claim("m-1", "a", "h1", 100, (merchant, card))], T0) == [NEW]
    assert await store.claim([Claim("m-1", "b", "h1", 100, (merchant, card))], T0) == [ClaimOutcome(declined)]
    # Only the first claim is counted, on both primaries.
    assert await value(cluster, store.keys.counter_key(merchant)) == 1
    assert await value(cluster, store.keys.counter_key(card)) == 100
    # The declined item keeps its key, as on one primary, until it is completed.
    assert await store.claim([Claim("m-1", "b", "h1", 100, ())], T0 + 1) == [ClaimOutcome(ClaimStatus.IN_FLIGHT)]


async def test_a_card_limit_in_a_batch_never_spends_its_merchants_limit(
    store: RedisClusterStateStore, redis_cluster_ports: list[int]
) -> None:
    # One batch: a card over its limit, then another card of the same merchant. The
    # declined payments must not hold the merchant's count while the others are checked.
    on_other_nodes(redis_cluster_ports, "m-1", "i:fp-2")
    merchant = Counter("m:m-1", "calls", 60, 5, by_amount=False)
    busy, other = Counter("i:fp-2", "calls", 60, 2, False), Counter("i:fp-4", "calls", 60, 100, False)
    batch = [Claim("m-1", f"busy{i}", "h1", 1, (busy, merchant)) for i in range(10)]
    batch += [Claim("m-1", f"other{i}", "h1", 1, (other, merchant)) for i in range(3)]
    outcomes = await store.claim(batch, T0)
    count_limit = ClaimOutcome(ClaimStatus.COUNT_LIMIT)
    assert outcomes == [NEW, NEW] + [count_limit] * 8 + [NEW] * 3


async def test_racing_claims_across_nodes_let_exactly_n_through(
    store: RedisClusterStateStore, cluster: RedisCluster, redis_cluster_ports: list[int]
) -> None:
    merchant, card = split_pair(redis_cluster_ports, 1000, 700)
    racers = [store.claim([Claim("m-1", f"k{i}", "h1", 100, (merchant, card))], T0) for i in range(200)]
    outcomes = [batch[0] for batch in await asyncio.gather(*racers)]
    assert outcomes.count(NEW) == 7
    assert outcomes.count(ClaimOutcome(ClaimStatus.AMOUNT_LIMIT)) == 193
    # Every decline gave its merchant count back: only the seven approvals are counted.
    assert await value(cluster, store.keys.counter_key(merchant)) == 7
    assert await value(cluster, store.keys.counter_key(card)) == 700


async def test_across_nodes_the_counters_off_the_merchants_node_name_a_decline(
    store: RedisClusterStateStore, redis_cluster_ports: list[int]
) -> None:
    # On one primary the first counter over its limit names the decline, in the
    # order of the limits; across nodes the counters moved first name it.
    merchant, card = split_pair(redis_cluster_ports, 0, 0)
    outcomes = await store.claim([Claim("m-1", "a", "h1", 1, (merchant, card))], T0)
    assert outcomes == [ClaimOutcome(ClaimStatus.AMOUNT_LIMIT)]


async def test_completion_stores_the_answer_and_releases_counters_on_both_nodes(
    store: RedisClusterStateStore, cluster: RedisCluster, redis_cluster_ports: list[int]
) -> None:
    merchant, card = split_pair(redis_cluster_ports, 10, 1000)
    await store.claim([Claim("m-1", "a", "h1", 300, (merchant, card))], T0)
    await store.complete([Completion("m-1", "a", "h1", b"declined", 300, (merchant, card))], T0)
    assert await value(cluster, store.keys.counter_key(merchant)) == 0
    assert await value(cluster, store.keys.counter_key(card)) == 0
    replay = await store.claim([Claim("m-1", "a", "h1", 300, (merchant, card))], T0 + 1)
    assert replay == [ClaimOutcome(ClaimStatus.REPLAY, b"declined")]


async def test_a_slot_moved_since_the_map_was_read_is_found_again(
    store: RedisClusterStateStore, cluster: RedisCluster, redis_cluster_ports: list[int], events: MetricCounter
) -> None:
    merchant, card = "m-moving", Counter("i:fp-2", "amount", 60, 1000, by_amount=True)
    slot = key_slot(f"m:{merchant}".encode())
    assert await cluster.execute_command("CLUSTER COUNTKEYSINSLOT", slot) == 0
    source = node_of_slot(redis_cluster_ports, slot)
    target = next(port for port in redis_cluster_ports if port != source)
    assert await store.claim([Claim(merchant, "warm", "h1", 100, (card,))], T0) == [NEW]  # the map is read
    await store.complete([Completion(merchant, "warm", "h1", None, 100, (card,))], T0)
    await _set_slot(cluster, redis_cluster_ports, slot, target)
    try:
        # The store still believes the slot is on the source: that node refuses the
        # key, the store reads the map again and claims it where it now lives.
        assert await store.claim([Claim(merchant, "k1", "h1", 100, (card,))], T0) == [NEW]
        assert events.values == {SLOT_MAP_READ: 1, NOT_SERVED_EVENT: 1}  # what an SRE sees of it
        target_node = cluster.get_node(host="127.0.0.1", port=target)
        key = store.keys.idempotency_key(merchant, "k1")
        assert await cluster.execute_command("EXISTS", key, target_nodes=target_node) == 1
        await store.complete([Completion(merchant, "k1", "h1", b"answer", 100, ())], T0)
        assert await store.claim([Claim(merchant, "k1", "h1", 100, ())], T0 + 1) == [
            ClaimOutcome(ClaimStatus.REPLAY, b"answer")
        ]
    finally:
        await cluster.execute_command("DEL", store.keys.idempotency_key(merchant, "k1"), target_nodes=target_node)
        await _set_slot(cluster, redis_cluster_ports, slot, source)


async def test_a_claim_failing_on_one_node_gives_back_what_it_took_on_the_others(
    store: RedisClusterStateStore, cluster: RedisCluster, redis_cluster_ports: list[int], events: MetricCounter
) -> None:
    merchant, card = split_pair(redis_cluster_ports, 10, 1000)
    assert port_of(redis_cluster_ports, "m:m-1") != port_of(redis_cluster_ports, "m:m-2")
    # A broken key on m-2's node (a hash where a string belongs): that node refuses it every time.
    await cluster.hset(store.keys.idempotency_key("m-2", "broken"), "h", "x")
    batch = [
        Claim("m-1", "fine", "h1", 100, (merchant, card)),
        Claim("m-1", "declined", "h1", 100, (Counter("m:m-1", "none", 60, 0, False),)),
        Claim("m-2", "broken", "h1", 100, ()),
    ]
    with pytest.raises(KeyNotServed, match="WRONGTYPE"):
        await store.claim(batch, T0)
    assert events.values[GIVEN_BACK] == 2
    # Nothing stays held by the failed call: both keys it took are free, no counter moved.
    assert await cluster.exists(store.keys.idempotency_key("m-1", "fine")) == 0
    assert await cluster.exists(store.keys.idempotency_key("m-1", "declined")) == 0
    assert await value(cluster, store.keys.counter_key(merchant)) == 0
    assert await value(cluster, store.keys.counter_key(card)) == 0
    assert await store.claim(batch[:1], T0 + 1) == [NEW]


async def _set_slot(cluster: RedisCluster, ports: list[int], slot: int, owner: int) -> None:
    """Hands an empty slot to another primary, telling every node at once."""
    owner_id = node_id(owner)
    for port in ports:
        node = cluster.get_node(host="127.0.0.1", port=port)
        await cluster.execute_command("CLUSTER SETSLOT", slot, "NODE", owner_id, target_nodes=node)


async def test_a_primary_down_fails_the_claim_and_the_others_give_back_what_they_took(tmp_path: Path) -> None:
    # A cluster of its own: one of its primaries is killed.
    with running_cluster(tmp_path) as ports:
        url = f"redis://127.0.0.1:{ports[0]}/0"
        made = RedisClusterStateStore.from_url(url, prefix="down", retention_seconds=600, lease_seconds=30)
        cluster = RedisCluster.from_url(url)
        try:
            await made.check_server()
            dead = ports[-1]  # not the node the clients were started from
            subjects = [f"m:m-{i}" for i in range(40)] + [f"i:fp-{i}" for i in range(40)]
            live = [s.removeprefix("m:") for s in subjects if s.startswith("m:") and port_of(ports, s) != dead]
            on_dead = [s.removeprefix("m:") for s in subjects if s.startswith("m:") and port_of(ports, s) == dead]
            cards = [s for s in subjects if s.startswith("i:") and port_of(ports, s) == dead]
            merchant = {m: Counter(f"m:{m}", "calls", 60, 100, by_amount=False) for m in live + on_dead}
            doomed = Redis(host="127.0.0.1", port=dead)
            pid = int((await doomed.info("server"))["process_id"])
            await doomed.aclose()
            os.kill(pid, signal.SIGKILL)  # a crash, not a goodbye

            # The keys' step fails: merchants on every primary, the dead one included.
            with pytest.raises(RedisError):
                await made.claim([Claim(m, f"k-{m}", "h1", 100, (merchant[m],)) for m in live + on_dead], T0)
            # The counters' step fails: keys and merchant counters on live primaries, cards on the dead one.
            card = [Counter(subject, "amount", 60, 10**6, by_amount=True) for subject in cards]
            split = [Claim(m, f"s-{m}", "h1", 100, (merchant[m], card[i % len(card)])) for i, m in enumerate(live)]
            with pytest.raises(RedisError):
                await made.claim(split, T0)

            # Whatever the live primaries took is given back: no key held, every count back at 0.
            for port in ports[:-1]:
                node = cluster.get_node(host="127.0.0.1", port=port)
                assert await cluster.execute_command("KEYS", "down:*:i:*", target_nodes=node) == [], port
                counters = await cluster.execute_command("KEYS", "down:*:v:*", target_nodes=node)
                assert counters, "the merchants' counters moved before the failure"
                for key in counters:
                    assert await cluster.execute_command("GET", key, target_nodes=node) == b"0", key
        finally:
            await made.close()
            await cluster.aclose()


async def test_after_a_primary_fails_over_to_its_replica_the_store_recovers(tmp_path: Path) -> None:
    # A cluster of its own, each primary with a replica and a short node timeout, so a
    # killed primary's replica is promoted within seconds.
    with running_cluster(tmp_path, replicas=1, node_timeout_ms=1000) as ports:
        primaries = ports[:3]
        url = f"redis://127.0.0.1:{primaries[0]}/0"
        events = MetricCounter("switch_state_store_events", "")
        made = RedisClusterStateStore.from_url(url, prefix="fo", retention_seconds=600, lease_seconds=30, events=events)
        try:
            await made.check_server()
            merchants = [f"m-{i}" for i in range(30)]
            doomed_port = primaries[-1]  # not the node the store was started from
            moving = [m for m in merchants if port_of(primaries, f"m:{m}") == doomed_port]
            assert moving, "the test needs merchants on the doomed primary"

            def batch(tag: str) -> list[Claim]:
                counted = {m: (Counter(f"m:{m}", "calls", 60, 10**6, by_amount=False),) for m in merchants}
                return [Claim(m, f"{tag}-{m}", "h1", 100, counted[m]) for m in merchants]

            assert await made.claim(batch("before"), T0) == [NEW] * len(merchants)  # every node remembered
            doomed = Redis(host="127.0.0.1", port=doomed_port)
            pid = int((await doomed.info("server"))["process_id"])
            await doomed.aclose()
            os.kill(pid, signal.SIGKILL)

            # Batches fail while the replica takes over, then the store finds it.
            deadline, attempt, answered = asyncio.get_running_loop().time() + 30, 0, None
            while answered is None and asyncio.get_running_loop().time() < deadline:
                attempt += 1
                try:
                    answered = await made.claim(batch(f"after{attempt}"), T0)
                except RedisError:
                    await asyncio.sleep(0.5)
            assert answered == [NEW] * len(merchants), "the store never reached the promoted replica"
            assert events.values[SLOT_MAP_READ] >= 1
            replica_port = port_of(ports, f"m:{moving[0]}")
            assert replica_port in ports[3:], "the slot is served by the promoted replica"
        finally:
            await made.close()


async def test_a_worker_starts_while_its_first_seed_node_is_down(redis_cluster_ports: list[int], prefix: str) -> None:
    (nothing_there,) = free_ports(1)
    seeds = f"redis://127.0.0.1:{nothing_there}/0, redis://127.0.0.1:{redis_cluster_ports[1]}/0"
    made = RedisClusterStateStore.from_url(seeds, prefix=prefix, retention_seconds=600, lease_seconds=30)
    try:
        await made.check_server()
        assert await made.claim([Claim("m-1", "k1", "h1", 100, ())], T0) == [NEW]
    finally:
        await made.close()


async def test_a_stale_placement_in_any_step_is_sent_again_where_the_key_lives(
    store: RedisClusterStateStore, cluster: RedisCluster, redis_cluster_ports: list[int], events: MetricCounter
) -> None:
    # The store is made to remember a wrong primary, as it would after a slot moved:
    # that step's node refuses, the slot map is read again and the item goes again.
    merchant, card = split_pair(redis_cluster_ports, 1000, 1000)

    def mislead(tag: str) -> None:
        here = port_of(redis_cluster_ports, tag)
        store._where[tag] = next(node for node in store._cluster.get_primaries() if node.port != here)

    mislead("i:fp-2")  # the counters' step
    assert await store.claim([Claim("m-1", "a", "h1", 100, (merchant, card))], T0) == [NEW]
    assert events.values == {NOT_SERVED_EVENT: 1, SLOT_MAP_READ: 1}
    mislead("m:m-1")  # the keys' step
    assert await store.claim([Claim("m-1", "b", "h1", 100, (merchant, card))], T0) == [NEW]
    assert events.values == {NOT_SERVED_EVENT: 2, SLOT_MAP_READ: 2}
    mislead("m:m-1")  # the completion, both sides
    mislead("i:fp-2")
    await store.complete([Completion("m-1", k, "h1", b"declined", 100, (merchant, card)) for k in "ab"], T0)
    assert events.values[SLOT_MAP_READ] == 3
    # Everything landed where it lives: the answers are stored, both counters are back at 0.
    replays = await store.claim([Claim("m-1", k, "h1", 100, ()) for k in "ab"], T0 + 1)
    assert replays == [ClaimOutcome(ClaimStatus.REPLAY, b"declined")] * 2
    assert await value(cluster, store.keys.counter_key(merchant)) == 0
    assert await value(cluster, store.keys.counter_key(card)) == 0
