"""A smoke test of loadtests/stages.py: a tiny run on this machine's Redis and PostgreSQL."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import orjson

from loadtests import stages, stages_report
from switch.flow.pipeline import AuthorizationPipeline
from switch.stores import redis as redis_store

ROOT = Path(__file__).resolve().parent.parent


def test_every_timed_stage_is_a_pipeline_method() -> None:
    # The profile wraps these by name: a renamed stage must fail here, not go missing from the table.
    for name, _ in stages_report.PIPELINE_STAGES:
        assert callable(getattr(AuthorizationPipeline, name)), name


def test_a_tiny_run_prints_every_stage_and_the_ceilings(tmp_path: Path) -> None:
    out = tmp_path / "stages.json"
    command = [sys.executable, str(ROOT / "loadtests" / "stages.py"), "--quick", "--batch", "32", "--json", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    printed = done.stdout
    for _, label in stages_report.PIPELINE_STAGES:
        assert f"| switch | {label} |" in printed
    assert "| all | **switch + stores** |" in printed and "- one switch process:" in printed
    report = orjson.loads(out.read_bytes())
    assert report["meta"]["batch"] == 32 and report["meta"]["batches"] == 8
    assert set(report["switch_us"]) == {name for name, _ in stages_report.STAGES}
    assert all(value > 0 for value in report["switch_us"].values()), report["switch_us"]
    # The stores' CPU comes from /proc in 10 ms ticks: a run this small may read zero.
    assert report["stores_us"]["redis"] >= 0 and report["stores_us"]["postgres"] >= 0
    # Redis's own clock is in microseconds: the scripts ran, and their commands are part of them.
    assert report["stores_us"]["redis_scripts"] > report["stores_us"]["redis_script_commands"] > 0
    assert "| Redis | of which, inside the two scripts (Redis's clock) |" in printed


def test_a_tiny_run_on_a_redis_cluster_it_starts_itself(tmp_path: Path) -> None:
    out = tmp_path / "stages.json"
    script = str(ROOT / "loadtests" / "stages.py")
    command = [sys.executable, script, "--quick", "--batch", "32", "--redis-cluster", "3", "--json", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "on a Redis Cluster of 3 primaries + PostgreSQL" in done.stdout
    assert "| Redis | of which, the busiest primary |" in done.stdout
    report = orjson.loads(out.read_bytes())
    assert report["meta"]["redis_cluster"] == 3
    # The commands ran on the cluster's primaries, whose clocks are summed.
    assert report["stores_us"]["redis_scripts"] > report["stores_us"]["redis_script_commands"] > 0
    assert 0 <= report["stores_us"]["redis_busiest"] <= report["stores_us"]["redis"] + 1e-6  # one sum, two roundings


def test_a_cluster_run_too_short_to_read_its_primaries_still_prints() -> None:
    report = {
        "meta": {"date": "d", "machine": "m", "python": "3", "command": "c", "batches": 1, "batch": 1,
                 "cores": 2, "wall_us_per_auth": 1.0, "redis_cluster": 3, "merchants": 1},
        "switch_us": {"parse": 1.0},
        "stores_us": {"redis": 0.0, "postgres": 0.0, "redis_scripts": 1.0, "redis_script_commands": 0.5,
                      "redis_busiest": 0.0},
    }  # fmt: skip
    printed = stages_report.render_markdown(report)
    assert "busiest primary (each runs scripts on one thread): not measured" in printed
    assert "a Redis Cluster of 3 primaries + PostgreSQL; 1 merchant;" in printed


def test_redis_time_is_split_between_the_scripts_own_work_and_their_commands() -> None:
    stores = {"redis": 16.0, "postgres": 20.0, "redis_scripts": 15.0, "redis_script_commands": 4.5}
    rows = stages_report.redis_detail(stores)
    assert rows == [
        ["Redis", "of which, inside the two scripts (Redis's clock)", "15.0"],
        ["Redis", "of which, the scripts' own work (Lua, JSON decoding)", "10.5"],
        ["Redis", "of which, the commands the scripts run (SET, GET, INCRBY, ...)", "4.5"],
    ]
    assert stages_report.redis_detail({"redis": 1.0, "postgres": 1.0}) == []  # a report from before the split


def test_the_script_commands_counted_are_exactly_those_the_scripts_call() -> None:
    # stages.SCRIPT_COMMANDS keeps its own list: a command added to a script must be added there too.
    scripts = redis_store.CLAIM_SCRIPT + redis_store.COMPLETE_SCRIPT
    called = {name.lower() for name in re.findall(r"redis\.p?call\('(\w+)'", scripts)}
    assert set(stages.SCRIPT_COMMANDS) == called
