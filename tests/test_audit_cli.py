"""`switch audit verify` end to end, on both journals: a switch serves real calls
(authorizations, a capture, a refused detokenization), stops, and the command finds
the journal intact; then a row is changed behind the switch's back and the command
exits 1 naming its block and row. The kinds of tampering, one by one, are in
tests/stores/test_audit_chain.py."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest

from switch import config, server
from switch.v1 import switch_pb2 as pb
from switch.v1 import switch_pb2_grpc
from tests.conftest import POSTGRES_DSN, drop_production_state, store_settings
from tests.e2e.support import card_request


def toml(raw: dict[str, Any]) -> str:
    """The tables of raw as TOML (strings, numbers, booleans and tables of them)."""
    lines: list[str] = []

    def table(name: str, values: dict[str, Any]) -> None:
        lines.append(f"[{name}]")
        nested = {}
        for key, value in values.items():
            if isinstance(value, dict):
                nested[key] = value
            else:
                lines.append(f"{key} = {json.dumps(value)}")
        for key, value in nested.items():
            table(f"{name}.{key}", value)

    for name, values in raw.items():
        table(name, values)
    return "\n".join(lines) + "\n"


async def busy_switch(settings: config.Settings) -> None:
    running = await server.build(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = switch_pb2_grpc.SwitchStub(channel)
            for n in range(5):
                answer = await stub.Authorize(card_request(f"cli-{n}"), timeout=10)
                assert answer.response_code == "00", answer
            await stub.Capture(pb.CaptureRequest(transaction_id=answer.transaction_id, idempotency_key="cli-cap"))
            tokens = switch_pb2_grpc.TokensStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:  # nobody may detokenize by default
                await tokens.Detokenize(pb.DetokenizeRequest(token="4111110000001111", reason="cli test"), timeout=10)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await running.stop(1.0)


async def tamper(settings: config.Settings, statement: str) -> None:
    if settings.stores.embedded:
        with sqlite3.connect(settings.stores.sqlite_path) as db:
            db.execute(statement)
        return
    connection = await asyncpg.connect(POSTGRES_DSN, server_settings={"search_path": settings.stores.postgres_schema})
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def audit_verify(path: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "switch", "audit", "verify", "--config", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("store_set", ["embedded", "production"])
async def test_verify_passes_an_untouched_journal_and_names_a_changed_row(store_set: str, tmp_path: Path) -> None:
    raw = store_settings(store_set, tmp_path)
    raw.setdefault("server", {})["port"] = 0
    path = tmp_path / "switch.toml"
    path.write_text(toml(raw))
    settings = config.load(path, {})
    try:
        await busy_switch(settings)
        intact = audit_verify(path)
        assert intact.returncode == 0, intact.stderr
        assert intact.stdout.startswith("audit verify: intact:") and " 0 checkpoints" not in intact.stdout

        await tamper(settings, "UPDATE journal_entries SET amount_minor = 1 WHERE idempotency_key = 'cli-cap'")
        broken = audit_verify(path)
        assert broken.returncode == 1, broken.stderr
        first = broken.stdout.splitlines()[1].strip()
        assert first.startswith("block ") and "journal_entries m_e2e/cli-cap: differs from the row" in first, first
    finally:
        await drop_production_state(settings)
