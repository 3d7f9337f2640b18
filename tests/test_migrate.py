"""`switch migrate` applies the journal's schema once, on either store set."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from switch import cli, config
from tests.conftest import drop_production_state, store_settings

ENVIRONMENT = {
    "sqlite_path": "SWITCH_SQLITE_PATH",
    "redis_url": "SWITCH_REDIS_URL",
    "postgres_dsn": "SWITCH_POSTGRES_DSN",
    "postgres_schema": "SWITCH_POSTGRES_SCHEMA",
    "key_prefix": "SWITCH_KEY_PREFIX",
}


pytestmark = pytest.mark.usefixtures("keep_root_logging")  # cli.main configures the root logger


@pytest.mark.parametrize("store_set", ["embedded", "production"])
def test_migrate_creates_the_schema_once(store_set: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = store_settings(store_set, tmp_path)
    for key, value in raw["stores"].items():
        monkeypatch.setenv(ENVIRONMENT[key], value)
    if raw.get("server", {}).get("plaintext"):
        monkeypatch.setenv("SWITCH_PLAINTEXT", "true")  # the setting production's serve runs with
    try:
        assert cli.main(["migrate"]) == 0
        assert cli.main(["migrate"]) == 0  # nothing left to do the second time
        assert asyncio.run(_tables(raw)) >= {"transactions", "journal_entries", "schema_migrations"}
    finally:
        asyncio.run(drop_production_state(config.from_mapping(raw)))


async def _tables(raw: dict[str, dict[str, str]]) -> set[str]:
    stores = raw["stores"]
    if "sqlite_path" in stores:
        import sqlite3

        with sqlite3.connect(stores["sqlite_path"]) as db:
            return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    connection = await asyncpg.connect(stores["postgres_dsn"])
    try:
        rows = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", stores["postgres_schema"]
        )
    finally:
        await connection.close()
    return {row["table_name"] for row in rows}
