"""Secret files on disk: the fingerprint key and the tokenization key ring.

Production mounts them as files (mode 0600, owned by the switch's user); the
embedded default makes its own beside its journal; `switch keys init` writes a
fresh pair for a new deployment. A key file that others may read is refused at
start: it would put key material in reach of every local user. Errors name the
setting and the path, never the contents.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from switch.config import ConfigError

FINGERPRINT_KEY_FILE = "fingerprint.key"
TOKEN_KEY_FILE = "token-keys.json"


def read_secret(path: Path, setting: str) -> bytes:
    """The file's bytes; ConfigError naming setting when it is unreadable or readable
    by group or others."""
    try:
        with path.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            data = handle.read()
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{setting}: {path} is mode {stat.S_IMODE(mode):04o}; key files must be 0600 (chmod 600)")
    return data


def write_secret(path: Path, data: bytes) -> None:
    """Writes data to path, mode 0600, atomically (a reader sees the old file or the
    new one), creating its folder as 0700."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


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
