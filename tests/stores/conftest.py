"""Isolation for the store contract suites: a random Redis key prefix and a random
PostgreSQL schema per test, both removed afterwards whatever the test did."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from tests.conftest import POSTGRES_DSN, REDIS_URL


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"test:stores:{secrets.token_hex(6)}"
    yield prefix
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    schema = f"test_stores_{secrets.token_hex(6)}"
    yield schema
    connection = await asyncpg.connect(POSTGRES_DSN)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


async def drop_cluster_keys(url: str, prefix: str) -> None:
    """Deletes every key under prefix on every primary of the test cluster."""
    cluster = RedisCluster.from_url(url)
    try:
        async for key in cluster.scan_iter(match=f"{prefix}:*", count=1000):
            await cluster.delete(key)
    finally:
        await cluster.aclose()
