"""The production StateStore on a Redis Cluster: each primary gets its share of a batch.

One Redis primary runs scripts on one thread, which caps the authorizations one
primary can claim (the SRE guide has the measured ceiling). Past that, the keys
must be spread over several primaries, and a batch touches many of them.

Keys keep the single-primary layout (switch.stores.redis), hash-tagged by subject:
an idempotency key and its merchant's counters share the merchant's slot; an
instrument's counters sit on the instrument's. The same two scripts run here,
one call per primary per step, each given only the keys its node serves (they
declare no keys and carry the allow-cross-slot-keys flag, so a node runs them over
any keys of its own slots). An authorization whose counters all live on its
merchant's node is claimed there in one step, exactly as on one primary. One
whose counters are split takes three:

1. on its merchant's node, the idempotency key alone is claimed;
2. for a new claim, its counters on other nodes (its instrument's) are checked and
   moved there, each node's share all or none;
3. if they fit, its counters on the merchant's node are checked and moved.

A decline in step 3 gives back what step 2 moved, so the item ends as on one
primary: claimed, declined, no counter moved. Between the steps a counter briefly
holds an increment that may be given back; a racing claim that sees it can only
be declined, never let through, so a limit of N still lets at most N through.
The merchant's counters, which every payment of the merchant shares, go last, so
that only the same instrument's payments can see such an increment: were they
first, the payments a card limit declines would briefly eat their merchant's
limit and decline other cards' payments in the same batch. When several limits
are reached at once, a split item's decline is named by the first step that
declines it, not by the order of the limits.

Holders' KYC tiers sit beside their counters, and each primary keeps its own key
saying the tiers are loaded (one whose hash tag falls in its slots). A primary that
lost them (restarted without its data) answers a batch needing them with nothing
applied; its items go again, as if not served, once the tiers are loaded from the
journal.

A node that does not serve a key (a slot moved since the client read the slot
map) answers that item 'M' with nothing of it applied; the slot map is read
again and the item goes again, up to `attempts` times. A node that does not answer
at all (down, or failing over to its replica) fails the call, and the next call
reads the slot map first, so the store follows a promoted replica. A claim that
fails in any way gives back what it claimed before raising, so no key stays held
by a call that failed. Completions are independent per key, so complete() sends each node
its share at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import NoScriptError, ResponseError

from switch.domain.kyc import HolderTier
from switch.stores.base import Claim, ClaimOutcome, ClaimStatus, Completion, Counter, TierSource
from switch.stores.redis import (
    CLAIM_SCRIPT,
    COMPLETE_SCRIPT,
    GIVE_BACK_FAILED,
    GIVEN_BACK,
    MOVED,
    NOT_SERVED,
    NOT_SERVED_EVENT,
    RELOAD_LEASE_MS,
    RELOAD_POLL_SECONDS,
    REPLIED,
    SET_TIERS_SCRIPT,
    SLOT_MAP_READ,
    TIERS_NOT_LOADED,
    KeyLayout,
    KeyNotServed,
    activity_replies,
    check_version,
    claim_outcome,
    taken,
)
from switch.telemetry.metrics import Counter as MetricCounter

log = logging.getLogger(__name__)

_CLAIM_SHA = hashlib.sha1(CLAIM_SCRIPT.encode()).hexdigest()
_COMPLETE_SHA = hashlib.sha1(COMPLETE_SCRIPT.encode()).hexdigest()
_SET_TIERS_SHA = hashlib.sha1(SET_TIERS_SCRIPT.encode()).hexdigest()

# A completion sent to one node: keyed, it stores or gives back the key (with the
# counters of that node); not keyed, it only releases counters.
_Release = tuple[Completion, bool]
# Subjects whose primary is remembered: merchants recur batch after batch; past
# this many (mostly instruments) the memory is dropped and rebuilt.
_PLACES_KEPT = 100_000


class RedisClusterStateStore:
    def __init__(
        self,
        cluster: RedisCluster,
        prefix: str,
        retention_seconds: float,
        lease_seconds: float,
        *,
        attempts: int = 3,
        max_connections: int = 64,
        events: MetricCounter | None = None,
        tier_source: TierSource | None = None,
    ) -> None:
        self._tier_source = tier_source
        self._tiers_lost = False  # a node answered that it holds no tiers: load them before going again
        self._loaded_keys: dict[str, str] = {}  # node name -> its "tiers loaded" key
        self._cluster = cluster
        self._events = events or MetricCounter("unexported", "")
        self.keys = KeyLayout(prefix, retention_seconds, lease_seconds)
        self._attempts = attempts
        self._ready = False
        # Calls in flight per node, at most its pool's size: a burst waits for a
        # connection, as on one primary's blocking pool, instead of failing.
        self._max_connections = max_connections
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._where: dict[str, ClusterNode] = {}  # subject -> its primary, see _node
        self._stale = False  # a node failed to answer: read the slot map before the next call

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str,
        retention_seconds: float,
        lease_seconds: float,
        max_connections: int = 64,
        events: MetricCounter | None = None,
        tier_source: TierSource | None = None,
    ) -> RedisClusterStateStore:
        """url names a node of the cluster, or several, comma-separated, so that a worker
        starts while one of them is down; the others are found from them. Credentials
        and TLS come from the first URL, only host and port from the rest."""
        first, *more = (part.strip() for part in url.split(",") if part.strip())
        seeds = [ClusterNode(parsed.hostname or "localhost", parsed.port or 6379) for parsed in map(urlsplit, more)]
        cluster = RedisCluster.from_url(
            first, startup_nodes=seeds or None, max_connections=max_connections, decode_responses=False
        )
        return cls(
            cluster,
            prefix,
            retention_seconds,
            lease_seconds,
            max_connections=max_connections,
            events=events,
            tier_source=tier_source,
        )

    async def claim(self, claims: Sequence[Claim], now: float) -> list[ClaimOutcome]:
        if not claims:
            return []
        await self._start()
        outcomes: list[ClaimOutcome | None] = [None] * len(claims)
        # The parts of each item whose counters moved, in the order they moved.
        moved: list[list[Claim]] = [[] for _ in claims]
        # Each item's activity answers so far, by its counter's identity.
        heard: list[dict[int, bytes]] = [{} for _ in claims]
        try:
            elsewhere, last = await self._claim_keys(claims, now, outcomes, moved, heard)
            declined = await self._move_counters(claims, elsewhere, now, moved, heard)
            last = {index: counters for index, counters in last.items() if index not in declined}
            declined.update(await self._move_counters(claims, last, now, moved, heard))
        except BaseException:
            await self._give_back(claims, outcomes, moved, now)
            raise
        if declined:
            for index, outcome in declined.items():
                outcomes[index] = outcome
            try:
                await self._release([(_releasing(part), False) for index in declined for part in moved[index]], now)
            except Exception:
                # The claims stand; a counter not given back over-counts until its window
                # ends, which can only decline, never let one through.
                self._events.inc(GIVE_BACK_FAILED)
                log.exception("giving back the counters of %d declined claims failed", len(declined))
        for claim, answered, answers in zip(claims, outcomes, heard, strict=True):
            if answers and answered is not None and answered.status is ClaimStatus.NEW:
                answered.activity = tuple([answers[id(c)] for c in claim.counters if c.payment is not None])
        return outcomes  # type: ignore[return-value]  # every one set, or raised

    async def _claim_keys(
        self,
        claims: Sequence[Claim],
        now: float,
        outcomes: list[ClaimOutcome | None],
        moved: list[list[Claim]],
        heard: list[dict[int, bytes]],
    ) -> tuple[dict[int, tuple[Counter, ...]], dict[int, tuple[Counter, ...]]]:
        """Claims every key on its merchant's node, with its counters when all of them
        live there too. For each new claim whose counters are split, returns the
        counters that live elsewhere (to move next) and those on the merchant's node
        (to move last)."""
        elsewhere: dict[int, tuple[Counter, ...]] = {}
        last: dict[int, tuple[Counter, ...]] = {}
        pending: Sequence[int] = range(len(claims))
        for attempt in range(self._attempts):
            if attempt:
                await self._refresh()
            parts: list[tuple[ClusterNode, Claim]] = []
            split: list[tuple[tuple[Counter, ...], tuple[Counter, ...]]] = []
            for index in pending:
                claim = claims[index]
                node = self._node("m:" + claim.merchant_id)
                here, rest = self._split(claim.counters, node)
                parts.append((node, _with_counters(claim, ()) if rest else claim))
                split.append((here, rest))
            statuses, replies, problem, error = await self._claim_on_nodes(parts, now, counters_only=False)
            _keep_activity(heard, pending, parts, statuses, replies)
            not_served = []
            for index, (_, part), (here, rest), status, reply in zip(
                pending, parts, split, statuses, replies, strict=True
            ):
                if status == NOT_SERVED:
                    not_served.append(index)
                    continue
                outcomes[index] = outcome = claim_outcome(status, reply if isinstance(reply, bytes) else None)
                if outcome.status is ClaimStatus.NEW:
                    if part.counters:
                        moved[index].append(part)
                    if rest:
                        elsewhere[index] = rest
                        if here:
                            last[index] = here
            if error is not None:
                raise error  # after recording what the other nodes did, for _give_back
            pending = not_served
            if not pending:
                return elsewhere, last
        raise KeyNotServed(f"{len(pending)} idempotency keys not served after {self._attempts} attempts: {problem}")

    async def _move_counters(
        self,
        claims: Sequence[Claim],
        counters: dict[int, tuple[Counter, ...]],
        now: float,
        moved: list[list[Claim]],
        heard: list[dict[int, bytes]],
    ) -> dict[int, ClaimOutcome]:
        """Moves these counters of these claims on their nodes, each node's share all or
        none; returns the items one of whose shares was declined (its status)."""
        declined: dict[int, ClaimOutcome] = {}
        pending = list(counters.items())
        for attempt in range(self._attempts):
            if not pending:
                return declined
            if attempt:
                await self._refresh()
            units: list[tuple[int, ClusterNode, Claim]] = []
            for index, moving in pending:
                for node, share in self._by_node(moving):
                    units.append((index, node, _with_counters(claims[index], share)))
            unit_parts = [(node, part) for _, node, part in units]
            statuses, replies, problem, error = await self._claim_on_nodes(unit_parts, now, counters_only=True)
            _keep_activity(heard, [index for index, _, _ in units], unit_parts, statuses, replies)
            pending = []
            for (index, _, part), status, reply in zip(units, statuses, replies, strict=True):
                if status == MOVED:
                    moved[index].append(part)
                elif status == NOT_SERVED:
                    pending.append((index, part.counters))
                else:
                    declined.setdefault(index, claim_outcome(status, reply if isinstance(reply, bytes) else None))
            if error is not None:
                raise error  # after recording what the other nodes moved, for _give_back
        if pending:
            raise KeyNotServed(f"{len(pending)} counter sets not served after {self._attempts} attempts: {problem}")
        return declined

    async def _give_back(
        self,
        claims: Sequence[Claim],
        outcomes: Sequence[ClaimOutcome | None],
        moved: Sequence[Sequence[Claim]],
        now: float,
    ) -> None:
        """Undoes a claim that failed part way: every key it took, every counter it is known
        to have moved (a node that failed mid-call may have moved some: they stay moved,
        over-counting rather than letting one through). Best effort: a key not given
        back stays in flight until its lease runs out."""
        keys = [(_key_only(claim), True) for claim in taken(claims, outcomes)]
        undo = keys + [(_releasing(part), False) for parts in moved for part in parts]
        try:
            await self._release(undo, now)
            self._events.inc(GIVEN_BACK, len(keys))
        except Exception:
            self._events.inc(GIVE_BACK_FAILED)
            log.exception("giving back %d keys and counters after a failed claim failed too", len(undo))

    async def complete(self, completions: Sequence[Completion], now: float) -> None:
        if not completions:
            return
        await self._start()
        await self._release([(done, True) for done in completions], now)

    async def _release(self, releases: Sequence[_Release], now: float) -> None:
        """Sends each node its share of these completions, again where a slot moved."""
        pending = list(releases)
        for attempt in range(self._attempts):
            if not pending:
                return
            if attempt:
                await self._refresh()
            shares: list[tuple[ClusterNode, _Release]] = []
            for done, keyed in pending:
                counters = done.release
                if keyed:
                    node = self._node("m:" + done.merchant_id)
                    here, counters = self._split(counters, node)
                    shares.append((node, (_releasing_only(done, here), True)))
                for node, share in self._by_node(counters):
                    shares.append((node, (_releasing_only(done, share), False)))
            failed, problem = await self._complete_on_nodes(shares, now)
            pending = [shares[i][1] for i in failed]
        if pending:
            raise KeyNotServed(f"{len(pending)} completions not served after {self._attempts} attempts: {problem}")

    # One script call per node.

    async def _claim_on_nodes(
        self, parts: Sequence[tuple[ClusterNode, Claim]], now: float, counters_only: bool
    ) -> tuple[list[int], list[bytes | tuple[bytes, ...] | None], str, BaseException | None]:
        """Each part's status (the script's character), its replayed response (or None),
        why any part was not served, and the first error of a node that did not answer
        (its parts read 'M': what it applied, if anything, is not known)."""
        statuses = [NOT_SERVED] * len(parts)
        # A replay's response, a cap's tier and name, or a moved part's activity answers.
        replies: list[bytes | tuple[bytes, ...] | None] = [None] * len(parts)
        problems: list[str] = []

        def call(node: ClusterNode, indexes: list[int]) -> Awaitable[Any]:
            args = self.keys.claim_args([parts[i][1] for i in indexes], now, counters_only, self._tiers_loaded(node))
            return self._evalsha(node, _CLAIM_SHA, CLAIM_SCRIPT, args)

        def settle(indexes: list[int], answer: Any) -> None:
            if answer == [TIERS_NOT_LOADED]:  # nothing applied: its parts go again once tiers are loaded
                self._tiers_lost = True
                problems.append("the node holds no KYC tiers")
                return
            answered, problem, *responses = answer
            if problem:
                problems.append(problem.decode(errors="replace"))
                self._events.inc(NOT_SERVED_EVENT, answered.count(NOT_SERVED))
            replayed = iter(responses)
            for i, status in zip(indexes, answered, strict=True):
                statuses[i] = status
                if status in REPLIED:
                    replies[i] = next(replayed)
                elif status == MOVED:
                    replies[i] = activity_replies(parts[i][1], replayed)

        error = await self._on_nodes([node for node, _ in parts], call, settle)
        return statuses, replies, "; ".join(problems), error

    async def _complete_on_nodes(
        self, shares: Sequence[tuple[ClusterNode, _Release]], now: float
    ) -> tuple[list[int], str]:
        """Sends the shares; returns the numbers of those whose node did not serve a key, and why."""
        failed: list[int] = []
        problems: list[str] = []

        def call(node: ClusterNode, indexes: list[int]) -> Awaitable[Any]:
            releases = [shares[i][1] for i in indexes]
            args = self.keys.complete_args([done for done, _ in releases], now, [keyed for _, keyed in releases])
            return self._evalsha(node, _COMPLETE_SHA, COMPLETE_SCRIPT, args)

        def settle(indexes: list[int], answer: Any) -> None:
            problem, *numbers = answer
            if numbers:
                problems.append(problem.decode(errors="replace"))
                self._events.inc(NOT_SERVED_EVENT, len(numbers))
            failed.extend(indexes[number - 1] for number in numbers)

        error = await self._on_nodes([node for node, _ in shares], call, settle)
        if error is not None:
            raise error
        return failed, "; ".join(problems)

    async def _on_nodes(
        self,
        nodes: Sequence[ClusterNode],
        call: Callable[[ClusterNode, list[int]], Awaitable[Any]],
        settle: Callable[[list[int], Any], None],
    ) -> BaseException | None:
        """Groups the work by node (in order), calls every node at once, and settles each
        answer that came; returns the first error of a node that did not answer, so the
        caller records what the others applied before it raises."""
        groups: dict[str, tuple[ClusterNode, list[int]]] = {}
        for index, node in enumerate(nodes):
            groups.setdefault(node.name, (node, []))[1].append(index)
        answers = await asyncio.gather(
            *(call(node, indexes) for node, indexes in groups.values()), return_exceptions=True
        )
        error: BaseException | None = None
        for (_, indexes), answer in zip(groups.values(), answers, strict=True):
            if isinstance(answer, BaseException):
                error = error or answer
                # A node down or failing over: its replica may own the slots by the next
                # call, which must not go to the remembered (dead) node again.
                self._stale = self._stale or not isinstance(answer, ResponseError)
            else:
                settle(indexes, answer)
        return error

    async def _evalsha(self, node: ClusterNode, sha: str, script: str, args: Sequence[Any]) -> Any:
        in_flight = self._slots.get(node.name)
        if in_flight is None:
            in_flight = self._slots[node.name] = asyncio.Semaphore(self._max_connections)
        async with in_flight:
            try:
                return await self._cluster.execute_command("EVALSHA", sha, 0, *args, target_nodes=node)
            except NoScriptError:
                # A node that restarted or just joined: load the script there and go again.
                await self._cluster.execute_command("SCRIPT LOAD", script, target_nodes=node)
                return await self._cluster.execute_command("EVALSHA", sha, 0, *args, target_nodes=node)

    # Where keys live.

    def _node(self, subject: str) -> ClusterNode:
        """The primary serving the keys of a subject ("m:<merchant>", a counter's subject).

        Remembered, by the subject as given (so only a miss pays for encoding it), until
        the slot map is read again: a node that no longer serves a subject refuses its
        keys ('M'), which reads the map again and forgets them all."""
        node = self._where.get(subject)
        if node is None:
            if len(self._where) >= _PLACES_KEPT:
                self._where.clear()
            # The slot of any key up to its hash tag's end (the encoded subject, as the
            # scripts write it): what follows cannot change it.
            slot = key_slot(self.keys.tagged(subject).encode())
            node = self._where[subject] = self._cluster.nodes_manager.get_node_from_slot(slot)
        return node

    async def _refresh(self) -> None:
        self._where.clear()
        self._loaded_keys.clear()
        self._events.inc(SLOT_MAP_READ)
        await self._cluster.nodes_manager.initialize()
        if self._tiers_lost:
            await self._reload_tiers()
            self._tiers_lost = False

    # Holders' KYC tiers.

    async def set_tiers(self, tiers: Sequence[HolderTier]) -> None:
        await self._start()
        for node, share in self._tiers_by_node(tiers).values():
            await self._set_tiers_on(node, share, loaded="")

    def _tiers_loaded(self, node: ClusterNode) -> str:
        """The node's key saying its holders' tiers are loaded: the first of a series of
        names whose hash tag falls in one of its slots."""
        key = self._loaded_keys.get(node.name)
        if key is None:
            manager = self._cluster.nodes_manager
            for n in range(100_000):
                candidate = f"{self.keys.tiers_loaded}:{{{n}}}"
                if manager.get_node_from_slot(key_slot(candidate.encode())).name == node.name:
                    key = self._loaded_keys[node.name] = candidate
                    break
            else:
                raise KeyNotServed(f"no key name found for node {node.name}'s slots")
        return key

    def _tiers_by_node(self, tiers: Sequence[HolderTier]) -> dict[str, tuple[ClusterNode, list[HolderTier]]]:
        """The tiers by the name of the primary holding them."""
        shares: dict[str, tuple[ClusterNode, list[HolderTier]]] = {}
        for tier in tiers:
            node = self._node("i:" + tier.holder)
            shares.setdefault(node.name, (node, []))[1].append(tier)
        return shares

    async def _set_tiers_on(self, node: ClusterNode, tiers: Sequence[HolderTier], loaded: str) -> None:
        """One node's holders' tiers, in calls of at most TIERS_PER_CALL; loaded (if any)
        is set by the last."""
        for args in self.keys.set_tiers_args(tiers, loaded):
            await self._evalsha(node, _SET_TIERS_SHA, SET_TIERS_SCRIPT, args)

    async def _reload_tiers(self) -> None:
        """Loads every holder's tier from the journal onto every primary, once for all
        workers, as RedisStateStore._reload_tiers does on one."""
        primaries = self._cluster.get_primaries()
        loading = self.keys.tiers_loaded + ":loading"
        while True:
            missing = [
                node
                for node in primaries
                if not await self._cluster.execute_command("EXISTS", self._tiers_loaded(node), target_nodes=node)
            ]
            if not missing:
                return
            if await self._cluster.set(loading, "1", nx=True, px=RELOAD_LEASE_MS):
                try:
                    tiers = list(await self._tier_source()) if self._tier_source is not None else []
                    log.warning("%d Redis primaries hold no KYC tiers: loading %d", len(missing), len(tiers))
                    shares = self._tiers_by_node(tiers)
                    for node in missing:
                        share = shares.get(node.name, (node, []))[1]
                        await self._set_tiers_on(node, share, self._tiers_loaded(node))
                finally:
                    await self._cluster.delete(loading)
                return
            await asyncio.sleep(RELOAD_POLL_SECONDS)

    def _split(self, counters: Sequence[Counter], node: ClusterNode) -> tuple[tuple[Counter, ...], tuple[Counter, ...]]:
        """(the counters that live on node, the others), each in order."""
        here: list[Counter] = []
        elsewhere: list[Counter] = []
        for counter in counters:
            (here if self._node(counter.subject).name == node.name else elsewhere).append(counter)
        return tuple(here), tuple(elsewhere)

    def _by_node(self, counters: tuple[Counter, ...]) -> list[tuple[ClusterNode, tuple[Counter, ...]]]:
        """The counters grouped by the primary they live on, in order."""
        if not counters:
            return []
        subject = counters[0].subject
        if all(counter.subject == subject for counter in counters):  # the common case: one instrument's
            return [(self._node(subject), counters)]
        groups: dict[str, tuple[ClusterNode, list[Counter]]] = {}
        for counter in counters:
            node = self._node(counter.subject)
            if node.name not in groups:
                groups[node.name] = (node, [])
            groups[node.name][1].append(counter)
        return [(node, tuple(share)) for node, share in groups.values()]

    async def _start(self) -> None:
        if not self._ready:
            await self._cluster.initialize()
            self._ready = True
        if self._stale:
            await self._refresh()
            self._stale = False

    async def check_server(self) -> None:
        """Refuses, at start, a cluster any primary of which is too old for the scripts."""
        await self._start()
        for node in self._cluster.get_primaries():
            info = await self._cluster.execute_command("INFO", "server", target_nodes=node)
            check_version(str(info.get("redis_version", "0")))

    async def close(self) -> None:
        await self._cluster.aclose()


def _keep_activity(
    heard: list[dict[int, bytes]],
    indexes: Sequence[int],
    parts: Sequence[tuple[ClusterNode, Claim]],
    statuses: Sequence[int],
    replies: Sequence[bytes | tuple[bytes, ...] | None],
) -> None:
    """Files the activity each moved part answered under its item, by counter."""
    for index, (_, part), status, reply in zip(indexes, parts, statuses, replies, strict=True):
        if status == MOVED and isinstance(reply, tuple):
            paying = [counter for counter in part.counters if counter.payment is not None]
            heard[index].update(zip(map(id, paying), reply, strict=True))


def _with_counters(claim: Claim, counters: tuple[Counter, ...]) -> Claim:
    """The claim with only these counters (dataclasses.replace costs several times more)."""
    return Claim(claim.merchant_id, claim.idempotency_key, claim.request_hash, claim.amount_minor, counters)


def _releasing_only(done: Completion, release: tuple[Counter, ...]) -> Completion:
    """The completion with only these counters to release."""
    return Completion(
        done.merchant_id, done.idempotency_key, done.request_hash, done.response, done.amount_minor, release
    )


def _releasing(part: Claim) -> Completion:
    """The completion that gives back what this claim's part moved (and its key, if keyed)."""
    return Completion(part.merchant_id, part.idempotency_key, part.request_hash, None, part.amount_minor, part.counters)


def _key_only(claim: Claim) -> Completion:
    """The completion that gives back this claim's key and nothing else."""
    return Completion(claim.merchant_id, claim.idempotency_key, claim.request_hash, None, claim.amount_minor)
