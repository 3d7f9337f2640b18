"""The embedded journal holds tokens and amounts: its folder is 0700, the database and
its -wal / -shm files 0600, whatever the process umask."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from switch import cli, config
from switch.server import open_stores
from switch.stores.sqlite import SqliteJournal


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o002, 0o000], ids=["umask022", "umask002", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The process umask for one test, put back after it."""
    previous = os.umask(request.param)
    yield int(request.param)
    os.umask(previous)


async def test_a_fresh_journal_is_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "data" / "journal.sqlite3"
    journal = await SqliteJournal.open(path)
    try:
        # Open, the journal has written its schema: the -wal and -shm files exist.
        files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        assert {f.name: oct(mode(f)) for f in [path.parent, *files]} == {
            "data": "0o700",
            "journal.sqlite3": "0o600",
            "journal.sqlite3-wal": "0o600",
            "journal.sqlite3-shm": "0o600",
        }
    finally:
        await journal.close()


async def test_the_embedded_stores_make_a_private_folder(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "data" / "nested" / "journal.sqlite3"
    settings = config.load(None, {"SWITCH_SQLITE_PATH": str(path)})
    state, journal = await open_stores(settings)
    try:
        assert (oct(mode(path.parent)), oct(mode(path))) == ("0o700", "0o600")
    finally:
        await journal.close()
        await state.close()


def test_migrate_makes_a_private_journal(
    tmp_path: Path, umask: int, monkeypatch: pytest.MonkeyPatch, keep_root_logging: None
) -> None:
    path = tmp_path / "data" / "journal.sqlite3"
    monkeypatch.setenv("SWITCH_SQLITE_PATH", str(path))
    assert cli.main(["migrate"]) == 0
    assert (oct(mode(path.parent)), oct(mode(path))) == ("0o700", "0o600")


async def test_an_existing_journal_others_may_read_is_tightened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # As an earlier version left it: the folder and the database 0755 / 0644.
    path = tmp_path / "journal.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
    db.close()
    path.chmod(0o644)
    caplog.set_level(logging.INFO, logger="switch.stores.sqlite")
    journal = await SqliteJournal.open(path)
    try:
        assert oct(mode(path)) == "0o600"
        assert oct(mode(path.with_name(path.name + "-wal"))) == "0o600"
        lines = [r.getMessage() for r in caplog.records if r.name == "switch.stores.sqlite"]
        assert len(lines) == 1 and "0644" in lines[0] and "0600" in lines[0], lines
    finally:
        await journal.close()
    journal = await SqliteJournal.open(path)  # already private: nothing more to say
    await journal.close()
    assert len([r for r in caplog.records if r.name == "switch.stores.sqlite"]) == 1


async def test_a_loose_wal_left_behind_is_tightened_too(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = await SqliteJournal.open(path)  # held open, so its -wal stays
    wal = path.with_name(path.name + "-wal")
    # A crash leaves the -wal behind; an earlier version made it 0644.
    for made in (path, wal):
        made.chmod(0o644)
    other = await SqliteJournal.open(path)
    try:
        assert (oct(mode(path)), oct(mode(wal))) == ("0o600", "0o600")
        assert await other.due_reversals(0.0, 10) == []  # it reads the schema the -wal holds
    finally:
        await other.close()
        await journal.close()
