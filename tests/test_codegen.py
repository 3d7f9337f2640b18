"""The generated modules under switch/v1 must match what protos/ generates now.

They are compared with the generator's version stamps masked: a patch release of
grpcio-tools (or of the protoc it bundles) rewrites only those stamps, and a fresh
install may be served any patch release of the pinned minor version. What the
.proto files define (the serialized descriptors, services, methods and the typed
stubs) must match byte for byte.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The lines a generator writes about itself, not about the .proto files.
_STAMPS = (
    (re.compile(rb"^GRPC_GENERATED_VERSION = '[^']*'$", re.M), b"GRPC_GENERATED_VERSION = <stamp>"),
    (re.compile(rb"^# Protobuf Python Version: .*$", re.M), b"# Protobuf Python Version: <stamp>"),
    (
        re.compile(
            rb"(ValidateProtobufRuntimeVersion\(\n\s*_runtime_version\.Domain\.PUBLIC,\n)(\s*\d+,\n){3}\s*'[^']*',"
        ),
        rb"\1<stamp>",
    ),
)


def without_stamps(source: bytes) -> bytes:
    for pattern, replacement in _STAMPS:
        source = pattern.sub(replacement, source)
    return source


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "protos" / "generate.py"), str(tmp_path)], check=True)
    generated = sorted(p.relative_to(tmp_path) for p in (tmp_path / "switch" / "v1").iterdir() if p.is_file())
    committed = sorted(p.relative_to(ROOT) for p in (ROOT / "switch" / "v1").iterdir() if p.is_file())
    assert generated == committed, "switch/v1 holds other files than protos/ generates: run `make protos`"
    for path in generated:
        fresh = without_stamps((tmp_path / path).read_bytes())
        assert fresh == without_stamps((ROOT / path).read_bytes()), f"{path} is stale: run `make protos`"


def test_masking_keeps_what_the_proto_defines() -> None:
    """The stamps differ between patch releases; anything else still counts."""
    one = (ROOT / "switch" / "v1" / "switch_pb2_grpc.py").read_bytes()
    other_release = one.replace(b"GRPC_GENERATED_VERSION = '", b"GRPC_GENERATED_VERSION = '9")
    assert without_stamps(one) == without_stamps(other_release)
    renamed_method = one.replace(b"/switch.v1.Switch/Authorize", b"/switch.v1.Switch/Authorise")
    assert without_stamps(one) != without_stamps(renamed_method)
    pb2 = (ROOT / "switch" / "v1" / "switch_pb2.py").read_bytes()
    assert without_stamps(pb2).count(b"<stamp>") == 2, "the protobuf stamps' layout changed: update _STAMPS"


@pytest.mark.parametrize(
    ("package", "stamp"),
    [
        ("grpcio", rb"GRPC_GENERATED_VERSION = '([^']*)'"),
        ("protobuf", rb"# Protobuf Python Version: (\S+)"),
    ],
)
def test_committed_stubs_accept_every_allowed_runtime(package: str, stamp: bytes) -> None:
    """The stubs refuse a runtime older than the generator that wrote them, so they
    must not be newer than the oldest runtime that pyproject.toml lets a user install."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = [re.fullmatch(rf"{package}>=([\d.]+),<[\d.]+", d) for d in dependencies]
    floor = next((m.group(1) for m in floors if m), None)
    assert floor is not None, f"pin {package} as >=X.Y.Z,<N in pyproject.toml"
    stamped = {path.name: re.search(stamp, path.read_bytes()) for path in (ROOT / "switch" / "v1").glob("*.py")}
    versions = {name: _version(found.group(1).decode()) for name, found in stamped.items() if found}
    assert len(versions) == 2, f"expected two {package}-stamped modules, found {sorted(versions)}"
    for name, version in versions.items():
        assert version <= _version(floor), f"{name}: run `make protos` with the generator of {package} {floor}"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))
