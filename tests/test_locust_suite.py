"""The Locust suite (loadtests/): its requests and judgements, and short runs against real servers.

Locust runs in subprocesses only (loadtests/sizing.py's helpers), so gevent's
monkey-patching never reaches this pytest process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests import scenarios, servers, sizing
from switch.v1 import switch_pb2 as pb
from tests.pki import CA
from tests.test_demo_tls import make_folder

RUN_S = 3.0
SCENARIO_OF = {
    "UnaryUser": "unary",
    "BatchUser": "batch",
    "StreamUser": "stream",
    "LifecycleUser": "lifecycle",
    "RetryUser": "retry",
    "MixedUser": "mix",
}


# --- requests and judgements, in-process -----------------------------------------------------------


def test_spliced_requests_parse_with_their_keys() -> None:
    keys = scenarios.Keys()
    items = [scenarios.with_key(keys.next(), template.body) for template in scenarios.MIX]
    batch = pb.AuthorizeBatchRequest.FromString(scenarios.batch_payload(items))
    assert len(batch.requests) == len(scenarios.MIX)
    assert len({request.idempotency_key for request in batch.requests}) == len(items)
    for request, template in zip(batch.requests, scenarios.MIX, strict=True):
        bare = pb.AuthorizeRequest()
        bare.CopyFrom(request)
        bare.ClearField("idempotency_key")
        assert bare.SerializeToString() == template.body
        assert request.merchant_id and request.amount.minor_units > 0


def test_keys_differ_between_instances_and_calls() -> None:
    first, second = scenarios.Keys(), scenarios.Keys()
    keys = [first.next() for _ in range(1000)] + [second.next() for _ in range(1000)]
    assert len(set(keys)) == len(keys)
    assert all(len(key) <= 128 for key in keys)


def test_the_mix_holds_card_and_rail_approvals_and_declines() -> None:
    requests = [(pb.AuthorizeRequest.FromString(t.body), t.expected_code) for t in scenarios.MIX]
    kinds = {(request.WhichOneof("source"), code) for request, code in requests}
    assert kinds == {("card", "00"), ("card", "05"), ("card", "51"), ("account", "00"), ("account", "51")}
    assert all(request.account.rail == "instant" for request, _ in requests if request.HasField("account"))
    assert all(pb.AuthorizeRequest.FromString(t.body).HasField("card") for t in scenarios.CAPTURABLE)
    assert all(t.expected_code == "00" for t in scenarios.CAPTURABLE)


def _template(code: str) -> scenarios.Template:
    return next(t for t in scenarios.MIX if t.expected_code == code)


def test_a_decline_is_a_result_and_broken_answers_are_problems() -> None:
    declined = pb.AuthorizeResponse(decision=pb.DECISION_DECLINED, response_code="61")
    approved = pb.AuthorizeResponse(decision=pb.DECISION_APPROVED, response_code="00")
    assert scenarios.problem(declined, _template("00")) is None
    assert scenarios.problem(approved, _template("00")) is None
    assert scenarios.problem(approved, _template("05")) is not None
    errored = pb.AuthorizeResponse(error=pb.ItemError(code=3, message="bad"))
    assert scenarios.problem(errored, _template("00")) is not None
    assert scenarios.problem(pb.AuthorizeResponse(), _template("00")) is not None
    replayed = pb.AuthorizeResponse(decision=pb.DECISION_APPROVED, response_code="00", replayed=True)
    assert scenarios.problem(replayed, _template("00")) is not None


def test_a_replay_must_be_marked_and_the_same() -> None:
    first = pb.AuthorizeResponse(transaction_id="tx_1", decision=pb.DECISION_APPROVED, response_code="00")
    same = pb.AuthorizeResponse(transaction_id="tx_1", decision=pb.DECISION_APPROVED, response_code="00", replayed=True)
    assert scenarios.replay_problem(first, same) is None
    unmarked = pb.AuthorizeResponse(transaction_id="tx_1", decision=pb.DECISION_APPROVED, response_code="00")
    assert scenarios.replay_problem(first, unmarked) is not None
    other = pb.AuthorizeResponse(
        transaction_id="tx_2", decision=pb.DECISION_APPROVED, response_code="00", replayed=True
    )
    assert scenarios.replay_problem(first, other) is not None


def test_the_sizing_run_names_the_locust_processes_it_forks() -> None:
    # --processes -1 is Locust's "one per core": the header printed -1 instead of the count.
    assert sizing.locust_processes(-1) == (os.cpu_count() or 1)
    assert sizing.locust_processes(0) == 1  # no fork: one process runs every user
    assert sizing.locust_processes(3) == 3


# --- short Locust runs against a switch (and an echo server that answers wrongly) --------------------


@pytest.fixture(scope="module")
def switch_target() -> Iterator[str]:
    with sizing.running_switch("embedded") as target:
        yield target


def _rows_by_scenario(out: Path) -> dict[str, list[sizing.StatsRow]]:
    rows: dict[str, list[sizing.StatsRow]] = {}
    for row in sizing.read_stats(out):
        rows.setdefault(row.scenario, []).append(row)
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("user_class", list(SCENARIO_OF))
def test_each_scenario_runs_clean(switch_target: str, user_class: str, tmp_path: Path) -> None:
    done = sizing.run_locust(
        switch_target, tmp_path, users=3, run_time_s=RUN_S, batch_size=20, user_classes=[user_class]
    )
    summaries = {s.scenario: s for s in sizing.summarize(sizing.read_stats(tmp_path))}
    assert set(summaries) == {SCENARIO_OF[user_class]}, done.stderr[-3000:]
    summary = summaries[SCENARIO_OF[user_class]]
    assert summary.failures == 0, (tmp_path / "switch_failures.csv").read_text()
    assert sizing.read_exceptions(tmp_path) == 0, (tmp_path / "switch_exceptions.csv").read_text()
    assert summary.authorizations > 0  # it ran; how fast is the machine's business
    assert done.returncode == 0, done.stderr[-3000:]
    names = {row.name for row in _rows_by_scenario(tmp_path)[summary.scenario]}
    if user_class == "LifecycleUser":
        assert {"lifecycle Capture", "lifecycle Refund"} <= names
    if user_class == "RetryUser":
        assert "retry Authorize (replay)" in names
    if user_class in ("BatchUser", "StreamUser"):
        # one authorization row entry per item: 20 per call
        auth = next(row for row in _rows_by_scenario(tmp_path)[summary.scenario] if row.kind == "auth")
        calls = next(row for row in _rows_by_scenario(tmp_path)[summary.scenario] if row.kind == "grpc")
        assert auth.requests >= 20 * calls.requests > 0


@pytest.mark.slow
def test_tags_select_scenarios_across_worker_processes(switch_target: str, tmp_path: Path) -> None:
    done = sizing.run_locust(
        switch_target,
        tmp_path,
        users=4,
        run_time_s=RUN_S,
        processes=2,
        batch_size=10,
        extra=["--tags", "batch", "stream"],
    )
    summaries = {s.scenario: s for s in sizing.summarize(sizing.read_stats(tmp_path))}
    assert set(summaries) == {"batch", "stream"}, done.stderr[-3000:]
    assert all(s.failures == 0 and s.authorizations > 0 for s in summaries.values())
    assert sizing.read_exceptions(tmp_path) == 0
    assert (tmp_path / "switch.html").stat().st_size > 0
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_wrong_answers_and_grpc_errors_are_failures(tmp_path: Path) -> None:
    """The capacity benchmark's echo server approves everything (declining cards too), never
    marks a replay, and answers Capture with UNIMPLEMENTED: every scenario must fail."""
    with servers.serving(servers.echo(tmp_path)) as target:
        done = sizing.run_locust(
            target,
            tmp_path / "out",
            users=7,
            run_time_s=RUN_S,
            batch_size=20,
            user_classes=["UnaryUser", "BatchUser", "StreamUser", "LifecycleUser", "RetryUser"],
        )
    summaries = {s.scenario: s for s in sizing.summarize(sizing.read_stats(tmp_path / "out"))}
    assert set(summaries) == {"unary", "batch", "stream", "lifecycle", "retry"}, done.stderr[-3000:]
    assert all(s.failures > 0 for s in summaries.values()), summaries
    assert done.returncode == 1


@pytest.mark.slow
def test_sizing_command_prints_a_table_and_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = sizing.main(
        ["--run-time", "3", "--users", "10", "--processes", "0", "--batch-size", "20", "--out", str(tmp_path)]
    )
    printed = capsys.readouterr().out
    assert status == 0, printed
    table = printed.split("scenario", 1)[1]
    for scenario in ("unary", "batch", "stream", "lifecycle", "retry", "mix", "total"):
        assert f"\n{scenario} " in table
    assert (tmp_path / "switch_stats.csv").exists() and (tmp_path / "switch.html").exists()


@pytest.mark.slow
def test_the_sizing_run_over_mutual_tls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--tls-dir: the switch serves mutual TLS only, so every answered call went over it with
    the folder's client certificate (and its identity was granted what the scenarios call)."""
    folder = make_folder(tmp_path / "tls", CA())
    argv = ["--run-time", "3", "--users", "6", "--processes", "0", "--batch-size", "10"]
    status = sizing.main([*argv, "--out", str(tmp_path / "out"), "--tls-dir", str(folder)])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "# switch (embedded, mutual TLS) serving on" in printed
    summaries = {s.scenario: s for s in sizing.summarize(sizing.read_stats(tmp_path / "out"))}
    assert summaries and all(s.failures == 0 for s in summaries.values()), summaries
    assert {"lifecycle", "unary"} <= set(summaries)  # Capture and Refund (role operate) too
