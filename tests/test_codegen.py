"""The generated modules under switch/v1 must match what protos/ generates now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "protos" / "generate.py"), str(tmp_path)], check=True)
    generated = sorted(p.relative_to(tmp_path) for p in (tmp_path / "switch" / "v1").iterdir() if p.is_file())
    committed = sorted(p.relative_to(ROOT) for p in (ROOT / "switch" / "v1").iterdir() if p.is_file())
    assert generated == committed, "switch/v1 holds other files than protos/ generates: run `make protos`"
    for path in generated:
        fresh = (tmp_path / path).read_bytes()
        assert fresh == (ROOT / path).read_bytes(), f"{path} is stale: run `make protos`"
