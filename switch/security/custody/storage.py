"""Writing a file that holds key material: whole, private and atomic.

A reader sees the old file or the new one, never a part; the file is mode 0600 and a
folder made for it 0700, so no other local user reads a key (or a wrapped key) even
for a moment."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_private(path: Path, data: bytes, *, replace: bool = True) -> bool:
    """Writes data to path, mode 0600, atomically, creating its folder as 0700.
    replace=False keeps a file that is already there, even one another process creates
    meanwhile: returns whether this call wrote it."""
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
