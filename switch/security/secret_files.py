"""Reading a file that holds key material: only when no one but its owner may read it.

A key file that group or others may read puts the key in reach of every local user,
so it is refused, whatever holds it (the token keys, the fingerprint key, the TLS
server key). The message names the path and its mode, never the contents."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class SecretFileError(ValueError):
    """The file cannot be read, or others may read it."""


def read_private(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            data = handle.read()
    except OSError as exc:
        raise SecretFileError(f"cannot read {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretFileError(f"{path} is mode {stat.S_IMODE(mode):04o}; key files must be 0600 (chmod 600)")
    return data
