"""The production StateStore: idempotency claims and velocity counters in Redis.

Shared by every worker process and every switch instance. Each batch costs one
round trip: claim() is one Lua script call (EVALSHA; redis-py loads the script
again on NOSCRIPT) and so is complete(). A script runs atomically, which is what
makes "a limit of N lets exactly N through" hold across processes.

Keys are hash-tagged by subject, so on a Redis Cluster an item's idempotency key
lives on its merchant's slot and each counter on its subject's slot. A batch
still touches many slots, and one script call may only touch one, so on a
Cluster the batch would have to be split by slot: a known limit, not
implemented now (this store expects a single primary, with replicas or Sentinel).

An idempotency key is a Redis hash: h (request hash), t (claim time, while in
flight) and r (the response, once done). It only ever holds what the caller
passes, which is PAN-free.

Amounts and limits are compared as Lua numbers (doubles): exact up to 2**53
minor units, far beyond any real velocity limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

from switch.stores.base import Claim, ClaimOutcome, ClaimStatus, Completion, Counter

# KEYS, per claim: the idempotency key, then one key per counter.
# ARGV: now, lease seconds, retention ms; then per claim: request hash, counter
# count, and per counter: window seconds, limit, increment, status when over the limit.
# Returns one element per claim: the response (a string) for a replay, else a status number.
_CLAIM_LUA = """
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local retention_ms = ARGV[3]
local results = {}
local k, a = 1, 4
while a <= #ARGV do
    local key, hash, n = KEYS[k], ARGV[a], tonumber(ARGV[a + 1])
    local counters, args = k + 1, a + 2
    k, a = counters + n, args + 4 * n
    local held = redis.call('HMGET', key, 'h', 't', 'r')
    local status
    if held[1] and held[1] ~= hash then
        status = 3
    elseif held[1] and held[3] then
        status = held[3]
    elseif held[1] and now - tonumber(held[2]) < lease then
        status = 2
    else
        -- Absent, or in flight past its lease (the holder crashed): claim it.
        redis.call('HSET', key, 'h', hash, 't', ARGV[1])
        redis.call('PEXPIRE', key, retention_ms)
        status = 0
        for i = 0, n - 1 do
            local c = args + 4 * i
            local value = tonumber(redis.call('GET', KEYS[counters + i]) or '0')
            if value + tonumber(ARGV[c + 2]) > tonumber(ARGV[c + 1]) then
                status = tonumber(ARGV[c + 3])
                break
            end
        end
        if status == 0 then
            for i = 0, n - 1 do
                local c, counter = args + 4 * i, KEYS[counters + i]
                redis.call('INCRBY', counter, ARGV[c + 2])
                -- Only a counter this claim created gets a window; later claims keep it.
                if redis.call('PTTL', counter) < 0 then
                    redis.call('EXPIRE', counter, ARGV[c])
                end
            end
        end
    end
    results[#results + 1] = status
end
return results
"""

# KEYS, per completion: the idempotency key, then one key per released counter.
# ARGV: retention ms; then per completion: '1' to store the response or '0' to give
# the key back, request hash, response, counter count, and one decrement per counter.
_COMPLETE_LUA = """
local retention_ms = ARGV[1]
local k, a = 1, 2
while a <= #ARGV do
    local key, n = KEYS[k], tonumber(ARGV[a + 3])
    if ARGV[a] == '1' then
        redis.call('DEL', key)
        redis.call('HSET', key, 'h', ARGV[a + 1], 'r', ARGV[a + 2])
        redis.call('PEXPIRE', key, retention_ms)
    else
        redis.call('DEL', key)
    end
    for i = 1, n do
        local counter = KEYS[k + i]
        -- A counter whose window already ended stays gone rather than coming back
        -- negative; the decrement stays a string so Lua's doubles never round it.
        if redis.call('EXISTS', counter) == 1 and redis.call('DECRBY', counter, ARGV[a + 3 + i]) < 0 then
            redis.call('SET', counter, '0', 'KEEPTTL')
        end
    end
    k, a = k + 1 + n, a + 4 + n
end
return 0
"""

_COUNT_LIMIT, _AMOUNT_LIMIT = 4, 5
_STATUSES = {
    0: ClaimStatus.NEW,
    2: ClaimStatus.IN_FLIGHT,
    3: ClaimStatus.CONFLICT,
    _COUNT_LIMIT: ClaimStatus.COUNT_LIMIT,
    _AMOUNT_LIMIT: ClaimStatus.AMOUNT_LIMIT,
}


class RedisStateStore:
    def __init__(self, client: Redis, prefix: str, retention_seconds: float, lease_seconds: float) -> None:
        self._client = client
        self._prefix = prefix
        self._retention_ms = str(max(1, round(retention_seconds * 1000)))
        self._lease = repr(float(lease_seconds))
        self._claim_script = client.register_script(_CLAIM_LUA)
        self._complete_script = client.register_script(_COMPLETE_LUA)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str,
        retention_seconds: float,
        lease_seconds: float,
        max_connections: int = 64,
    ) -> RedisStateStore:
        # A blocking pool makes a burst of concurrent batches wait for a connection
        # instead of failing with "Too many connections".
        pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, decode_responses=False)
        return cls(Redis.from_pool(pool), prefix, retention_seconds, lease_seconds)

    async def claim(self, claims: Sequence[Claim], now: float) -> list[ClaimOutcome]:
        if not claims:
            return []
        keys: list[str] = []
        args: list[str | int | bytes] = [repr(float(now)), self._lease, self._retention_ms]
        for claim in claims:
            keys.append(self.idempotency_key(claim.merchant_id, claim.idempotency_key))
            args += (claim.request_hash, len(claim.counters))
            for counter in claim.counters:
                keys.append(self.counter_key(counter))
                over = _AMOUNT_LIMIT if counter.by_amount else _COUNT_LIMIT
                args += (counter.window_seconds, counter.limit, _increment(counter, claim.amount_minor), over)
        results = await self._claim_script(keys=keys, args=args)
        return [_outcome(result) for result in results]

    async def complete(self, completions: Sequence[Completion], now: float) -> None:
        if not completions:
            return
        keys: list[str] = []
        args: list[str | int | bytes] = [self._retention_ms]
        for done in completions:
            keys.append(self.idempotency_key(done.merchant_id, done.idempotency_key))
            store = done.response is not None
            args += ("1" if store else "0", done.request_hash, done.response or b"", len(done.release))
            for counter in done.release:
                keys.append(self.counter_key(counter))
                args.append(_increment(counter, done.amount_minor))
        await self._complete_script(keys=keys, args=args)

    async def close(self) -> None:
        await self._client.aclose()

    def idempotency_key(self, merchant_id: str, idempotency_key: str) -> str:
        return f"{self._prefix}:{{m:{merchant_id}}}:k:{idempotency_key}"

    def counter_key(self, counter: Counter) -> str:
        return f"{self._prefix}:{{{counter.subject}}}:v:{counter.name}"


def _increment(counter: Counter, amount_minor: int) -> int:
    return amount_minor if counter.by_amount else 1


def _outcome(result: Any) -> ClaimOutcome:
    if isinstance(result, bytes):
        return ClaimOutcome(ClaimStatus.REPLAY, result)
    return ClaimOutcome(_STATUSES[int(result)])
