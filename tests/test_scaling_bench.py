"""A smoke test of loadtests/scaling.py: one worker, batch calls, on this machine's Redis + PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import POSTGRES_DSN, REDIS_URL
from tests.pki import CA
from tests.test_demo_tls import make_folder

ROOT = Path(__file__).resolve().parent.parent


def one_worker(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A short scaling run of one worker on batches, into out."""
    command = [sys.executable, str(ROOT / "loadtests" / "scaling.py"), "--workers", "1", "--modes", "batch"]
    command += ["--duration", "0.5", "--warmup", "0.2", "--redis-url", REDIS_URL, "--postgres-dsn", POSTGRES_DSN]
    command += [*args, "--out", str(out)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_one_worker_prints_its_row_and_names_the_added_configuration(tmp_path: Path) -> None:
    extra = tmp_path / "batcher.toml"
    extra.write_text("[batcher]\nmax_items = 128\n")
    out = tmp_path / "out"
    done = one_worker(out, "--extra-config", str(extra))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "switch configuration, added: [batcher] max_items = 128" in done.stdout
    report = orjson.loads((out / "scaling.json").read_bytes())
    assert report["meta"]["extra_config"] == extra.read_text()
    points = {(p["target"], p["workers"]): p for p in report["points"]}
    assert set(points) == {("echo", 1), ("switch", 1)}
    for point in points.values():
        _ran_clean(point, duration_s=0.5)
    table = (out / "scaling.txt").read_text()
    assert table.startswith("scaling:")
    assert any(line.split()[:1] == ["1"] for line in table.splitlines()), table  # the row of one worker


def test_one_worker_on_a_redis_cluster_the_run_starts(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "loadtests" / "scaling.py"), "--workers", "1", "--modes", "batch"]
    command += ["--duration", "0.5", "--warmup", "0.2", "--postgres-dsn", POSTGRES_DSN, "--redis-cluster", "3"]
    command += ["--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "# Redis Cluster started: 3 primaries" in done.stdout
    assert "(Redis: a cluster of 3 primaries;" in (out / "scaling.txt").read_text()
    report = orjson.loads((out / "scaling.json").read_bytes())
    assert report["meta"]["redis_cluster"] == 3
    switch = next(p for p in report["points"] if p["target"] == "switch")
    _ran_clean(switch, duration_s=0.5)
    assert 0 <= switch["redis_busiest_cores"] <= switch["redis_cores"] + 1e-6


def _ran_clean(point: dict[str, Any], *, duration_s: float) -> None:
    """The point ran without errors and its figures agree with its counts. Not how fast:
    a 0.5 s window on a busy machine may close before the first batch is answered."""
    assert not point["error"] and point["failed_calls"] == {} and point["item_errors"] == 0, point
    assert point["authorizations_per_s"] == pytest.approx(point["calls"] * 100 / duration_s), point
    # every 8th call's answers are read item by item: at most all the calls' 100 items
    sampled = point["sampled_approved"] + point["sampled_declined"]
    assert sampled % 100 == 0 and sampled <= point["calls"] * 100, point


def test_a_cluster_of_fewer_than_three_primaries_is_refused() -> None:
    command = [sys.executable, str(ROOT / "loadtests" / "scaling.py"), "--workers", "1", "--redis-cluster", "2"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "at least three primaries" in done.stderr


def test_one_worker_over_mutual_tls(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "tls", CA())
    out = tmp_path / "out"
    done = one_worker(out, "--tls-dir", str(folder))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = orjson.loads((out / "scaling.json").read_bytes())
    assert report["meta"]["tls"] is True
    assert ", mutual TLS (echo and switch);" in (out / "scaling.txt").read_text()
    assert {p["target"] for p in report["points"]} == {"echo", "switch"}
    for point in report["points"]:  # a refused handshake or caller would show here
        _ran_clean(point, duration_s=0.5)
