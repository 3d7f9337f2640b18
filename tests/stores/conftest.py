"""Isolation for the store contract suites: a random Redis key prefix and a random
PostgreSQL schema per test, both removed afterwards whatever the test did."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.conftest import POSTGRES_DSN, REDIS_URL, drop_redis_keys


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"test:stores:{secrets.token_hex(6)}"
    yield prefix
    await drop_redis_keys(REDIS_URL, prefix)


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    schema = f"test_stores_{secrets.token_hex(6)}"
    yield schema
    connection = await asyncpg.connect(POSTGRES_DSN)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()
