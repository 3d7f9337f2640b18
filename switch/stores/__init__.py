"""The stores behind the switch: contracts (base), the embedded pair (memory, sqlite) and
the production pair (redis, redis_cluster, postgres). Which pair runs is configuration,
not code: switch.server opens the one the settings name."""

from __future__ import annotations

import functools


@functools.cache
def store_errors() -> tuple[type[Exception], ...]:
    """What the stores' drivers raise when their server is down, unreachable or reset
    (OSError holds refused and reset connections and timeouts; asyncpg raises
    InternalClientError on a connection the server closed mid-statement): the
    caller's answer is UNAVAILABLE, retry with the same key. The drivers are imported
    on first use, as switch.server opens them, so importing this package loads none of them."""
    import sqlite3

    import asyncpg
    from redis.exceptions import RedisError

    postgres = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
    return (OSError, RedisError, *postgres, sqlite3.OperationalError)
