"""Secret files on disk: the fingerprint key and the tokenization key ring.

Production mounts them as files (mode 0600, owned by the switch's user); the
embedded default makes its own beside its journal; `switch keys init` writes a
fresh pair for a new deployment. A key file that others may read is refused at
start: it would put key material in reach of every local user. Errors name the
setting and the path, never the contents.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
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


def write_secret(path: Path, data: bytes, *, replace: bool = True) -> bool:
    """Writes data to path, mode 0600, atomically (a reader sees the old file or the new
    one, never a part), creating its folder as 0700. replace=False keeps a file that is
    already there, even one another process creates meanwhile: returns whether this
    call wrote it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(partial, path)
            return True
        try:
            os.link(partial, path)  # fails, changing nothing, when path exists
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)


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
