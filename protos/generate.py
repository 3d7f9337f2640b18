"""Regenerate the Python modules under switch/v1/ from protos/switch/v1/*.proto.

The .proto files are the single source; the generated modules are never edited
by hand. `make protos` runs this; tests/test_codegen.py fails when they are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PROTO_ROOT.parent


def generate(out_dir: Path) -> None:
    """Write switch/v1/*_pb2*.py and their .pyi stubs under out_dir."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "switch" / "v1").glob("*.proto"))
    include = Path(protoc.__file__).resolve().parent / "_proto"
    bin_dir = Path(sys.executable).parent  # where mypy-protobuf installed its protoc plugins
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *protos,
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    package = out_dir / "switch" / "v1"
    (package / "__init__.py").write_text('"""Generated from protos/switch/v1 by protos/generate.py. Do not edit."""\n')


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT)
