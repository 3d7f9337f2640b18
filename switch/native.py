"""Finds the compiled cext modules, unless SWITCH_NO_EXTENSIONS=1 asks for pure Python.

This is the one place outside the composition root that reads the environment:
the choice must be made at import time, before any hot path is bound.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

DISABLED = os.environ.get("SWITCH_NO_EXTENSIONS", "") not in ("", "0")


def load(name: str) -> ModuleType | None:
    """switch._cext.<name>, or None when extensions are disabled or not built."""
    if DISABLED:
        return None
    try:
        return importlib.import_module(f"switch._cext.{name}")
    except ImportError:
        return None


def active() -> bool:
    return load("cards") is not None
