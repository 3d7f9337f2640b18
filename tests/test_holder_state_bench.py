"""loadtests/bench_holder_state.py runs every layout against the test Redis, prints a row
for each and leaves none of its keys behind (what it measures, not how fast)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import redis

from loadtests.bench_holder_state import LAYOUTS
from tests.conftest import REDIS_URL

ROOT = Path(__file__).resolve().parents[1]


def test_a_run_prints_a_row_per_layout_and_cleans_up() -> None:
    command = [sys.executable, "loadtests/bench_holder_state.py", "--rounds", "1", "--redis-url", REDIS_URL]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == [name for name, _, _ in LAYOUTS]
    assert rows[0].endswith("| +0.00 |")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert not list(client.scan_iter("bench-holder-*", count=1000))
    finally:
        client.close()
