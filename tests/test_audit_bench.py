"""loadtests/bench_audit.py runs and prints its rows (what it measures, not how fast)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_tiny_run_prints_every_row() -> None:
    command = [sys.executable, "loadtests/bench_audit.py", "--batches", "3", "--repeats", "1"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    rows = [line for line in result.stdout.splitlines() if line.startswith(("| seal", "| record"))]
    assert len(rows) == 6, result.stdout
    assert all(float(row.rsplit("|", 2)[1]) > 0 for row in rows)
