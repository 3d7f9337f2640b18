"""The production StateStore: idempotency claims and velocity counters in Redis.

Shared by every worker process and every switch instance. Each batch costs one
round trip: claim() is one Lua script call (EVALSHA; redis-py loads the script
again on NOSCRIPT) and so is complete(). A script runs atomically, which is what
makes "a limit of N lets exactly N through" hold across processes.

A batch travels as a few compact arguments rather than a dozen per item: the
fields of every item as one JSON array, which the script decodes with Redis's
built-in cjson (in C: under half of what splitting a joined string in Lua cost,
by Redis's own command statistics), and the batch's distinct counters once,
which the items refer to by number. The script builds the full key names
from the prefix, so a key's long common prefix is not sent for every item, and
answers with one status character per item plus the replayed responses: a batch
of a hundred costs a few arguments to pack and a few replies to parse instead of
over a thousand.

Keys are hash-tagged by subject, so on a Redis Cluster an item's idempotency key
lives on its merchant's slot and each counter on its subject's slot. The ids in
a key name are encoded (encode_id, in Python as a batch is packed) so that none
can reach into another part of the name, whatever it holds. This store
expects a single primary (with replicas or Sentinel); on a Cluster,
switch.stores.redis_cluster runs the same two scripts on each primary over the
keys that primary serves. The scripts declare no KEYS (they build the names),
which a single primary allows and their allow-cross-slot-keys flag allows on one
cluster node.

An idempotency key is a Redis string, so that the common path costs one call per
item in each script. While in flight it holds 't' .. request hash .. '\x1f' ..
claim time; once done, 'r' .. request hash .. '\x1f' .. the stored response. The
response is binary and may itself hold \x1f, so only the first \x1f separates (the
request hash never holds one: the switch's are hex, and the store refuses one
that does). A claim is one SET key value NX PX retention GET, which claims an
absent key and answers what an existing one holds in the same call (NX together
with GET needs Redis >= 7.0); only a claim taken over after its lease ran out
costs a second SET. A stored response is one SET (it overwrites the claim) and a
give-back one DEL. The value only ever holds what the caller passes, which is
PAN-free.

Idempotency keys live under ':i:'. An earlier layout kept them as Redis hashes
under ':k:'; those keys are never read (reading a hash as a string would fail
with WRONGTYPE) and expire on their own after the retention. A key the store does
not know, such as one of those, is still answered by the journal: the pipeline
reads already-journaled keys (_skip_journaled) before it sends anything.

Amounts and limits are compared as Lua numbers (doubles): exact up to 2**53
minor units, far beyond any real velocity limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from itertools import repeat
from typing import Any

import orjson
from redis.asyncio import BlockingConnectionPool, Redis

from switch.domain.errors import StartupError
from switch.domain.kyc import HolderTier
from switch.stores.base import Claim, ClaimOutcome, ClaimStatus, Completion, Counter, KycCaps, Payment, TierSource
from switch.stores.holder_lua import HOLDER_LUA
from switch.telemetry.metrics import Counter as MetricCounter

log = logging.getLogger(__name__)

# Separates a stored record's request hash from what follows it (Lua's '\31').
_SEP = "\x1f"

# Both scripts carry the allow-cross-slot-keys flag: on a Redis Cluster they run
# on one node with no declared key and touch only keys of that node's slots
# (switch.stores.redis_cluster sends each node its own share of a batch). Every
# item's first touch of each key goes through redis.pcall and before anything of
# that item is written, so a key the node does not serve (a stale slot map, a slot
# being moved) fails that item as 'M', whole, with nothing of it applied, and the
# caller can send it again where it now lives. On a single primary every key is
# served and 'M' only reports a broken key (a wrong type): the store then raises.

# ARGV: now, lease seconds, retention ms, key prefix, then two JSON arrays, in which
# subjects, merchants and idempotency keys come encoded (see KeyLayout):
#   counters: the batch's distinct counters, 6 fields each: subject, name, window
#             seconds, limit (strings), whether it counts amounts (else calls), and
#             its KYC caps (0: a velocity counter; else 1-based, into the caps: the
#             counter is then the subject's KYC totals in the caps' currency);
#   claims:   per claim: merchant (false: no key, only the counters, a Cluster's
#             second step), idempotency key, request hash, amount (a string, so
#             Lua never rounds it), counter count, then that many counter numbers
#             (1-based, into the counters);
# then the caps, a JSON array of [currency, day (20261207), year, default tier, {tier: [per
# transaction, daily, yearly, lifetime limits (-1: uncapped)]}], and the key that
# says the holders' tiers are loaded ('' when no counter is a KYC one).
# Returns {statuses, error, responses...}: one status character per claim ('0' new,
# '2' in flight, '3' conflict, '4' count limit, '5' amount limit, '6' a KYC cap, 'R'
# replay, 'M' a key not served here), the error of the last 'M' (or ''), then for
# each replay its stored response and for each '6' the holder's tier, \31, and the
# cap reached, in order. Or {'T'} alone, nothing applied, when the tiers are not
# loaded (a Redis restarted): the store loads them and calls again.
#
# A holder's KYC state is one hash beside its velocity counters, <prefix>:{i:<fp>}:k:
# field 'tier' holds tier .. ':' .. seq, and per currency C, 'C:d' and 'C:y' hold the
# day's and the year's total as day .. ':' .. total (a total kept under an earlier day
# counts as zero), 'C:l' the lifetime total. One HMGET reads a holder's tier and totals
# in a currency and one HSET writes them back, per batch.
CLAIM_SCRIPT = (
    r"""#!lua flags=allow-cross-slot-keys
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local retention_ms = ARGV[3]
local prefix = ARGV[4]

-- The counters once per batch: key name, window, limit, status when over it.
-- Each Redis key's running state is shared by every counter naming it.
local tiers_loaded = ARGV[8]
if tiers_loaded ~= '' then
    local loaded = redis.pcall('EXISTS', tiers_loaded)
    if type(loaded) == 'table' or loaded == 0 then
        return {'T'}
    end
end
local caps = cjson.decode(ARGV[7])
local counters, states, fields = {}, {}, cjson.decode(ARGV[5])
for f = 1, #fields, 7 do
    local by_amount, cap, pay = fields[f + 4], fields[f + 5], fields[f + 6]
    local tagged = prefix .. ':{' .. fields[f] .. '}'
    if cap > 0 or pay ~= 0 then
        -- A holder's hash (KYC tier and totals, activity): one state per hash.
        local key = tagged .. ':k'
        local state = states[key]
        if state == nil then
            state = {key = key, holder = true, currencies = {}, totals = {}, changed = {}}
            states[key] = state
        end
        local set = cap > 0 and caps[cap] or nil
        if set then
            state.currencies[set[1]] = set
        end
        if pay ~= 0 then  -- a payer reads and writes its activity, a receiver its payers
            if pay[4] then
                state.receives = true
            else
                state.pays = true
            end
        end
        counters[#counters + 1] = {state = state, caps = set, pay = pay ~= 0 and pay or nil}
    else
        local key = tagged .. ':v:' .. fields[f + 1]
        if states[key] == nil then
            states[key] = {key = key, window = fields[f + 2], delta = 0}
        end
        counters[#counters + 1] = {
            state = states[key],
            limit = tonumber(fields[f + 3]),
            by_amount = by_amount,
            over = by_amount and 5 or 4,
        }
    end
end
"""
    + HOLDER_LUA
    + r"""
-- Reads a holder's hash once per batch: its tier, its activity when a payment joins it,
-- and its totals in every currency the batch pays in; nil and the error when it is not
-- served here.
local function load_holder(state)
    if not state.loaded then
        local names, order = {'tier'}, {}
        if state.pays then
            names[2], names[3] = 'a', 'dst'
        end
        if state.receives then
            names[#names + 1] = 'src'
        end
        local at = #names
        for c, _ in pairs(state.currencies) do
            order[#order + 1] = c
            names[#names + 1] = c
        end
        local got = redis.pcall('HMGET', state.key, unpack(names))
        if got.err then
            return nil, got.err
        end
        state.tier = got[1] and string.match(got[1], '^[^:]*') or ''
        if state.pays then
            state.act, state.dst = unpack_activity(got[2]), parse_seen(got[3])
        end
        if state.receives then
            state.src = parse_seen(got[at])
        end
        for i, c in ipairs(order) do
            local set = state.currencies[c]
            state.totals[c] = unpack_totals(got[at + i], set[2], set[3])
        end
        state.loaded = true
    end
    return state
end

-- The cap an amount would go over in the holder's tier (a tier not configured, or
-- none, is held to the default tier's), or nil.
local function over_cap(state, set, amount)
    local limits = set[5][state.tier] or set[5][set[4]]
    local totals = state.totals[set[1]]
    for i = 1, 4 do
        if limits[i] >= 0 and totals[i] + amount > limits[i] then
            return CAP_NAMES[i]
        end
    end
    return nil
end

local function flush_holder(state)
    local args = {}
    for c, _ in pairs(state.changed) do
        if c ~= 'a' and c ~= 'dst' and c ~= 'src' then
            args[#args + 1] = c
            args[#args + 1] = pack_totals(state.totals[c])
        end
    end
    for name, seen in pairs({dst = state.dst, src = state.src}) do
        if state.changed[name] then
            args[#args + 1] = name
            args[#args + 1] = pack_seen(seen)
        end
    end
    if state.changed.a then
        args[#args + 1] = 'a'
        args[#args + 1] = pack_activity(state.act)
    end
    if #args > 0 then
        redis.call('HSET', state.key, unpack(args))
    end
    state.changed = {}
end

-- Each counter is read at most once per batch and written once at its end: the
-- counters a batch's items share (a merchant's) cost two calls per batch, not
-- three per item. Claims still see each other in order: value is what the
-- counter holds after the claims before this one.
local EXACT = 2 ^ 52  -- below it, a double holds every integer exactly

-- counter here is a key's state: key, window, value (after the claims so far),
-- existed (before this batch), delta (moved by this batch, not written yet).
-- Returns nil and the error when the key is not served here.
local function load(counter)
    if counter.value == nil then
        local stored = redis.pcall('GET', counter.key)
        if type(stored) == 'table' then
            return nil, stored.err
        end
        counter.existed = stored ~= false
        counter.value = tonumber(stored or '0')
    end
    return counter.value
end

local function flush(counter)
    if counter.delta ~= 0 then
        local delta = string.format('%.0f', counter.delta)
        if counter.existed then
            redis.call('INCRBY', counter.key, delta)  -- keeps the window it has
        else
            -- Only a counter this batch creates gets a window; later claims keep it.
            redis.call('SET', counter.key, delta, 'EX', counter.window)
            counter.existed = true
        end
        counter.delta = 0
    end
end

local function move(counter, increment)
    local by = tonumber(increment)
    if by >= EXACT then
        -- Too large for a double to sum exactly: written at once, as the string it came as.
        flush(counter)
        redis.call('INCRBY', counter.key, increment)
        if not counter.existed then
            redis.call('EXPIRE', counter.key, counter.window)
            counter.existed = true
        end
    else
        if math.abs(counter.delta + by) >= EXACT then
            flush(counter)
        end
        counter.delta = counter.delta + by
    end
    counter.value = counter.value + by
end

local statuses, replies, problem = {}, {}, ''
fields = cjson.decode(ARGV[6])
local f = 1
while f <= #fields do
    local merchant, hash, amount, n = fields[f], fields[f + 2], fields[f + 3], fields[f + 4]
    local key = merchant and prefix .. ':{m:' .. merchant .. '}:i:' .. fields[f + 1]
    -- This claim's counters, each with the increment it adds: the amount
    -- (kept a string, so a large one is written exactly) or one call.
    local mine, increments = {}, {}
    for i = 1, n do
        local counter = counters[fields[f + 4 + i]]
        mine[i] = counter
        increments[i] = counter.by_amount and amount or '1'
    end
    f = f + 5 + n

    local status, held = nil, false
    if key then
        -- Claims the key if it is absent and answers what it held otherwise, in one call.
        local claimed = 't' .. hash .. '\31' .. ARGV[1]
        held = redis.pcall('SET', key, claimed, 'NX', 'PX', retention_ms, 'GET')
        if type(held) == 'table' then
            status, problem = 'M', held.err
        elseif held then
            -- 't' or 'r', the request hash, \31, then the claim time or the response
            -- (which may hold \31 itself: only the first one separates).
            local cut = string.find(held, '\31', 2, true)
            if string.sub(held, 2, cut - 1) ~= hash then
                status = '3'
            elseif string.byte(held, 1) == 114 then  -- 'r': done
                status = 'R'
                replies[#replies + 1] = string.sub(held, cut + 1)
            elseif now - tonumber(string.sub(held, cut + 1)) < lease then
                status = '2'
            else
                -- In flight past its lease (the holder crashed): take it over.
                redis.call('SET', key, claimed, 'PX', retention_ms)
            end
        end
    end
    if status == nil then
        -- New: the key is claimed (it stays claimed even if a counter declines it).
        -- The counters move only if every one of them fits; the first one over
        -- its limit names the decline.
        status = '0'
        for i = 1, n do
            local counter, value, err, cap = mine[i], nil, nil, nil
            if counter.state.holder then
                value, err = load_holder(counter.state)
                if value and counter.caps then
                    cap = over_cap(value, counter.caps, tonumber(amount))
                end
            else
                value, err = load(counter.state)
            end
            if value == nil then
                -- Not served here: this claim is undone, so it can go where it lives.
                status, problem = 'M', err
                if key then
                    redis.call('DEL', key)
                end
                break
            end
            if cap then
                status = '6'
                replies[#replies + 1] = counter.state.tier .. '\31' .. cap
                break
            end
            if not counter.state.holder and value + tonumber(increments[i]) > counter.limit then
                status = tostring(counter.over)
                break
            end
        end
        if status == '0' then
            for i = 1, n do
                local counter = mine[i]
                local state = counter.state
                if state.holder then
                    if counter.caps then
                        local c, by = counter.caps[1], tonumber(amount)
                        local totals = state.totals[c]
                        totals[2], totals[3], totals[4] = totals[2] + by, totals[3] + by, totals[4] + by
                        state.changed[c] = true
                    end
                    if counter.pay then
                        -- The activity before this payment, for the risk step; then the payment joins it.
                        replies[#replies + 1] = record_payment(state, counter.pay, now)
                    end
                else
                    move(state, increments[i])
                end
            end
        end
    end
    statuses[#statuses + 1] = status
end
for _, state in pairs(states) do
    if state.holder then
        flush_holder(state)
    else
        flush(state)
    end
end
table.insert(replies, 1, problem)
table.insert(replies, 1, table.concat(statuses))
return replies
"""
)

# ARGV: retention ms, key prefix, then two JSON arrays (ids encoded, as for claims)
# and the responses:
#   counters:    the distinct counters released, 4 fields each: subject, name,
#                whether it counts amounts (else calls), and for a holder's counter
#                [currency of the KYC totals it gives back to ('' none), their day
#                (20261207) and year, whether it counts a decline in its activity]
#                (else 0);
#   completions: per completion: merchant, idempotency key, request hash, response
#                length (-1 gives the key back instead, -2 leaves the key alone and
#                only releases the counters), amount (a string), whether it was
#                answered (a decline; else given back for a retry), counter count,
#                then that many counter numbers (1-based, into the counters);
#   responses:   every stored response, concatenated in order (binary-safe: cut by length);
# then now (a decline counts in the hour it is completed in).
# Returns {error, numbers...}: the error of the last completion a key of which is
# not served here (or ''), then the 1-based number of each such completion; nothing
# of those was applied.
COMPLETE_SCRIPT = (
    r"""#!lua flags=allow-cross-slot-keys
local retention_ms = ARGV[1]
local prefix = ARGV[2]
local responses = ARGV[5]
local now = tonumber(ARGV[6])
"""
    + HOLDER_LUA
    + r"""
local counters, fields = {}, cjson.decode(ARGV[3])
for f = 1, #fields, 4 do
    local holder = fields[f + 3]
    if holder ~= 0 then
        counters[#counters + 1] = {key = prefix .. ':{' .. fields[f] .. '}:k', holder = holder}
    else
        counters[#counters + 1] = {
            key = prefix .. ':{' .. fields[f] .. '}:v:' .. fields[f + 1],
            by_amount = fields[f + 2],
        }
    end
end

-- Gives amount back to a holder's totals kept as `stored`: to the day and the year only
-- when they are the payment's (an ended day keeps what it had), never below zero.
local function given_back(stored, day, year, amount)
    local totals = unpack_totals(stored, day, year)
    if totals[5] == day then
        totals[2] = math.max(totals[2] - amount, 0)
    end
    if totals[6] == year then
        totals[3] = math.max(totals[3] - amount, 0)
    end
    totals[4] = math.max(totals[4] - amount, 0)
    return pack_totals(totals)
end

local failed, problem = {}, ''
fields = cjson.decode(ARGV[4])
local f, at, number = 1, 1, 0
while f <= #fields do
    number = number + 1
    local length, amount, answered, n = fields[f + 3], fields[f + 4], fields[f + 5], fields[f + 6]
    -- Every key is touched once before anything is written: first the counters
    -- (most completions release none: no table for them)...
    local exists, err = nil, nil
    if n > 0 then
        exists = {}
        for i = 1, n do
            local counter, found = counters[fields[f + 6 + i]], nil
            if counter.holder then  -- its totals in the currency and its activity, read now
                found = redis.pcall('HMGET', counter.key, counter.holder[1], 'a')
            else
                found = redis.pcall('EXISTS', counter.key)
            end
            if type(found) == 'table' and found.err then
                err = found.err
                break
            end
            exists[i] = found
        end
    end
    -- ...then the idempotency key.
    if err == nil and length ~= -2 then
        local key = prefix .. ':{m:' .. fields[f] .. '}:i:' .. fields[f + 1]
        local done
        if length >= 0 then
            -- Done: 'r', the request hash, \31, the response; it overwrites the claim.
            local record = 'r' .. fields[f + 2] .. '\31' .. string.sub(responses, at, at + length - 1)
            done = redis.pcall('SET', key, record, 'PX', retention_ms)
        else
            done = redis.pcall('DEL', key)  -- given back: the key may be claimed again
        end
        if type(done) == 'table' and done.err then
            err = done.err
        end
    end
    if err then
        failed[#failed + 1] = number
        problem = err
    else
        for i = 1, n do
            -- A counter whose window already ended stays gone rather than coming back
            -- negative; the decrement stays a string so Lua's doubles never round it.
            local counter = counters[fields[f + 6 + i]]
            if counter.holder then
                local held, c, by, args = exists[i], counter.holder[1], tonumber(amount), {}
                if c ~= '' and held[1] then  -- a holder whose totals are gone has nothing to give back
                    args = {c, given_back(held[1], counter.holder[2], counter.holder[3], by)}
                end
                if counter.holder[4] and answered then  -- declined, not given back for a retry
                    local a = unpack_activity(held[2])
                    roll_all(a, now)
                    a[7] = a[7] + 1
                    args[#args + 1] = 'a'
                    args[#args + 1] = pack_activity(a)
                end
                if #args > 0 then
                    redis.call('HSET', counter.key, unpack(args))
                end
            elseif exists[i] == 1 and redis.call('DECRBY', counter.key, counter.by_amount and amount or '1') < 0 then
                redis.call('SET', counter.key, '0', 'KEEPTTL')
            end
        end
    end
    if length > 0 then
        at = at + length
    end
    f = f + 7 + n
end
table.insert(failed, 1, problem)
return failed
"""
)

# ARGV: key prefix, the key that says the tiers are loaded ('' to leave it alone), then
# a JSON array of holders' tiers, 3 fields each: holder (encoded), tier, seq. A tier
# (the 'tier' field of the holder's KYC hash) is written unless it holds a later seq
# (a SetHolderTier that landed during a reload keeps its tier); the loaded key is set
# last, in the same call. No expiry: a tier holds until it is changed.
SET_TIERS_SCRIPT = r"""#!lua flags=allow-cross-slot-keys
local prefix, loaded = ARGV[1], ARGV[2]
local fields = cjson.decode(ARGV[3])
for f = 1, #fields, 3 do
    local key = prefix .. ':{i:' .. fields[f] .. '}:k'
    local held = redis.call('HGET', key, 'tier')
    local seq = tonumber(fields[f + 2])
    if not held or tonumber(string.match(held, ':(%d+)$') or '0') < seq then
        redis.call('HSET', key, 'tier', fields[f + 1] .. ':' .. fields[f + 2])
    end
end
if loaded ~= '' then
    redis.call('SET', loaded, '1')
end
return 0
"""

# Holders' tiers per SET_TIERS_SCRIPT call when reloading: Redis runs one script at
# a time, so a long reload is cut into calls that each leave it free soon.
TIERS_PER_CALL = 5_000
# How long one worker may take to reload the tiers before another tries (ms), and how
# often the others look whether it is done (s).
RELOAD_LEASE_MS = 30_000
RELOAD_POLL_SECONDS = 0.05


# Status characters of the claim script's answer, as bytes hold them.
REPLAY = ord("R")
OVER_CAP = ord("6")
NOT_SERVED = ord("M")
REPLIED = (REPLAY, OVER_CAP)  # the statuses that come with a reply
TIERS_NOT_LOADED = b"T"  # the whole answer: see CLAIM_SCRIPT
MOVED = ord("0")  # new: claimed (when keyed) and every counter moved
# The status each character of the claim script's answer stands for, but a replay's.
_STATUSES = {
    ord("0"): ClaimStatus.NEW,
    ord("2"): ClaimStatus.IN_FLIGHT,
    ord("3"): ClaimStatus.CONFLICT,
    ord("4"): ClaimStatus.COUNT_LIMIT,
    ord("5"): ClaimStatus.AMOUNT_LIMIT,
}


_TAKES_KEY = (ClaimStatus.NEW, ClaimStatus.COUNT_LIMIT, ClaimStatus.AMOUNT_LIMIT, ClaimStatus.TIER_LIMIT)


# The labels of SwitchMetrics.state_store_events.
SLOT_MAP_READ = (("kind", "slot_map_read"),)
NOT_SERVED_EVENT = (("kind", "not_served"),)
GIVEN_BACK = (("kind", "given_back"),)
GIVE_BACK_FAILED = (("kind", "give_back_failed"),)


class KeyNotServed(RuntimeError):
    """A script found a key its node does not serve (or cannot use: a wrong type);
    what was sent for that key was not applied."""


class RedisStateStore:
    """The store on one Redis primary (with replicas or Sentinel); see RedisClusterStateStore."""

    def __init__(
        self,
        client: Redis,
        prefix: str,
        retention_seconds: float,
        lease_seconds: float,
        events: MetricCounter | None = None,
        *,
        tier_source: TierSource | None = None,
    ) -> None:
        """tier_source: where the holders' tiers are read from when Redis lost them (the journal)."""
        self._client = client
        self._events = events or MetricCounter("unexported", "")
        self.keys = KeyLayout(prefix, retention_seconds, lease_seconds)
        self._tier_source = tier_source
        self._claim_script = client.register_script(CLAIM_SCRIPT)
        self._complete_script = client.register_script(COMPLETE_SCRIPT)
        self._set_tiers_script = client.register_script(SET_TIERS_SCRIPT)

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
    ) -> RedisStateStore:
        # A blocking pool makes a burst of concurrent batches wait for a connection
        # instead of failing with "Too many connections".
        pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, decode_responses=False)
        return cls(Redis.from_pool(pool), prefix, retention_seconds, lease_seconds, events, tier_source=tier_source)

    async def claim(self, claims: Sequence[Claim], now: float) -> list[ClaimOutcome]:
        if not claims:
            return []
        args = self.keys.claim_args(claims, now)
        answer = await self._claim_script(args=args)
        if answer == [TIERS_NOT_LOADED]:
            await self._reload_tiers()
            answer = await self._claim_script(args=args)
            if answer == [TIERS_NOT_LOADED]:
                raise KeyNotServed("the holders' KYC tiers were lost again while being reloaded")
        statuses, problem, *responses = answer
        outcomes = claim_outcomes(statuses, responses, claims)
        if NOT_SERVED in statuses:
            # Only a broken key gets here on one primary: give back what the batch
            # claimed, so nothing stays held by a call that failed.
            self._events.inc(NOT_SERVED_EVENT, statuses.count(NOT_SERVED))
            undo = give_backs(claims, outcomes)
            await self.complete(undo, now)
            self._events.inc(GIVEN_BACK, len(undo))
            raise KeyNotServed(problem.decode(errors="replace"))
        return outcomes  # type: ignore[return-value]  # no None: no 'M'

    async def complete(self, completions: Sequence[Completion], now: float) -> None:
        if not completions:
            return
        problem, *failed = await self._complete_script(args=self.keys.complete_args(completions, now))
        if failed:
            raise KeyNotServed(f"{len(failed)} completions not applied: {problem.decode(errors='replace')}")

    async def set_tiers(self, tiers: Sequence[HolderTier]) -> None:
        if tiers:
            for args in self.keys.set_tiers_args(tiers, ""):
                await self._set_tiers_script(args=args)

    async def _reload_tiers(self) -> None:
        """Loads every holder's tier from the journal, once for all workers: one takes a
        short lease and loads them, the others wait until the loaded key is set (or the
        lease runs out, and one of them loads them in turn)."""
        loaded, loading = self.keys.tiers_loaded, self.keys.tiers_loaded + ":loading"
        while not await self._client.exists(loaded):
            if await self._client.set(loading, "1", nx=True, px=RELOAD_LEASE_MS):
                try:
                    tiers = list(await self._tier_source()) if self._tier_source is not None else []
                    log.warning("Redis holds no KYC tiers (restarted?): loading %d from the journal", len(tiers))
                    for args in self.keys.set_tiers_args(tiers, loaded):
                        await self._set_tiers_script(args=args)
                finally:
                    await self._client.delete(loading)
                return
            await asyncio.sleep(RELOAD_POLL_SECONDS)

    async def check_server(self) -> None:
        """Refuses, at start, a Redis too old for the scripts (SET with NX and GET needs 7.0):
        otherwise every claim would fail, batch after batch."""
        check_version(str((await self._client.info("server")).get("redis_version", "0")))

    async def close(self) -> None:
        await self._client.aclose()


class KeyLayout:
    """One key prefix's layout and the two scripts' arguments, for both Redis stores.

    An idempotency key is named <prefix>:{m:<merchant>}:i:<key>, a counter
    <prefix>:{<subject>}:v:<name>, with the merchant, the key and the id part of
    the subject written by encode_id (a subject's kind, 'm' or 'i', and its first
    ':' stay), so that the hash tag always ends at the subject's end and ':i:' /
    ':v:' always follow it: two different things never get one name, and a
    merchant's key and counters always share its slot. A counter's name is left as
    it is: it is the switch's own (window, currency, bucket), and as the name's
    last part, after ':v:', it cannot reach into another part whatever it holds.

    The scripts build the same names from the prefix and the encoded parts (see
    their ARGV comments); idempotency_key and counter_key are for tests and tools
    that look at Redis directly, tagged() for a cluster client that places keys by
    their hash tag.
    """

    def __init__(self, prefix: str, retention_seconds: float, lease_seconds: float) -> None:
        self.prefix = prefix
        self._retention_ms = str(max(1, round(retention_seconds * 1000)))
        self._lease = repr(float(lease_seconds))

    def claim_args(
        self, claims: Sequence[Claim], now: float, counters_only: bool = False, tiers_loaded: str | None = None
    ) -> tuple[Any, ...]:
        """tiers_loaded: the key whose absence says the holders' tiers are not loaded
        (None: this layout's, on one primary)."""
        counters, fields, caps = pack_claims(claims, counters_only)
        loaded = "" if caps == b"[]" else self.tiers_loaded if tiers_loaded is None else tiers_loaded
        return (repr(float(now)), self._lease, self._retention_ms, self.prefix, counters, fields, caps, loaded)

    def complete_args(
        self, completions: Sequence[Completion], now: float, keyed: Sequence[bool] | None = None
    ) -> tuple[Any, ...]:
        counters, fields, responses = pack_completions(completions, keyed)
        return (self._retention_ms, self.prefix, counters, fields, responses, repr(float(now)))

    def tagged(self, subject: str) -> str:
        """Every key name of a subject ("m:<merchant>", a counter's) up to and including
        its hash tag: all its slot depends on."""
        return f"{self.prefix}:{{{encode_subject(subject)}}}"

    def idempotency_key(self, merchant_id: str, idempotency_key: str) -> str:
        return f"{self.tagged('m:' + merchant_id)}:i:{encode_id(idempotency_key)}"

    def counter_key(self, counter: Counter) -> str:
        return f"{self.tagged(counter.subject)}:v:{counter.name}"

    def set_tiers_args(self, tiers: Sequence[HolderTier], loaded: str) -> Iterator[tuple[str, str, bytes]]:
        """SET_TIERS_SCRIPT's arguments for these tiers, TIERS_PER_CALL a call (at least one
        call, so that loaded is set even with none), loaded set by the last."""
        for start in range(0, max(len(tiers), 1), TIERS_PER_CALL):
            last = start + TIERS_PER_CALL >= len(tiers)
            yield self.prefix, loaded if last else "", pack_tiers(tiers[start : start + TIERS_PER_CALL])

    @property
    def tiers_loaded(self) -> str:
        """On one primary, the key that says every holder's tier is loaded from the journal."""
        return f"{self.prefix}:kyc-tiers-loaded"


# Key names are built by concatenation, so an id that goes into one is written with
# '%', '{', '}' and ':' percent-encoded (every other character, non-ASCII included,
# as it is): injective, since '%' is escaped too, and free of the characters that
# delimit a name's parts. Plain ids ("m-1", UUIDs, hex fingerprints) hold none of
# the four and keep the names they had before this encoding, so an upgrade finds
# their keys where they were; only an id holding one of them moves to a new name.
# Done here rather than in the scripts: the switch's workers scale out, a Redis
# primary's one thread does not. The packers encode a batch's merchant ids and keys
# only when its packed JSON holds one of the four (see _delimited).


def encode_id(value: str) -> str:
    """A merchant id, idempotency key or a subject's id as key names hold it."""
    if "%" in value or ":" in value or "{" in value or "}" in value:
        return value.replace("%", "%25").replace("{", "%7B").replace("}", "%7D").replace(":", "%3A")
    return value


def encode_subject(subject: str) -> str:
    """A counter's subject ("i:<fingerprint>", "m:<merchant>") as key names hold it: its
    kind, up to the first ':', and the rest each encoded, that ':' kept. Injective:
    the output holds one ':' exactly when the subject holds any."""
    if "%" in subject or "{" in subject or "}" in subject or subject.count(":") > 1:
        kind, colon, rest = subject.partition(":")
        return encode_id(kind) + colon + encode_id(rest)
    return subject


def pack_claims(claims: Sequence[Claim], counters_only: bool = False) -> tuple[bytes, bytes, bytes]:
    """The claim script's three JSON arrays (counters, claims, caps) for these claims.
    counters_only: no idempotency key is claimed, only the counters are checked and moved."""
    packed = _pack_claims(claims, counters_only, encode=False)
    if _delimited(packed[1]) or _braced(packed[0]):
        packed = _pack_claims(claims, counters_only, encode=True)
    return packed


def _pack_claims(claims: Sequence[Claim], counters_only: bool, encode: bool) -> tuple[bytes, bytes, bytes]:
    """pack_claims' work; encode: every id encoded. Else only the subjects holding more
    than one ':' are (the counters' array cannot tell: a counter's name holds ':')."""
    # Each counter's number in the payload, by identity: a batch's items share
    # their merchant's counter objects, and an id costs less to hash than a
    # dataclass (two equal counters sent twice are still checked correctly).
    numbers: dict[int, int] = {}
    counters: list[str | int | bool | list[str | bool]] = []
    fields: list[str | int | bool] = []
    caps: dict[int, tuple[int, KycCaps]] = {}  # each distinct KycCaps' number, by identity as counters'
    for claim in claims:
        _refuse_separator(claim.request_hash)
        merchant: str | bool = False if counters_only else claim.merchant_id
        key = claim.idempotency_key
        if encode:
            key = encode_id(key)
            if not counters_only:
                merchant = encode_id(claim.merchant_id)
        fields += (merchant, key, claim.request_hash, str(claim.amount_minor))
        fields.append(len(claim.counters))
        for counter in claim.counters:
            number = numbers.get(id(counter))
            if number is None:
                number = numbers[id(counter)] = len(numbers) + 1
                subject = counter.subject
                if encode or subject.count(":") > 1:
                    subject = encode_subject(subject)
                counters += (subject, counter.name, str(counter.window_seconds), str(counter.limit))
                counters += (counter.by_amount, _caps_number(caps, counter.caps), _payment(counter.payment))
            fields.append(number)
    return _json(counters), _json(fields), _pack_caps(caps)


def _payment(payment: Payment | None) -> list[str | bool] | int:
    if payment is None:
        return 0
    return [str(payment.usd_cents), payment.near_threshold, payment.counterparty, payment.receiving]


def _caps_number(caps: dict[int, tuple[int, KycCaps]], of: KycCaps | None) -> int:
    if of is None:
        return 0
    numbered = caps.get(id(of))
    if numbered is None:
        numbered = caps[id(of)] = (len(caps) + 1, of)
    return numbered[0]


def _pack_caps(caps: dict[int, tuple[int, KycCaps]]) -> bytes:
    """The KYC caps as the claim script reads them, in number order."""
    return orjson.dumps([[c.currency, int(c.day), int(c.year), c.default, dict(c.limits)] for _, c in caps.values()])


def pack_tiers(tiers: Sequence[HolderTier]) -> bytes:
    """The tiers as SET_TIERS_SCRIPT reads them, holders encoded as key names hold them."""
    fields: list[str] = []
    for tier in tiers:
        fields += (encode_id(tier.holder), tier.tier, str(tier.seq))
    return _json(fields)


def claim_outcomes(statuses: bytes, responses: Sequence[bytes], claims: Sequence[Claim]) -> list[ClaimOutcome | None]:
    """Each claim's outcome from the claim script's answer; None where its key was not served."""
    replied = iter(responses)
    outcomes: list[ClaimOutcome | None] = []
    for status, claim in zip(statuses, claims, strict=True):
        if status == NOT_SERVED:
            outcomes.append(None)
        elif status == MOVED:
            outcomes.append(ClaimOutcome(ClaimStatus.NEW, activity=activity_replies(claim, replied)))
        else:
            outcomes.append(claim_outcome(status, next(replied) if status in REPLIED else None))
    return outcomes


def activity_replies(claim: Claim, replied: Iterator[bytes]) -> tuple[bytes, ...]:
    """A moved claim's share of the answer: one activity per counter of it with a payment."""
    return tuple([next(replied) for counter in claim.counters if counter.payment is not None])


def claim_outcome(status: int, reply: bytes | None) -> ClaimOutcome:
    """One claim's outcome from its status character (not 'M') and its reply: a replay's
    response, or for a KYC cap the tier and the counter over its cap."""
    if status == REPLAY:
        return ClaimOutcome(ClaimStatus.REPLAY, reply)
    if status == OVER_CAP:
        assert reply is not None
        tier, _, over = reply.decode().partition(_SEP)
        return ClaimOutcome(ClaimStatus.TIER_LIMIT, tier=tier, over=over)
    return ClaimOutcome(_STATUSES[status])


def pack_completions(
    completions: Sequence[Completion], keyed: Sequence[bool] | None = None
) -> tuple[bytes, bytes, bytes]:
    """The complete script's two JSON arrays (counters, completions) and responses.
    keyed, one per completion: False leaves the key as it is and only releases the
    counters (a Cluster's share of a completion on another node); None: all keyed."""
    packed = _pack_completions(completions, keyed, encode=False)
    if _delimited(packed[1]) or _braced(packed[0]):
        packed = _pack_completions(completions, keyed, encode=True)
    return packed


def _pack_completions(
    completions: Sequence[Completion], keyed: Sequence[bool] | None, encode: bool
) -> tuple[bytes, bytes, bytes]:
    """pack_completions' work; encode as in _pack_claims."""
    numbers: dict[int, int] = {}  # as in _pack_claims()
    counters: list[str | bool | int | list[str | int | bool]] = []
    fields: list[str | int] = []
    responses: list[bytes] = []
    for done, has_key in zip(completions, keyed or repeat(True), strict=keyed is not None):
        _refuse_separator(done.request_hash)
        response = done.response
        if not has_key:
            length = -2
        elif response is None:
            length = -1
        else:
            length = len(response)
            responses.append(response)
        release = done.release
        merchant, key = done.merchant_id, done.idempotency_key
        if encode:
            merchant, key = encode_id(merchant), encode_id(key)
        fields += (merchant, key, done.request_hash, length, str(done.amount_minor), response is not None)
        fields.append(len(release))
        for counter in release:
            number = numbers.get(id(counter))
            if number is None:
                number = numbers[id(counter)] = len(numbers) + 1
                subject = counter.subject
                if encode or subject.count(":") > 1:
                    subject = encode_subject(subject)
                counters += (subject, counter.name, counter.by_amount, _holder_release(counter))
            fields.append(number)
    return _json(counters), _json(fields), b"".join(responses)


def _holder_release(counter: Counter) -> list[str | int | bool] | int:
    """A holder counter's release as the complete script reads it (0: a velocity counter's)."""
    caps, payment = counter.caps, counter.payment
    if caps is None and payment is None:
        return 0
    counts_decline = payment is not None and not payment.receiving
    if caps is None:
        return ["", 0, 0, counts_decline]
    return [caps.currency, int(caps.day), int(caps.year), counts_decline]


def taken(claims: Sequence[Claim], outcomes: Sequence[ClaimOutcome | None]) -> list[Claim]:
    """The claims that took their key: new ones, and those a limit declined."""
    return [
        claim
        for claim, outcome in zip(claims, outcomes, strict=True)
        if outcome is not None and outcome.status in _TAKES_KEY
    ]


def give_backs(claims: Sequence[Claim], outcomes: Sequence[ClaimOutcome | None]) -> list[Completion]:
    """What undoes these claims on one primary: every key they took given back, and
    the counters of the new ones (a declined claim moved none) released."""
    return [
        Completion(
            claim.merchant_id,
            claim.idempotency_key,
            claim.request_hash,
            None,
            claim.amount_minor,
            claim.counters if outcome.status is ClaimStatus.NEW else (),
        )
        for claim, outcome in zip(claims, outcomes, strict=True)
        if outcome is not None and outcome.status in _TAKES_KEY
    ]


MIN_VERSION = (7, 0)  # SET key value NX GET


def check_version(version: str) -> None:
    if not supports(version):
        needed = ".".join(map(str, MIN_VERSION))
        raise StartupError(f"stores.redis_url: Redis {version}; the switch needs Redis {needed} or later")


def supports(version: str) -> bool:
    """Whether a Redis server of this version (INFO's redis_version, "7.0.15") runs the scripts."""
    parts = [int(part) if part.isdigit() else 0 for part in version.split(".")[:2]]
    return tuple(parts + [0] * (2 - len(parts))) >= MIN_VERSION


def _delimited(packed: bytes) -> bool:
    """Whether a string in this JSON array of strings, numbers and booleans holds a
    character encode_id escapes. Exact: orjson writes an array with none of them
    outside its strings, and non-ASCII characters as bytes of 0x80 and above. A
    batch of plain ids (nearly every one) is packed once and scanned a few times in
    C, instead of testing each id in Python; a request hash (or a counter's name,
    see _braced) holding one of them only costs the second packing."""
    return b":" in packed or b"%" in packed or b"{" in packed or b"}" in packed


def _braced(packed: bytes) -> bool:
    """_delimited but for ':', which every counter's array holds (in its names)."""
    return b"%" in packed or b"{" in packed or b"}" in packed


def _json(fields: list[Any]) -> bytes:
    """The fields as one JSON array, for the script's cjson.decode."""
    return orjson.dumps(fields)


def _refuse_separator(request_hash: str) -> None:
    """A stored record is cut at the first \\x1f after its request hash, so a hash may not hold one."""
    if _SEP in request_hash:
        raise ValueError("a request hash holds the control character \\x1f")
