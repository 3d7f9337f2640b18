"""Shared fixtures: a running switch on port 0, on either store set.

"embedded" is memory + SQLite in a temporary folder; "production" is the real
Redis and PostgreSQL of this machine, isolated by a random key prefix and a
random schema that are removed afterwards.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from loadtests.redis_cluster import running_cluster
from switch import config, server
from switch.v1 import switch_pb2_grpc

REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
FINGERPRINT_KEY = "0f" * 32
TOKEN_KEY = "1e" * 32
STORE_SETS = ("embedded", "production")


def store_settings(store_set: str, tmp_path: Path) -> dict[str, Any]:
    """The [stores] and [security] tables for one store set, isolated for one test.
    Production is plaintext only when it says so (server.plaintext), as a switch
    behind a TLS-terminating sidecar does; the embedded default on loopback need not."""
    if store_set == "embedded":
        return {"stores": {"sqlite_path": str(tmp_path / "journal.sqlite3")}}
    unique = secrets.token_hex(4)
    return {
        "server": {"plaintext": True},
        "stores": {
            "redis_url": REDIS_URL,
            "postgres_dsn": POSTGRES_DSN,
            "postgres_schema": f"test_{unique}",
            "key_prefix": f"test:{unique}",
        },
        "security": {"fingerprint_key_hex": FINGERPRINT_KEY, "audit_signing_key_file": str(signing_key(tmp_path))},
        "tokenization": {"active_key": "k1", "keys": {"k1": TOKEN_KEY}},
    }


def signing_key(folder: Path) -> Path:
    """An Ed25519 checkpoint signing key file (0600) in folder, made once."""
    from switch.config.keys import write_secret
    from switch.security.custody.files import SIGNING_KEY_FILE, new_signing_key_pem

    path = folder / SIGNING_KEY_FILE
    write_secret(path, new_signing_key_pem(), replace=False)
    return path


async def drop_production_state(settings: config.Settings) -> None:
    import asyncpg

    if settings.stores.embedded:
        return
    stores = settings.stores
    await drop_redis_keys(stores.redis_url, stores.key_prefix, cluster=stores.redis_cluster)
    connection = await asyncpg.connect(settings.stores.postgres_dsn)
    await connection.execute(f'DROP SCHEMA IF EXISTS "{settings.stores.postgres_schema}" CASCADE')
    await connection.close()


async def drop_redis_keys(url: str, prefix: str, *, cluster: bool = False) -> None:
    """Deletes every key under prefix, on one Redis or on every primary of a cluster
    (whose client splits a DEL by slot)."""
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import RedisCluster

    client: Any = RedisCluster.from_url(url) if cluster else aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def redis_cluster_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    """A real three-primary Redis Cluster on free loopback ports, for the whole session."""
    with running_cluster(tmp_path_factory.mktemp("redis-cluster")) as ports:
        yield ports


@pytest.fixture
def redis_cluster_url(redis_cluster_ports: list[int]) -> str:
    return f"redis://127.0.0.1:{redis_cluster_ports[0]}/0"


SwitchFactory = Callable[..., AbstractAsyncContextManager[tuple[server.RunningSwitch, switch_pb2_grpc.SwitchStub]]]


@pytest.fixture(params=STORE_SETS)
def store_set(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def switch_factory(tmp_path: Path) -> SwitchFactory:
    """switch_factory(store_set, **tables) starts a switch and yields (running, stub)."""

    @asynccontextmanager
    async def start(
        store_set: str = "embedded", **tables: Any
    ) -> AsyncIterator[tuple[server.RunningSwitch, switch_pb2_grpc.SwitchStub]]:
        raw = store_settings(store_set, tmp_path)
        raw.setdefault("server", {})["port"] = 0
        for section, values in tables.items():
            if section == "server" and isinstance(values, dict) and "tls" in values and "plaintext" not in values:
                raw["server"].pop("plaintext", None)  # [server.tls] replaces the sidecar's plaintext
            if isinstance(values, dict):
                raw.setdefault(section, {}).update(values)
            else:
                raw[section] = values
        settings = config.from_mapping(raw)
        running = await server.build(settings)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                yield running, switch_pb2_grpc.SwitchStub(channel)
        finally:
            await running.stop(1.0)
            await drop_production_state(settings)

    return start


@pytest.fixture
def keep_root_logging() -> Iterator[None]:
    """cli.main installs its JSON handler on the root logger; later tests keep theirs."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
