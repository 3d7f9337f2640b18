"""The fault proxy against a local echo server: each fault does what it says."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.faults.proxy import FaultProxy

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


OPENED: list[asyncio.StreamWriter] = []


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with FaultProxy("127.0.0.1", port, name="echo") as running:
            yield running
    finally:
        while OPENED:
            OPENED.pop().close()
        server.close()
        await server.wait_closed()


async def _connect(proxy: FaultProxy) -> Streams:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    OPENED.append(writer)
    return reader, writer


async def _round_trip(streams: Streams, payload: bytes = b"ping", seconds: float = 2.0) -> bytes:
    reader, writer = streams
    writer.write(payload)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(payload)), seconds)


async def _is_reset(streams: Streams) -> bool:
    """True when the connection was reset (or closed) under us."""
    try:
        return await _round_trip(streams, seconds=1.0) != b"ping"
    except (OSError, asyncio.IncompleteReadError):
        return True


async def _refused(proxy: FaultProxy) -> bool:
    """True when a new connection is refused or reset at once."""
    try:
        streams = await _connect(proxy)
    except OSError:
        return True
    return await _is_reset(streams)


async def test_bytes_flow_both_ways(proxy: FaultProxy) -> None:
    streams = await _connect(proxy)
    assert await _round_trip(streams, b"hello" * 1000) == b"hello" * 1000


async def test_cut_resets_and_refuses_until_healed(proxy: FaultProxy) -> None:
    before = await _connect(proxy)
    assert await _round_trip(before) == b"ping"
    proxy.cut()
    assert await _is_reset(before)
    assert await _refused(proxy)
    proxy.heal()
    assert await _round_trip(await _connect(proxy)) == b"ping"
    assert proxy.stats.refused >= 1 and proxy.stats.reset >= 1


async def test_hold_stops_bytes_then_resumes_on_the_same_connection(proxy: FaultProxy) -> None:
    streams = await _connect(proxy)
    assert await _round_trip(streams) == b"ping"
    proxy.hold(0.6)
    started = time.monotonic()
    assert await _round_trip(streams) == b"ping"
    assert time.monotonic() - started >= 0.5


async def test_delay_adds_latency_each_way_until_healed(proxy: FaultProxy) -> None:
    streams = await _connect(proxy)
    proxy.delay(0.2)
    started = time.monotonic()
    assert await _round_trip(streams) == b"ping"
    assert time.monotonic() - started >= 0.38  # 0.2 s there and 0.2 s back
    proxy.heal()
    started = time.monotonic()
    assert await _round_trip(streams) == b"ping"
    assert time.monotonic() - started < 0.2


async def test_reset_ends_current_connections_only(proxy: FaultProxy) -> None:
    before = await _connect(proxy)
    assert await _round_trip(before) == b"ping"
    proxy.reset()
    assert await _is_reset(before)
    assert await _round_trip(await _connect(proxy)) == b"ping"
