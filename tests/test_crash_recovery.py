"""kill -9 under load, on Redis + PostgreSQL: nothing a client was told is lost.

A real `python -m switch serve` process takes concurrent Authorize calls; while
calls are still in flight it is killed with SIGKILL, then started again on the
same stores. Every approval a client received must be readable with the right
status and amount, replaying its request with its key must return the same
transaction, and no card number may appear in clear in Redis, PostgreSQL or the
switch's logs. Calls the kill cut off, retried with their keys once the crashed
process's claims have outlived their lease, must each get an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switch.v1 import switch_pb2 as pb
from switch.v1 import switch_pb2_grpc
from tests.conftest import signing_key

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
FINGERPRINT_KEY = "5e" * 32
TOKEN_KEY = "6f" * 32
SERVICE = "switch.v1.Switch"

PANS = (
    "4111111111111111",  # approves
    "4000000000000002",  # declined "05"
    "4000000000009995",  # declined "51"
    "5555555555554444",
    "4242424242424242",
    "378282246310005",  # 15 digits
)
TASKS = 8
LOAD_SECONDS = 2.0
AFTER_KILL_SECONDS = 0.6  # callers keep sending this long after the kill
MAX_CALLS_PER_TASK = 4_000
READY_SECONDS = 30.0
LEASE_SECONDS = 2  # how long a crashed process's in-flight claims block their keys
TEST_SECONDS = 120.0

pytestmark = pytest.mark.slow


def _reachable(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((host, port)) == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Switch:
    """One `switch serve` process on the test's stores."""

    env: dict[str, str]
    port: int
    log: Path
    config: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "switch", "serve", "--config", str(self.config), "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    async def wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            assert process.poll() is None, f"the switch exited with {process.returncode}:\n{self.log_tail()}"
            async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    answer = await health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(service=SERVICE), timeout=1.0
                    )
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
            await asyncio.sleep(0.1)
        raise AssertionError(f"the switch was not serving after {READY_SECONDS:.0f} s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)


@dataclass
class Load:
    """What the callers sent and what they were told."""

    approved: list[tuple[pb.AuthorizeRequest, pb.AuthorizeResponse]] = field(default_factory=list)
    declined: int = 0
    failed_before_kill: dict[str, int] = field(default_factory=dict)
    failed_after_kill: dict[str, int] = field(default_factory=dict)
    cut_off: list[pb.AuthorizeRequest] = field(default_factory=list)
    in_flight: int = 0
    in_flight_at_kill: int = 0
    killed_at: float | None = None


def _request(run: str, task: int, number: int) -> pb.AuthorizeRequest:
    pan = PANS[(task + number) % len(PANS)]
    return pb.AuthorizeRequest(
        idempotency_key=f"crash-{run}-{task}-{number}",
        merchant_id=f"crash-merchant-{task % 2}",
        amount=pb.Money(minor_units=100 + task * 1_000 + number, currency="USD"),
        card=pb.Card(pan=pan, expiry_month=12, expiry_year=2031, holder_name="CRASH TEST"),
    )


async def _caller(stub: switch_pb2_grpc.SwitchAsyncStub, run: str, task: int, load: Load, stop_at: float) -> None:
    for number in range(MAX_CALLS_PER_TASK):
        if time.monotonic() >= stop_at:
            return
        request = _request(run, task, number)
        load.in_flight += 1
        try:
            response = await stub.Authorize(request, timeout=10.0)
        except grpc.aio.AioRpcError as error:
            failures = load.failed_before_kill if load.killed_at is None else load.failed_after_kill
            failures[error.code().name] = failures.get(error.code().name, 0) + 1
            load.cut_off.append(request)
            await asyncio.sleep(0.01)
            continue
        finally:
            load.in_flight -= 1
        if response.decision == pb.DECISION_APPROVED:
            load.approved.append((request, response))
        else:
            load.declined += 1


async def _drive_and_kill(port: int, process: subprocess.Popen[bytes], run: str) -> Load:
    load = Load()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = switch_pb2_grpc.SwitchStub(channel)
        stop_at = time.monotonic() + LOAD_SECONDS + AFTER_KILL_SECONDS
        callers = [asyncio.create_task(_caller(stub, run, task, load, stop_at)) for task in range(TASKS)]
        await asyncio.sleep(LOAD_SECONDS)
        load.in_flight_at_kill = load.in_flight
        os.kill(process.pid, signal.SIGKILL)  # while the callers are mid-call
        load.killed_at = time.monotonic()
        await asyncio.gather(*callers)
    process.wait(timeout=10)
    return load


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _bounded(calls: list[Callable[[], Awaitable[Any]]], limit: int = 16) -> list[Any]:
    """Makes and awaits the calls, at most `limit` at a time: a gRPC call starts when it
    is made, so they are passed unmade."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await call()

    return await asyncio.gather(*(one(call) for call in calls))


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


async def _redis_dump(prefix: str) -> list[bytes]:
    """Every key under the prefix and every value it holds, as bytes."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    found: list[bytes] = []
    try:
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            found.append(_bytes(key))
            kind = _bytes(await client.type(key)).decode()
            if kind == "string":
                found.append(_bytes(await client.get(key) or b""))
            elif kind == "hash":
                for name, value in (await client.hgetall(key)).items():
                    found.extend((_bytes(name), _bytes(value)))
            elif kind == "list":
                found.extend(_bytes(v) for v in await client.lrange(key, 0, -1))
            elif kind == "set":
                found.extend(_bytes(v) for v in await client.smembers(key))
            elif kind == "zset":
                found.extend(_bytes(v) for v in await client.zrange(key, 0, -1))
            else:
                found.append(_bytes(await client.dump(key) or b""))
    finally:
        await client.aclose()
    return found


async def _postgres_dump(schema: str) -> tuple[list[str], list[bytes], int]:
    """Every row of every table in the schema, as text and as raw column values."""
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_DSN)
    texts: list[str] = []
    raw: list[bytes] = []
    try:
        tables = [
            row["table_name"]
            for row in await connection.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
            )
        ]
        for table in tables:
            name = f'"{schema}"."{table}"'
            texts.extend(row[0] for row in await connection.fetch(f"SELECT t::text FROM {name} AS t"))
            for row in await connection.fetch(f"SELECT * FROM {name}"):
                for value in row.values():
                    raw.append(value if isinstance(value, bytes) else str(value).encode())
    finally:
        await connection.close()
    return texts, raw, len(tables)


async def _drop_state(schema: str, prefix: str) -> None:
    import asyncpg
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for chunk in _chunks(keys, 1000):
            await client.delete(*chunk)
    finally:
        await client.aclose()
    connection = await asyncpg.connect(POSTGRES_DSN)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


@pytest.fixture
async def production_switch(tmp_path: Path) -> AsyncIterator[tuple[Switch, str, str]]:
    if not (_reachable("127.0.0.1", 6379) and _reachable("127.0.0.1", 5432)):
        pytest.skip("needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432")
    unique = secrets.token_hex(4)
    schema, prefix = f"crash_{unique}", f"crash:{unique}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("SWITCH_")}
    env.update(
        SWITCH_REDIS_URL=REDIS_URL,
        SWITCH_POSTGRES_DSN=POSTGRES_DSN,
        SWITCH_POSTGRES_SCHEMA=schema,
        SWITCH_KEY_PREFIX=prefix,
        SWITCH_PLAINTEXT="true",
        SWITCH_FINGERPRINT_KEY=FINGERPRINT_KEY,
        SWITCH_AUDIT_SIGNING_KEY_FILE=str(signing_key(tmp_path)),
        SWITCH_LOG_LEVEL="INFO",
    )
    config = tmp_path / "switch.toml"
    config.write_text(
        f"[idempotency]\nlease_seconds = {LEASE_SECONDS}\n[adapters]\ntimeout_ms = {LEASE_SECONDS * 500}\n"
        f'[tokenization]\nactive_key = "k1"\nkeys = {{ k1 = "{TOKEN_KEY}" }}\n'
    )
    switch = Switch(env, _free_port(), tmp_path / "switch.log", config)
    try:
        yield switch, schema, prefix
    finally:
        switch.stop_all()
        await _drop_state(schema, prefix)


async def test_kill_9_under_load_loses_no_answered_approval(production_switch: tuple[Switch, str, str]) -> None:
    switch, schema, prefix = production_switch
    run = secrets.token_hex(3)
    async with asyncio.timeout(TEST_SECONDS):
        first = switch.start()
        await switch.wait_ready(first)
        load = await _drive_and_kill(switch.port, first, run)
        assert first.returncode == -signal.SIGKILL
        assert load.approved, f"no approval before the kill; failures {load.failed_before_kill}\n{switch.log_tail()}"
        assert load.declined, "the decline test cards were answered too"
        assert not load.failed_before_kill, f"calls failed before the kill: {load.failed_before_kill}"
        assert load.failed_after_kill, "no call was cut off by the kill"
        assert load.in_flight_at_kill > 0, "no call was in flight at the kill"
        print(
            f"before the kill: {len(load.approved)} approvals and {load.declined} declines received, "
            f"{load.in_flight_at_kill} calls in flight at the kill; after it: {load.failed_after_kill}"
        )

        second = switch.start()
        await switch.wait_ready(second)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{switch.port}") as channel:
            stub = switch_pb2_grpc.SwitchStub(channel)
            await _check_reads(stub, load)
            await _check_replays(stub, load)
            await _check_cut_off_calls_retry(stub, load)
        assert second.poll() is None, switch.log_tail()

        await _check_no_pan_at_rest(schema, prefix, switch.log)


async def _check_reads(stub: switch_pb2_grpc.SwitchAsyncStub, load: Load) -> None:
    reads = await _bounded(
        [
            partial(stub.GetTransaction, pb.GetTransactionRequest(transaction_id=response.transaction_id), timeout=5.0)
            for _, response in load.approved
        ]
    )
    for (request, response), transaction in zip(load.approved, reads, strict=True):
        assert transaction.transaction_id == response.transaction_id
        assert transaction.status == pb.TRANSACTION_STATUS_AUTHORIZED, (response.transaction_id, transaction.status)
        assert transaction.authorized.minor_units == request.amount.minor_units
        assert transaction.authorized.currency == request.amount.currency
        assert transaction.merchant_id == request.merchant_id
        assert transaction.response_code == "00"
        assert transaction.masked_instrument and request.card.pan not in transaction.masked_instrument


async def _check_replays(stub: switch_pb2_grpc.SwitchAsyncStub, load: Load) -> None:
    # Every received approval, replayed in batches, and a sample through unary Authorize too.
    for chunk in _chunks(load.approved, 100):
        answer = await stub.AuthorizeBatch(pb.AuthorizeBatchRequest(requests=[r for r, _ in chunk]), timeout=10.0)
        for (request, original), replay in zip(chunk, answer.responses, strict=True):
            assert not replay.HasField("error"), (request.idempotency_key, replay.error.message)
            assert replay.replayed, request.idempotency_key
            assert replay.transaction_id == original.transaction_id, request.idempotency_key
            assert replay.response_code == original.response_code == "00"
            assert replay.authorization_code == original.authorization_code
    sample = load.approved[:: max(1, len(load.approved) // 50)]
    replays = await _bounded([partial(stub.Authorize, request, timeout=5.0) for request, _ in sample])
    for (request, original), replay in zip(sample, replays, strict=True):
        assert replay.replayed, request.idempotency_key
        assert replay.transaction_id == original.transaction_id


async def _check_cut_off_calls_retry(stub: switch_pb2_grpc.SwitchAsyncStub, load: Load) -> None:
    """A call cut off by the kill, retried with its key, gets an answer once the dead
    process's claim has outlived its lease (ABORTED until then); an approval is durable."""
    deadline = time.monotonic() + LEASE_SECONDS + 15.0

    async def retry(request: pb.AuthorizeRequest) -> pb.AuthorizeResponse:
        while True:
            try:
                return await stub.Authorize(request, timeout=LEASE_SECONDS + 5.0)
            except grpc.aio.AioRpcError as error:
                if error.code() not in (grpc.StatusCode.ABORTED, grpc.StatusCode.UNAVAILABLE):
                    raise
                if time.monotonic() > deadline:
                    raise AssertionError(f"{request.idempotency_key}: still {error.code().name}") from error
                await asyncio.sleep(0.2)

    answers = await _bounded([partial(retry, request) for request in load.cut_off])
    approved = [(r, a) for r, a in zip(load.cut_off, answers, strict=True) if a.decision == pb.DECISION_APPROVED]
    assert all(a.decision in (pb.DECISION_APPROVED, pb.DECISION_DECLINED) for a in answers)
    reads = await _bounded(
        [partial(stub.GetTransaction, pb.GetTransactionRequest(transaction_id=a.transaction_id)) for _, a in approved]
    )
    for (request, answer), transaction in zip(approved, reads, strict=True):
        assert transaction.status == pb.TRANSACTION_STATUS_AUTHORIZED, answer.transaction_id
        assert transaction.authorized.minor_units == request.amount.minor_units
    replays = await _bounded([partial(stub.Authorize, request, timeout=5.0) for request, _ in approved])
    for (_, answer), replay in zip(approved, replays, strict=True):
        assert replay.replayed and replay.transaction_id == answer.transaction_id


async def _check_no_pan_at_rest(schema: str, prefix: str, log: Path) -> None:
    redis_values = await _redis_dump(prefix)
    assert redis_values, f"nothing under {prefix}: in Redis"
    texts, raw, tables = await _postgres_dump(schema)
    assert tables >= 2 and texts, f"no rows in schema {schema}"
    log_text = await asyncio.to_thread(log.read_text, errors="replace")
    for pan in PANS:
        encoded = pan.encode()
        assert not [v for v in redis_values if encoded in v], f"a PAN ending {pan[-4:]} is in Redis"
        assert not [t for t in texts if pan in t], f"a PAN ending {pan[-4:]} is in PostgreSQL"
        assert not [v for v in raw if encoded in v], f"a PAN ending {pan[-4:]} is in a PostgreSQL column"
        assert pan not in log_text, f"a PAN ending {pan[-4:]} is in the switch's log"
