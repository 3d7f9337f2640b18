"""Finds the compiled (Cython) twin of a hot path, unless SWITCH_NO_EXTENSIONS=1 asks
for pure Python. Each compiled module sits beside its plain-Python twin, named with a
leading underscore (switch/cards/_luhn.pyx beside switch/cards/luhn.py); the twin is
both the fallback and the oracle the tests compare the compiled one with.

This is the one place outside the composition root that reads the environment:
the choice must be made at import time, before any hot path is bound.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

DISABLED = os.environ.get("SWITCH_NO_EXTENSIONS", "") not in ("", "0")


COMPILED = (
    "switch.cards._luhn",
    "switch.cards._ff1",
    "switch.money._fees_core",
    "switch.stores.audit._merkle",
    "switch.risk.model._score",
    "switch.risk._assess",
)


def load(module: str) -> ModuleType | None:
    """The compiled module (one of COMPILED), or None when extensions are disabled or not built."""
    if DISABLED or importlib.util.find_spec(module) is None:
        return None
    # Built but failing to import (a wrong import inside it, a missing C library) is a
    # broken install, not a reason to run the slow twin unnoticed: it raises.
    return importlib.import_module(module)


def active() -> bool:
    return load("switch.cards._luhn") is not None
