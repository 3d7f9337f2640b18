"""The stores behind the switch: which pair runs is configuration, not code."""

from __future__ import annotations

import functools
from pathlib import Path

from switch.config import Settings, StartupError
from switch.metrics import Counter
from switch.stores.base import Journal, StateStore


async def open_stores(settings: Settings, events: Counter | None = None) -> tuple[StateStore, Journal]:
    """Memory + SQLite for the embedded default; Redis (one primary, or a Cluster) +
    PostgreSQL when configured. events counts the Redis stores' rare events
    (SwitchMetrics.state_store_events)."""
    idempotency = settings.idempotency
    if settings.stores.embedded:
        from switch.stores.memory import MemoryStateStore
        from switch.stores.sqlite import SqliteJournal

        state: StateStore = MemoryStateStore(idempotency.retention_seconds, idempotency.lease_seconds)
        # It makes the folder (0700) and the database (0600) itself.
        return state, await SqliteJournal.open(Path(settings.stores.sqlite_path))

    from switch.stores.postgres import PostgresJournal
    from switch.stores.redis import RedisStateStore
    from switch.stores.redis_cluster import RedisClusterStateStore

    redis_store = RedisClusterStateStore if settings.stores.redis_cluster else RedisStateStore
    state = redis_store.from_url(
        settings.stores.redis_url,
        prefix=settings.stores.key_prefix,
        retention_seconds=idempotency.retention_seconds,
        lease_seconds=idempotency.lease_seconds,
        events=events,
    )
    try:
        await state.check_server()
    except store_errors() as exc:
        await state.close()
        raise StartupError(f"stores.redis_url: Redis does not answer: {_reason(exc)}") from None
    except BaseException:
        await state.close()
        raise
    schema = settings.stores.postgres_schema or None
    try:
        return state, await PostgresJournal.open(settings.stores.postgres_dsn, schema=schema)
    except store_errors() as exc:
        await state.close()
        raise StartupError(f"stores.postgres_dsn: PostgreSQL does not answer: {_reason(exc)}") from None
    except BaseException:
        await state.close()
        raise


@functools.cache
def store_errors() -> tuple[type[Exception], ...]:
    """What the stores' drivers raise when their server is down, unreachable or reset
    (OSError holds refused and reset connections and timeouts; asyncpg raises
    InternalClientError on a connection the server closed mid-statement): the
    caller's answer is UNAVAILABLE, retry with the same key. The drivers are imported
    on first use, as in open_stores, so importing this package loads none of them."""
    import sqlite3

    import asyncpg
    from redis.exceptions import RedisError

    postgres = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
    return (OSError, RedisError, *postgres, sqlite3.OperationalError)


def _reason(exc: BaseException) -> str:
    """The driver's reason, on one line; drivers name host and port, never the password."""
    return " ".join(str(exc).split())[:300] or type(exc).__name__
