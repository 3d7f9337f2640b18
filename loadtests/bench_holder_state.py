"""What a payer's state costs Redis per authorization at the least, whatever the claim
script does with it: the floor under the KYC totals and the activity (switch.stores.holder_lua).

    .venv/bin/python loadtests/bench_holder_state.py [--redis-url URL] [--rounds 9]

Each layout is one Lua script over 256 holders (a batch of 256, one payer each): only
the commands that read and write the state, and for the packed layouts the unpacking
and packing, no other logic. Redis's own clock (INFO commandstats, the script's usec)
per holder, median of --rounds. The first row is what a batch pays today without risk
(the payer's velocity counter); the others are what the holder's state adds to it.
A few seconds; the keys live under a fresh prefix and are deleted.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import struct
from collections.abc import Callable

import redis

HOLDERS = 256
# (layout, what it stands for, the script's body: KEYS come from `key(i)`, i from 0).
LAYOUTS: tuple[tuple[str, str, str], ...] = (
    (
        "velocity counter (today, risk off)",
        "GET + INCRBY of the payer's counter",
        "local v = redis.call('GET', key(i)) redis.call('INCRBY', key(i), '1')",
    ),
    (
        "+ holder hash, I/O only (today's layout)",
        "and HMGET tier, a, dst, currency + HSET a, currency",
        "local v = redis.call('GET', key(i)) redis.call('INCRBY', key(i), '1') "
        "local g = redis.call('HMGET', hash(i), 'tier', 'a', 'dst', 'USD') "
        "redis.call('HSET', hash(i), 'a', g[2], 'USD', g[4])",
    ),
    (
        "+ holder hash, unpacked and packed",
        "as above, the 17 activity and 5 KYC doubles unpacked and packed again",
        "local v = redis.call('GET', key(i)) redis.call('INCRBY', key(i), '1') "
        "local g = redis.call('HMGET', hash(i), 'tier', 'a', 'dst', 'USD') "
        "local a = {struct.unpack(ACTIVITY, g[2])} a[18] = nil "
        "local t = {struct.unpack(TOTALS, g[4])} t[6] = nil "
        "redis.call('HSET', hash(i), 'a', struct.pack(ACTIVITY, unpack(a)), 'USD', struct.pack(TOTALS, unpack(t)))",
    ),
    (
        "one string per holder, velocity inside",
        "GET + SET of one value holding the counter, the tier, the totals and the activity",
        "local v = redis.call('GET', blob(i)) redis.call('SET', blob(i), v)",
    ),
    (
        "one string per holder, unpacked and packed",
        "as above, its 24 doubles unpacked, one moved, packed again",
        "local v = redis.call('GET', blob(i)) local d = {struct.unpack(BLOB, v)} d[26] = nil "
        "d[2] = d[2] + 1 redis.call('SET', blob(i), struct.pack(BLOB, unpack(d)))",
    ),
)


def script(prefix: str, body: str) -> str:
    return f"""
local ACTIVITY, TOTALS, BLOB = '<' .. string.rep('d', 17), '<ddddd', '<c16' .. string.rep('d', 24)
local function key(i) return '{prefix}:v:' .. i end
local function hash(i) return '{prefix}:k:' .. i end
local function blob(i) return '{prefix}:h:' .. i end
for i = 0, {HOLDERS - 1} do {body} end
"""


def seed(client: redis.Redis, prefix: str) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(HOLDERS):
        pipe.set(f"{prefix}:v:{i}", "5")
        pipe.hset(
            f"{prefix}:k:{i}",
            mapping={"tier": "class_ii:1", "a": struct.pack("<17d", *range(17)), "dst": "", "USD": bytes(40)},
        )
        pipe.set(f"{prefix}:h:{i}", b"class_ii:1".ljust(16) + struct.pack("<24d", *range(24)))
    pipe.execute()


def script_usec(client: redis.Redis) -> float:
    stats = client.info("commandstats")
    return float(sum(v["usec"] for k, v in stats.items() if k in ("cmdstat_eval", "cmdstat_evalsha")))


def per_holder_us(client: redis.Redis, text: str, rounds: int) -> float:
    run: Callable[[], object] = client.register_script(text)
    run()  # loads it
    samples = []
    for _ in range(rounds):
        before = script_usec(client)
        run()
        samples.append((script_usec(client) - before) / HOLDERS)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis_url)
    prefix = f"bench-holder-{secrets.token_hex(4)}"
    try:
        seed(client, prefix)
        print(f"Redis CPU per holder (µs, Redis's clock; median of {args.rounds} batches of {HOLDERS})\n")
        print("| layout | what it does | µs | over the counter |")
        print("| --- | --- | ---: | ---: |")
        base = None
        for name, what, body in LAYOUTS:
            us = per_holder_us(client, script(prefix, body), args.rounds)
            base = us if base is None else base
            print(f"| {name} | {what} | {us:.2f} | {us - base:+.2f} |")
    finally:
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


if __name__ == "__main__":
    main()
