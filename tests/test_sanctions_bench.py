"""loadtests/bench_sanctions.py runs and prints its tables (what it measures, not how fast)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_quick_run_prints_every_table_and_passes() -> None:
    command = [sys.executable, "loadtests/bench_sanctions.py", "--quick"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for header in ("| list | value |", "| perturbation | queries | recall at HIT |", "| clean names |", "| timing"):
        assert any(line.startswith(header) for line in lines), (header, result.stdout)
    assert any(line.startswith("| **all** | ") and "%" not in line for line in lines)
    assert any(line.startswith("| best_many of 256 fresh names, median ms |") for line in lines)
    assert any(line.startswith("| index in its own process |") for line in lines)
