"""No card number leaves the tokenizer: not in logs, answers, errors, Redis or the journal."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import text_format
from google.protobuf.message import Message

from switch import config
from switch.telemetry.logs import JsonFormatter
from switch.v1 import switch_pb2 as pb
from tests.conftest import drop_production_state, store_settings
from tests.e2e.support import (
    AMEX,
    BAD_LUHN,
    DECLINE_CARD,
    MASTERCARD,
    NO_FUNDS_CARD,
    VISA,
    Switch,
    account_request,
    card_request,
    decode,
    failure,
    money,
    new_key,
    serve_settings,
)

DISCOVER = "6011111111111117"
EXPIRED = "4012888888881881"
DASHED = "4242-4242-4242-4242"
TOO_LONG = "42424242424242424242"
SHORT = "4222222222222"  # 13 digits, Luhn-valid
PANS = [VISA, MASTERCARD, AMEX, DECLINE_CARD, NO_FUNDS_CARD, DISCOVER, EXPIRED, BAD_LUHN, DASHED, TOO_LONG, SHORT]
NEEDLES = sorted({p.encode() for p in PANS} | {p.replace("-", "").encode() for p in PANS})


def _leaks(blob: bytes) -> list[bytes]:
    return [pan for pan in NEEDLES if pan in blob]


def test_the_scan_finds_a_pan() -> None:
    assert _leaks(card_request(pan=VISA).SerializeToString()) == [VISA.encode()]
    assert _leaks(f"x{DASHED}y".encode()) == [DASHED.encode()]


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


async def _traffic(switch: Switch, seen: list[bytes]) -> None:
    """A mix of every call, each answer kept as bytes for the scan."""
    stub = switch.stub

    def keep(message: Message) -> None:
        seen.append(message.SerializeToString())
        seen.append(text_format.MessageToString(message).encode())

    async def authorize(request: pb.AuthorizeRequest) -> pb.AuthorizeResponse | None:
        try:
            response = await stub.Authorize(request)
        except grpc.aio.AioRpcError as error:
            seen.append(decode(error).everything())
            return None
        keep(response)
        return response

    requests = [
        card_request(pan=VISA, amount=1000),
        card_request(pan=MASTERCARD, amount=2000, currency="EUR"),
        card_request(pan=AMEX, amount=3000),
        card_request(pan=DISCOVER, amount=4000),
        card_request(pan=SHORT, amount=500),
        card_request(pan=DECLINE_CARD),
        card_request(pan=NO_FUNDS_CARD),
        card_request(pan=EXPIRED, month=1, year=2021),
        card_request(pan=BAD_LUHN),
        card_request(pan=DASHED),
        card_request(pan=TOO_LONG),
        card_request(pan=VISA, currency="QQQ"),
        account_request(account_id="acct-12-insufficient"),
    ]
    for request in requests:
        request.card.holder_name = "Ada Lovelace" if request.HasField("card") else ""
    answers = [await authorize(request) for request in requests]
    await authorize(requests[0])  # a replay
    for _ in range(4):  # past the velocity limit: declines "65"
        await authorize(card_request(pan=VISA))
    await authorize(card_request(pan=VISA, amount=999_999))  # past the amount limit: "61"
    conflict = card_request(requests[1].idempotency_key, pan=MASTERCARD, amount=2001, currency="EUR")
    seen.append((await failure(stub.Authorize(conflict))).everything())

    batch = await stub.AuthorizeBatch(
        pb.AuthorizeBatchRequest(requests=[card_request(pan=p) for p in (MASTERCARD, BAD_LUHN, DASHED, DISCOVER)])
    )
    keep(batch)

    async def stream() -> AsyncIterator[pb.AuthorizeRequest]:
        for pan in (AMEX, TOO_LONG, DECLINE_CARD, SHORT):
            yield card_request(pan=pan)

    async for streamed in stub.AuthorizeStream(stream()):
        keep(streamed)

    visa, mastercard, amex = (a.transaction_id for a in answers[:3] if a is not None)
    keep(await stub.Capture(pb.CaptureRequest(transaction_id=visa, amount=money(600), idempotency_key=new_key())))
    keep(await stub.Refund(pb.RefundRequest(transaction_id=visa, amount=money(100), idempotency_key=new_key())))
    keep(await stub.Void(pb.VoidRequest(transaction_id=mastercard, idempotency_key=new_key())))
    refund_before_capture = stub.Refund(pb.RefundRequest(transaction_id=amex, idempotency_key=new_key()))
    seen.append((await failure(refund_before_capture)).everything())
    for answer in answers:
        if answer is not None and answer.transaction_id:
            keep(await stub.GetTransaction(pb.GetTransactionRequest(transaction_id=answer.transaction_id)))
    await _misplaced_card_numbers(switch, seen, visa)


async def _misplaced_card_numbers(switch: Switch, seen: list[bytes], transaction_id: str) -> None:
    """Card numbers where identifiers and free text belong: refused before anything is kept."""
    stub = switch.stub
    in_holder = card_request(pan=MASTERCARD)
    in_holder.card.holder_name = f"Ada {DASHED}"
    in_metadata = card_request(pan=MASTERCARD)
    in_metadata.metadata["note"] = f"card {AMEX}"
    in_metadata_key = card_request(pan=MASTERCARD)
    in_metadata_key.metadata[SHORT] = "x"
    calls: list[Any] = [
        stub.Authorize(card_request(key=VISA, pan=MASTERCARD)),
        stub.Authorize(card_request(merchant=DISCOVER, pan=MASTERCARD)),
        stub.Authorize(in_holder),
        stub.Authorize(in_metadata),
        stub.Authorize(in_metadata_key),
        stub.Authorize(card_request(pan=MASTERCARD), metadata=(("x-request-id", NO_FUNDS_CARD),)),
        # (x-caller-id is read only from a trusted sidecar: tests/e2e/test_bad_input.py refuses one there)
        stub.GetTransaction(pb.GetTransactionRequest(transaction_id=VISA)),
        stub.Capture(pb.CaptureRequest(transaction_id=EXPIRED, idempotency_key=new_key())),
        stub.Refund(pb.RefundRequest(transaction_id=transaction_id, idempotency_key=AMEX)),
    ]
    for call in calls:
        refused = await failure(call)
        assert refused.code is grpc.StatusCode.INVALID_ARGUMENT, refused.details
        seen.append(refused.everything())
    batch = await stub.AuthorizeBatch(pb.AuthorizeBatchRequest(requests=[card_request(key=DISCOVER, pan=MASTERCARD)]))
    assert batch.responses[0].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    seen.append(batch.SerializeToString())


async def _redis_dump(settings: config.Settings) -> list[tuple[str, bytes]]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(settings.stores.redis_url)
    dump: list[tuple[str, bytes]] = []
    try:
        async for key in client.scan_iter(match=f"{settings.stores.key_prefix}:*", count=1000):
            kind = _as_bytes(await client.type(key)).decode()
            if kind == "string":
                value: Any = await client.get(key)
            elif kind == "hash":
                value = await client.hgetall(key)
            elif kind == "list":
                value = await client.lrange(key, 0, -1)
            elif kind == "set":
                value = await client.smembers(key)
            elif kind == "zset":
                value = await client.zrange(key, 0, -1, withscores=True)
            elif kind == "stream":
                value = await client.xrange(key)
            else:
                value = kind
            dump.append((key.decode(), _as_bytes(key) + b" " + _as_bytes(value)))
    finally:
        await client.aclose()
    return dump


async def _postgres_dump(settings: config.Settings) -> dict[str, list[bytes]]:
    import asyncpg

    connection = await asyncpg.connect(settings.stores.postgres_dsn)
    schema = settings.stores.postgres_schema
    tables: dict[str, list[bytes]] = {}
    try:
        names = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
        for row in names:
            table = row["table_name"]
            rows = await connection.fetch(f'SELECT * FROM "{schema}"."{table}"')
            tables[table] = [b" ".join(_as_bytes(value) for value in record.values()) for record in rows]
    finally:
        await connection.close()
    return tables


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The switch's own JSON log format, on the root logger, at DEBUG."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    yield buffer
    root.removeHandler(handler)


async def test_no_pan_anywhere(
    store_set: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    json_log: io.StringIO,
) -> None:
    caplog.set_level(logging.DEBUG)
    raw = store_settings(store_set, tmp_path / "stores")
    raw.setdefault("server", {})["port"] = 0
    raw["limits"] = [
        {"scope": "instrument", "window_seconds": 30 * 86_400, "max_count": 3},
        {"scope": "merchant", "window_seconds": 30 * 86_400, "max_amount": 500_000},
    ]
    settings = config.from_mapping(raw)
    seen: list[bytes] = []
    try:
        async with serve_settings(settings) as switch:
            await _traffic(switch, seen)
        # Stopped: everything is flushed to the stores, and the journal files are closed.

        for answer in seen:
            assert not _leaks(answer), answer
        assert len(seen) > 40

        log_text = "\n".join([caplog.text, *(str(r.__dict__) for r in caplog.records), json_log.getvalue()])
        assert not _leaks(log_text.encode()), [line for line in log_text.splitlines() if _leaks(line.encode())]
        out, err = capfd.readouterr()
        assert not _leaks((out + err).encode())

        if settings.stores.embedded:
            files = [p for p in (tmp_path / "stores").rglob("*") if p.is_file()]
            assert any(p.name == "journal.sqlite3" for p in files)
            for path in files:
                assert not _leaks(path.read_bytes()), path
        else:
            keys = await _redis_dump(settings)
            assert keys, "nothing under the test's Redis prefix"
            leaked = [key for key, blob in keys if _leaks(blob)]
            assert not leaked, leaked
            tables = await _postgres_dump(settings)
            assert tables.get("transactions"), tables.keys()
            assert tables.get("journal_entries"), tables.keys()
            for table, rows in tables.items():
                for row in rows:
                    assert not _leaks(row), (table, row)
    finally:
        await drop_production_state(settings)
