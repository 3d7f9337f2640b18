"""Secret files on disk: the fingerprint key and the tokenization key ring.

Production mounts them as files (mode 0600, owned by the switch's user); the
embedded default makes its own beside its journal; `switch keys init` writes a
fresh pair for a new deployment. A key file that others may read is refused at
start: it would put key material in reach of every local user. Errors name the
setting and the path, never the contents.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from switch.cards.tokenizer import KeyRing
from switch.config.checks import ConfigError
from switch.security.custody.storage import write_private
from switch.security.secret_files import SecretFileError, read_private

FINGERPRINT_KEY_FILE = "fingerprint.key"
TOKEN_KEY_FILE = "token-keys.json"
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_HEX_LENGTHS = (32, 48, 64)


def read_secret(path: Path, setting: str) -> bytes:
    """The file's bytes; ConfigError naming setting when it is unreadable or readable
    by group or others."""
    try:
        return read_private(path)
    except SecretFileError as exc:
        raise ConfigError(f"{setting}: {exc}") from None


def write_secret(path: Path, data: bytes, *, replace: bool = True) -> bool:
    """Writes data to path, mode 0600, atomically (a reader sees the old file or the new
    one, never a part), creating its folder as 0700. replace=False keeps a file that is
    already there, even one another process creates meanwhile: returns whether this
    call wrote it."""
    return write_private(path, data, replace=replace)


def read_fingerprint_key(path: Path, setting: str = "security.fingerprint_key_file") -> bytes:
    text = read_secret(path, setting).strip()
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ConfigError(f"{setting}: {path} must hold the key as hex digits") from None
    if len(key) < 16:
        raise ConfigError(f"{setting}: {path} must hold at least 32 hex digits")
    return key


def new_fingerprint_key() -> bytes:
    return secrets.token_hex(32).encode("ascii") + b"\n"


def parse_key_ring(raw: Mapping[str, Any]) -> KeyRing:
    """The [tokenization] table: active_key + keys inline, or key_file alone; ConfigError names the key."""
    unknown = set(raw) - {"active_key", "keys", "key_file"}
    if unknown:
        raise ConfigError(f"tokenization.{sorted(unknown)[0]}: unknown key")
    if "key_file" not in raw:
        return _ring_from_table(raw, "tokenization.")
    if "keys" in raw or "active_key" in raw:
        raise ConfigError("tokenization.key_file: set key_file alone, or active_key and keys, not both")
    path = raw["key_file"]
    if not isinstance(path, str) or not path:
        raise ConfigError("tokenization.key_file: must be a path")
    try:
        data = orjson.loads(read_secret(Path(path), "tokenization.key_file"))
    except orjson.JSONDecodeError:
        # orjson's message may quote the file, and the file holds keys: say only where.
        raise ConfigError(f"tokenization.key_file: {path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise ConfigError(f"tokenization.key_file: {path} must hold an object with active_key and keys")
    unknown = set(data) - {"active_key", "keys"}
    if unknown:
        raise ConfigError(f"tokenization.key_file: {sorted(unknown)[0]}: unknown key")
    return _ring_from_table(data, "tokenization.key_file: ")


def _ring_from_table(table: Mapping[str, Any], where: str) -> KeyRing:
    entries = table.get("keys")
    if not isinstance(entries, Mapping) or not entries:
        raise ConfigError(f"{where}keys: must be a table of key id = hex key, with at least one key")
    keys: dict[str, bytes] = {}
    for key_id, value in entries.items():
        if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
            raise ConfigError(f"{where}keys: key ids are 1-32 letters, digits, '.', '_' or '-', starting alphanumeric")
        if not isinstance(value, str) or len(value) not in _HEX_LENGTHS or not _HEX.fullmatch(value):
            raise ConfigError(f"{where}keys.{key_id}: must be 32, 48 or 64 hex digits")
        keys[key_id] = bytes.fromhex(value)
    active = table.get("active_key")
    if not isinstance(active, str):
        raise ConfigError(f"{where}active_key: must name one of the keys")
    if active not in keys:
        shown = repr(active) if _KEY_ID.fullmatch(active) else "(not a key id)"  # never echo what may be a key
        raise ConfigError(f"{where}active_key: no key named {shown}")
    return KeyRing(keys, active)


def new_key_ring() -> KeyRing:
    """A ring of one fresh AES-256 key, "k1", active."""
    return KeyRing(keys={"k1": secrets.token_bytes(32)}, active_key="k1")


def write_key_file(path: Path, ring: KeyRing, *, replace: bool = True) -> bool:
    """Writes ring as a key file parse_key_ring reads: JSON, mode 0600, replaced atomically;
    replace=False keeps a file already there (see keyfiles.write_secret)."""
    data = orjson.dumps(
        {"active_key": ring.active_key, "keys": {key_id: key.hex() for key_id, key in ring.keys.items()}},
        option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS,
    )
    return write_secret(path, data, replace=replace)
