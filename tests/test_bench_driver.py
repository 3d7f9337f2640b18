"""The benchmarks' one load driver (loadtests/driver.py) and its processes
(loadtests/loadgen.py, loadtests/generators.py), against the bare echo."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests import driver, generators, payloads, servers
from loadtests.driver import Plan

LOADTESTS = Path(__file__).resolve().parent.parent / "loadtests"


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with servers.serving(servers.echo(tmp_path_factory.mktemp("echo"))) as target:
        yield target


def _run(folder: Path, plans: list[Plan], count: int = 1) -> generators.Together:
    started = [generators.LoadGenerator(folder / f"loadgen-{n}.log", cwd=folder) for n in range(count)]
    try:
        return generators.run_together(started, plans, watch={"none": []})
    finally:
        for generator in started:
            generator.close()


@pytest.mark.parametrize("mode", driver.MODES)
def test_a_closed_loop_counts_every_answer_of_its_window(echo: str, tmp_path: Path, mode: str) -> None:
    plan = Plan(echo, mode, duration=0.4, warmup=0.1, concurrency=4, channels=2, batch_items=10, pool=100_000)
    (report,) = _run(tmp_path, [plan]).reports
    assert report["failed_calls"] == {} and report["item_errors"] == 0, report
    assert report["calls"] > 0 and not report["count_bound"], report
    per_call = 10 if mode == "batch" else 1
    assert report["authorizations"] == per_call * report["calls"] == report["approved"], report
    assert sum(report["histogram"].values()) == report["calls"]
    assert 0 < report["p50_ms"] <= report["p99_ms"]


def test_a_pool_used_up_before_the_window_closes_is_count_bound(echo: str, tmp_path: Path) -> None:
    plan = Plan(echo, "unary", duration=2.0, warmup=0.0, concurrency=2, channels=1, pool=50, run_id="pool0001")
    (report,) = _run(tmp_path, [plan]).reports
    assert report["count_bound"] and report["calls"] == 50, report


def test_an_open_loop_sends_its_schedule(echo: str, tmp_path: Path) -> None:
    plan = Plan(echo, "unary", phase="load", rate=500, duration=0.6, warmup=0.2, concurrency=4, pool=1000)
    (report,) = _run(tmp_path, [plan]).reports
    assert report["failed_calls"] == {}, report
    assert 0.8 * 300 <= report["calls"] <= 300 + 1, report  # 500/s for 0.6 s, from the schedule


def test_generators_start_together_and_read_every_other_answer(echo: str, tmp_path: Path) -> None:
    plans = [
        Plan(echo, "batch", duration=0.4, warmup=0.1, concurrency=2, channels=1, batch_items=20,
             requests=kind, pool=32, run_id=f"gen{n:05d}", sample_every=2)
        for n, kind in enumerate(("fresh", "ring"))
    ]  # fmt: skip
    together = _run(tmp_path, plans, count=2)
    assert together.window_s > 0 and together.cpu_s == {"none": 0.0}
    for report in together.reports:
        assert report["calls"] > 0 and report["failed_calls"] == {}, report
        read = report["approved"] + report["declined"] + report["item_errors"]
        assert read == 20 * (report["calls"] // 2), report  # every 2nd answer, item by item
        assert report["authorizations"] == 20 * report["calls"], report


def test_a_bad_plan_is_refused_before_anything_runs(tmp_path: Path) -> None:
    plan = Plan("127.0.0.1:1", "bulk")
    with pytest.raises(RuntimeError, match="bulk"):
        _run(tmp_path, [plan])


def test_the_histogram_agrees_with_the_exact_percentiles() -> None:
    latencies = sorted(0.001 * (1 + n % 97) for n in range(10_000))
    buckets = Counter({int(bucket): n for bucket, n in driver.histogram(latencies).items()})
    for fraction in (0.5, 0.9, 0.99):
        exact = driver.percentile(latencies, fraction) * 1000.0
        assert driver.histogram_ms(buckets, fraction) == pytest.approx(exact, rel=0.02)
    assert driver.histogram_ms(Counter(), 0.5) == 0.0


def test_requests_of_every_source_are_fresh_keys_of_the_run() -> None:
    for kind in payloads.SOURCES:
        source = payloads.source(kind, "batch", "src00001", 5, 3)
        built = [source() for _ in range(3)]
        assert all(payload is not None for payload in built)
        for payload in built:
            assert payload is not None
            payloads.check_payload("batch", payload, "src00001", 5)
    pool = payloads.source("pool", "unary", "src00002", 1, 2)
    assert [pool() is None for _ in range(3)] == [False, False, True]  # a pool runs out


def test_no_load_test_runs_itself_under_a_role() -> None:
    # Worker processes are entry modules of their own (python -m loadtests.<module>).
    for path in sorted(LOADTESTS.glob("*.py")):
        source = path.read_text()
        assert "--role" not in source and "--child" not in source, path.name
        for module in re.findall(r'"-m", "loadtests\.(\w+)"', source):
            entry = (LOADTESTS / f"{module}.py").read_text()
            assert 'if __name__ == "__main__":' in entry, module
