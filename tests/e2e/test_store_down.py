"""A store that does not answer is UNAVAILABLE to the caller (retry with the same key), never INTERNAL.

Real faults on a running switch's own connections, the shared servers untouched:
its Redis client is pointed at a port where nothing listens, or its PostgreSQL pool
loses its connections (closed by the server, as in a reset) and can only reconnect
to such a port.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import asyncpg
import grpc
import pytest

from switch.stores.postgres import PostgresJournal
from switch.stores.redis import RedisStateStore
from switch.v1 import switch_pb2 as pb
from tests.conftest import POSTGRES_DSN, SwitchFactory
from tests.e2e.support import Switch, approved, card_request, expect, new_key, serve

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
Fault = Callable[[Switch], Awaitable[None]]


@pytest.fixture
async def switch(switch_factory: SwitchFactory) -> AsyncIterator[Switch]:
    async with serve(switch_factory, "production") as running:
        yield running


def _dead_port() -> int:
    """A loopback port where nothing listens (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def _redis_stops_answering(switch: Switch) -> None:
    pool = cast(RedisStateStore, switch.running.state)._client.connection_pool
    pool.update_connection_kwargs(port=_dead_port())  # for every connection made from now on
    await pool.disconnect()
    pool.reset()  # type: ignore[no-untyped-call]  # forget the open connections: each would reconnect to the live port


async def _postgres_resets(switch: Switch) -> None:
    """The server closes every connection of the pool, and does not come back."""
    pool = cast(PostgresJournal, switch.running.journal)._pool
    pids = [holder._con.get_server_pid() for holder in pool._holders if holder._con is not None]
    pool.set_connect_args(dsn=f"postgresql://postgres@127.0.0.1:{_dead_port()}/test")
    admin = await asyncpg.connect(POSTGRES_DSN)
    try:
        assert pids and all([await admin.fetchval("SELECT pg_terminate_backend($1)", pid) for pid in pids])
    finally:
        await admin.close()


async def _postgres_stops_answering(switch: Switch) -> None:
    pool = cast(PostgresJournal, switch.running.journal)._pool
    pool.set_connect_args(dsn=f"postgresql://postgres@127.0.0.1:{_dead_port()}/test")
    await pool.expire_connections()


def _capture(transaction_id: str) -> pb.CaptureRequest:
    return pb.CaptureRequest(transaction_id=transaction_id, idempotency_key=new_key("cap"))


async def test_capture_with_redis_down_is_unavailable(switch: Switch) -> None:
    transaction_id = (await approved(switch, card_request())).transaction_id
    await _redis_stops_answering(switch)

    failure = await expect(switch.stub.Capture(_capture(transaction_id)), UNAVAILABLE)
    assert "retry" in failure.details and "connecting" not in failure.details  # none of the driver's text


@pytest.mark.parametrize("fault", [_postgres_resets, _postgres_stops_answering], ids=["reset", "down"])
async def test_reads_and_captures_with_postgres_gone_are_unavailable(switch: Switch, fault: Fault) -> None:
    transaction_id = (await approved(switch, card_request())).transaction_id
    await fault(switch)

    read = await expect(
        switch.stub.GetTransaction(pb.GetTransactionRequest(transaction_id=transaction_id)), UNAVAILABLE
    )
    captured = await expect(switch.stub.Capture(_capture(transaction_id)), UNAVAILABLE)
    for failure in (read, captured):
        assert "retry" in failure.details and "127.0.0.1" not in failure.details  # none of the driver's text
