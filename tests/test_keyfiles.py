"""Secret files: written whole and private, created once however many processes race."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from switch.config import ConfigError
from switch.config.keys import new_fingerprint_key, read_fingerprint_key, write_secret


def test_racing_first_starts_all_read_the_one_key_written(tmp_path: Path) -> None:
    path = tmp_path / "data" / "fingerprint.key"
    keys = [new_fingerprint_key() for _ in range(16)]
    with ThreadPoolExecutor(8) as pool:
        wrote = list(pool.map(lambda key: write_secret(path, key, replace=False), keys))
    assert wrote.count(True) == 1
    assert path.read_bytes() == keys[wrote.index(True)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["fingerprint.key"]  # no partial file left behind


def test_replacing_swaps_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "fingerprint.key"
    first, second = new_fingerprint_key(), new_fingerprint_key()
    assert write_secret(path, first) and write_secret(path, second)
    assert read_fingerprint_key(path) == bytes.fromhex(second.decode().strip())


@pytest.mark.parametrize(("content", "message"), [(b"not hex\n", "hex digits"), (b"abcd\n", "at least 32")])
def test_a_bad_fingerprint_key_file_names_the_setting(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "fingerprint.key"
    write_secret(path, content)
    with pytest.raises(ConfigError, match=rf"security\.fingerprint_key_file: .*{message}"):
        read_fingerprint_key(path)
