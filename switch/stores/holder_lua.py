"""The Lua both state-store scripts share for a holder's hash: KYC totals and activity.

A holder (an instrument's fingerprint; a destination account is one too) has one hash,
<prefix>:{i:<fingerprint>}:k, beside its velocity counters:

    tier     tier .. ':' .. seq (switch.stores.redis.SET_TIERS_SCRIPT)
    C        the KYC totals paid in currency C: its UTC day and the day's total, its year
             and the year's total, the lifetime total (5 little-endian doubles; a day
             or year before the payment's counts as zero)
    a        the activity: 17 little-endian doubles, in ACTIVITY_FIELDS order
    dst      the destinations it paid, src the holders who paid it: id@hour, ...,
             at most DISTINCT_KEPT each, the latest hour each was seen

Windows are sliding, estimated from two fixed ones: the current (hour, UTC day, 30-day
period) and the one before it, weighted by the share of it the sliding window still
covers. switch.stores.memory does the same in Python; switch.risk.activity reads the
answer.
"""

from __future__ import annotations

DISTINCT_KEPT = 32  # counterparties remembered per holder, each way

# The activity's numbers, 1-based in Lua: first and last payment (epoch seconds, 0:
# none); the hour window (slot, then previous and current attempts, previous and current
# declines); the day window (slot, USD cents previous and current, near-threshold
# payments previous and current); the 30-day window (slot, payments previous and
# current, USD cents previous and current).
ACTIVITY_FIELDS = (
    "first", "last",
    "hour", "count_prev", "count", "declines_prev", "declines",
    "day", "cents_prev", "cents", "near_prev", "near",
    "month", "count_30d_prev", "count_30d", "cents_30d_prev", "cents_30d",
)  # fmt: skip

HOLDER_LUA = (
    r"""
local CAP_NAMES = {'per_transaction', 'daily', 'yearly', 'lifetime'}
local HOUR, DAY, MONTH, KEPT = 3600, 86400, 2592000, """
    + str(DISTINCT_KEPT)
    + r"""

-- A holder's totals in one currency, as kept: the UTC day (20261207) and its total, the
-- year and its total, the lifetime total: 5 little-endian doubles.
local TOTALS = '<ddddd'

-- {0 (a payment alone), the day's total, the year's, the lifetime's, the day, the year}
-- as a payment on `day` of `year` counts them: a day (or year) after the one kept starts
-- afresh; the one kept, or a later one (a claim timed by a clock behind), is counted.
local function unpack_totals(stored, day, year)
    if stored and #stored == 40 then
        local held_day, on_day, held_year, in_year, lifetime = struct.unpack(TOTALS, stored)
        if held_day < day then
            held_day, on_day = day, 0
        end
        if held_year < year then
            held_year, in_year = year, 0
        end
        return {0, on_day, in_year, lifetime, held_day, held_year}
    end
    return {0, 0, 0, 0, day, year}
end

local function pack_totals(totals)
    return struct.pack(TOTALS, totals[5], totals[2], totals[6], totals[3], totals[4])
end

local ACTIVITY = '<' .. string.rep('d', 17)

local function unpack_activity(stored)
    if stored and #stored == 136 then
        local a = {struct.unpack(ACTIVITY, stored)}
        a[18] = nil  -- unpack's last value is where it stopped
        return a
    end
    return {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
end

local function pack_activity(a)
    return struct.pack(ACTIVITY, unpack(a))
end

-- Moves the window whose slot is a[at] (its previous and current values in the two
-- pairs after it) to slot: one slot on, current becomes previous; further, both are
-- empty. A slot behind the one kept (a worker whose clock is behind) moves nothing.
local function roll(a, at, slot)
    local held = a[at]
    if held >= slot then
        return
    end
    for p = at + 1, at + 3, 2 do
        if held == slot - 1 then
            a[p], a[p + 1] = a[p + 1], 0
        else
            a[p], a[p + 1] = 0, 0
        end
    end
    a[at] = slot
end

local function roll_all(a, now)
    roll(a, 3, math.floor(now / HOUR))
    roll(a, 8, math.floor(now / DAY))
    roll(a, 13, math.floor(now / MONTH))
end

-- The sliding window's estimate: the previous window's values at p, weighted by the
-- share of it still covered, and the current one's at p + 1.
local function sliding(a, p, now, span)
    return a[p] * (1 - (now - math.floor(now / span) * span) / span) + a[p + 1]
end

local function parse_seen(stored)
    local seen = {}
    if stored then
        for id, slot in string.gmatch(stored, '([^,@]+)@(%d+)') do
            seen[#seen + 1] = {id, tonumber(slot)}
        end
    end
    return seen
end

local function pack_seen(seen)
    local parts = {}
    for i, entry in ipairs(seen) do
        parts[i] = entry[1] .. '@' .. entry[2]
    end
    return table.concat(parts, ',')
end

-- How many of seen were seen in the last 24 hours.
local function recent(seen, hour)
    local n = 0
    for _, entry in ipairs(seen) do
        if entry[2] > hour - 24 then
            n = n + 1
        end
    end
    return n
end

-- Marks id seen at hour; forgets those older than 24 hours, and the oldest past KEPT.
local function remember(seen, id, hour)
    local kept, found = {}, false
    for _, entry in ipairs(seen) do
        if entry[1] == id then
            entry[2], found = hour, true
        end
        if entry[2] > hour - 24 then
            kept[#kept + 1] = entry
        end
    end
    if not found then
        kept[#kept + 1] = {id, hour}
    end
    if #kept > KEPT then
        table.sort(kept, function(x, y) return x[2] > y[2] end)
        for i = #kept, KEPT + 1, -1 do
            kept[i] = nil
        end
    end
    for i = #seen, 1, -1 do
        seen[i] = nil
    end
    for i, entry in ipairs(kept) do
        seen[i] = entry
    end
end

-- One payment joins its party's activity (state.changed names the fields it moved).
-- pay: {USD cents, near the reporting threshold, the other party's id, whether this
-- party receives it}. Returns the activity before it,
-- as little-endian doubles:
-- for the payer, first (1/0), attempts and declines in an hour, USD cents and
-- near-threshold payments in 24 h, destinations in 24 h, payments and USD cents in 30
-- days, seconds since the first and the last payment; for the receiver, the distinct
-- payers in 24 h.
local function record_payment(state, pay, now)
    local hour = math.floor(now / HOUR)
    if pay[4] then
        local before = recent(state.src, hour)
        remember(state.src, pay[3], hour)
        state.changed.src = true
        return struct.pack('<d', before)
    end
    local a = state.act
    roll_all(a, now)
    local first = a[1] == 0
    local answer = struct.pack(
        '<dddddddddd',
        first and 1 or 0,
        sliding(a, 4, now, HOUR),
        sliding(a, 6, now, HOUR),
        sliding(a, 9, now, DAY),
        sliding(a, 11, now, DAY),
        recent(state.dst, hour),
        sliding(a, 14, now, MONTH),
        sliding(a, 16, now, MONTH),
        first and 0 or now - a[1],
        first and 0 or now - a[2]
    )
    local cents = tonumber(pay[1])
    a[5], a[10], a[15], a[17] = a[5] + 1, a[10] + cents, a[15] + 1, a[17] + cents
    if pay[2] then
        a[12] = a[12] + 1
    end
    if first then
        a[1] = now
    end
    a[2] = now
    state.changed.a = true
    if pay[3] ~= '' then
        remember(state.dst, pay[3], hour)
        state.changed.dst = true
    end
    return answer
end
"""
)
