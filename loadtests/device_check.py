"""What a run on a lent machine needs from the carried Python, checked before it starts.

    cd /tmp && PYTHONPATH=APP:SITE python3.12 - PYPROJECT < loadtests/device_check.py

APP holds switch/ (its compiled modules beside their Python twins:
switch/cards/_luhn, switch/cards/_ff1, switch/money/_fees_core) and switch_adapters/,
SITE the carried site-packages (loadtests/device_pack.sh builds both). Read from stdin, in /tmp, so
that no file beside it shadows a module. device_pack.sh runs it before it replaces
.device/, device_scaling.sh on the lent machine before anything starts: one check,
so the pack is tested for exactly what the run will ask of it.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import socket
import sys
import tomllib

import asyncpg
import cryptography
import google.protobuf
import grpc
import hiredis
import orjson
import redis
import uvloop

import switch
from switch import native

app, site = os.environ["PYTHONPATH"].split(":")
for compiled in native.COMPILED:
    module = importlib.import_module(compiled)  # raises the ImportError native.load() would hide
    assert str(module.__file__).startswith(app) and str(module.__file__).endswith(".so"), module.__file__
    assert native.load(compiled) is module, compiled
assert native.active(), "switch.native.active() is False"
assert switch.__file__ is not None and switch.__file__.startswith(app), switch.__file__
for module in (grpc, uvloop, asyncpg, redis, orjson, cryptography, google.protobuf, hiredis):
    where = str(module.__file__)
    assert where.startswith(site), f"{module.__name__} from {where}, not {site}"

with open(sys.argv[1], "rb") as pyproject:
    declared: dict[str, dict[str, str]] = tomllib.load(pyproject)["project"]["entry-points"]
for group, points in declared.items():
    found = {entry.name: entry.value for entry in md.entry_points(group=group)}
    assert found == points, f"{group}: dist-info {found} != pyproject {points}"
    for value in found.values():
        module_name, _, attribute = value.partition(":")
        assert hasattr(importlib.import_module(module_name), attribute), value
assert "simulated" in declared.get("switch.adapters", {}), "the scaling run routes to the simulated issuer"
print(
    "imports ok: switch",
    switch.__file__,
    "grpcio",
    grpc.__version__,
    "protobuf",
    google.protobuf.__version__,
    "uvloop",
    md.version("uvloop"),
    "asyncpg",
    md.version("asyncpg"),
    "; entry points as pyproject declares them:",
    ", ".join(declared),
)

# The workers share one port (switch serve --workers N).
first, second = socket.socket(), socket.socket()
for listener in (first, second):
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
first.bind(("127.0.0.1", 0))
second.bind(first.getsockname())
first.listen()
second.listen()
first.close()
second.close()
print("SO_REUSEPORT: two listeners on one port ok")
