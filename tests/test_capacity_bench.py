"""A smoke test of loadtests/capacity.py (a tiny run against the embedded store set), and its
targets and report."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import orjson

from loadtests import capacity, capacity_report, capacity_targets, payloads
from tests.pki import CA
from tests.test_demo_tls import make_folder

ROOT = Path(__file__).resolve().parent.parent
ROWS = ("echo", "embedded (a) simulated", "embedded (b) ISO 8583")
MODES = ("unary", "batch x20", "stream")


def test_a_tiny_run_prints_the_table_with_every_row(tmp_path: Path) -> None:
    out = tmp_path / "capacity.json"
    command = [sys.executable, str(ROOT / "loadtests" / "capacity.py"), "--quick", "--duration", "0.4"]
    command += ["--warmup", "0.1", "--stores", "embedded", "--batch-items", "20", "--json", str(out)]
    # The timeout only catches a hang: how fast this machine is must not decide the test.
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    printed = done.stdout
    assert "### Capacity" in printed and "- command: `python loadtests/capacity.py --quick" in printed
    assert "| row | mode | auth/s | p50 ms | p99 ms | p99 @80% ms | vs echo |" in printed
    table = [line for line in printed.splitlines() if line.startswith("| ") and not line.startswith(("| row", "| ---"))]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in table]
    assert [(c[0], c[1]) for c in cells] == [(row, mode) for mode in MODES for row in ROWS]
    assert "Targets (row (a) on Redis + PostgreSQL):" in printed
    report = orjson.loads(out.read_bytes())
    assert len(report["rows"]) == 9
    # What ran, not how fast: in 0.4 s a busy machine may answer nothing at all.
    for row in report["rows"]:
        assert row["failed_calls"] == 0 and row["item_errors"] == 0, row
        assert len(row["runs_per_s"]) == 1, row  # one max-rate run (--quick: one repeat)
        per_call = 20 if row["mode"] == "batch" else 1
        assert row["authorizations"] == per_call * row["calls"], row
        # the open-loop run follows a max rate it can take 80% of, and only then
        assert (row["p99_at_load_ms"] is None) == (row["authorizations_per_s"] == 0), row
    assert all(row["sim_cores"] is not None for row in report["rows"] if row["target"] == "embedded-b")


def test_row_b_puts_the_card_route_on_the_iso8583_adapter() -> None:
    config_a = capacity.CONFIG.read_text()
    assert tomllib.loads(config_a)["routes"]["card"]["adapter"] == "simulated"
    routes = tomllib.loads(capacity_targets.config_b(config_a, 12345))["routes"]
    assert routes["card"] == {
        "adapter": "card_iso8583",
        "rail": "card",
        "options": {"host": "127.0.0.1", "port": 12345},
    }
    assert routes["instant"] == {"adapter": "simulated"}


def test_payloads_carry_unique_keys() -> None:
    from switch.v1 import switch_pb2 as pb

    built = payloads.prebuilt("stream", "abcd1234", 300)
    keys = {pb.AuthorizeRequest.FromString(p).idempotency_key for p in built}
    assert len(keys) == 300
    (batch,) = payloads.prebuilt("batch", "abcd1234", 1, batch_items=7)
    assert len(pb.AuthorizeBatchRequest.FromString(batch).requests) == 7


def test_each_embedded_row_has_a_journal_file_of_its_own(tmp_path: Path) -> None:
    # Two switches opening one SQLite file at once failed at start ("database is locked").
    targets = capacity_targets.targets(
        tmp_path, config=capacity.CONFIG, stores=["embedded"], rows=["a", "b"], production_env={}
    )
    paths = {t.key: t.server.env["SWITCH_SQLITE_PATH"] for t in targets if t.key.startswith("embedded")}
    assert len(paths) == 2 and len(set(paths.values())) == 2, paths
    sims = [t.sim for t in targets if t.sim is not None]
    assert [t.key for t in targets] == ["echo", "embedded-a", "embedded-b"] and len(sims) == 1
    assert f"port = {sims[0].port} " in (tmp_path / "embedded-b.toml").read_text()  # (b) talks to its simulator


def test_a_latency_target_shows_the_bare_echos_own_tail_beside_it() -> None:
    def row(target: str, mode: str, p99: float | None) -> dict[str, object]:
        return {"target": target, "mode": mode, "p99_at_load_ms": p99, "vs_echo": 1.0, "authorizations_per_s": 1.0}

    rows = [row("echo", "unary", 142.6), row("production-a", "unary", 52.8), row("production-a", "batch", 31.0)]
    shown = {check["what"]: check["shown"] for check in capacity_report.check_targets(rows, duration_s=5.0)}
    assert shown["p99 at 80% of max, production (a), unary"] == "52.8 ms (bare echo in this run: 142.6 ms)"
    assert shown["p99 at 80% of max, production (a), batch"] == "31.0 ms"  # no echo row for batch in this run


def _report(authorizations: int, store_cpu_s: float = 0.0) -> dict[str, object]:
    """A load generator's report of one 1.5 s run, with the CPU read meanwhile."""
    return {
        "calls": authorizations, "authorizations": authorizations, "approved": authorizations, "declined": 0,
        "item_errors": 0, "failed_calls": {}, "elapsed": 1.5, "p50_ms": 5.0, "p99_ms": 9.0, "count_bound": False,
        "client_cpu_s": 0.9, "window_s": 1.5, "cpu_s": {"server": 1.4, "sim": 0.0, "stores": store_cpu_s},
    }  # fmt: skip


def test_a_run_too_short_to_measure_judges_no_target_and_shows_no_negative_cores() -> None:
    # A --quick run once printed the switch faster than the echo as "holds", and a negative
    # "stores cores" (a store process exited between two readings).
    args = capacity._parser().parse_args(["--quick", "--stores", "production", "--rows", "a", "--modes", "unary"])
    capacity.settle_defaults(args)
    targets = [
        capacity_report.Measured("echo", "echo", has_sim=False),
        capacity_report.Measured("production-a", "production (a) simulated", has_sim=False),
    ]
    results = [
        capacity_report.run_result("echo", "unary", "max", 0.0, _report(5685)),
        capacity_report.run_result("production-a", "unary", "max", 0.0, _report(7493, -0.06)),
        capacity_report.run_result("echo", "unary", "load", 3032.0, _report(4548)),
        capacity_report.run_result("production-a", "unary", "load", 3996.0, _report(5994)),
    ]
    meta = capacity_report.meta(args, ["--quick"])
    report = capacity_report.build_report(meta, ["unary"], targets, results)
    switch_row = next(row for row in report["rows"] if row["target"] == "production-a")
    assert switch_row["vs_echo"] > 1 and switch_row["store_cores"] == 0.0
    assert report["targets"] and all(check["holds"] is None for check in report["targets"]), report["targets"]
    printed = capacity_report.render_markdown(report)
    verdicts = [line for line in printed.splitlines() if line.startswith("- ") and "(target " in line]
    assert verdicts and all("**not measured: run too short (1.5 s per run" in line for line in verdicts), verdicts
    assert "holds" not in "\n".join(verdicts) and "-0." not in printed


def test_a_run_long_enough_is_judged() -> None:
    rows = [
        {"target": "production-a", "mode": "batch", "p99_at_load_ms": 31.0, "vs_echo": 0.05,
         "authorizations_per_s": 20_000.0},
    ]  # fmt: skip
    checks = {check["what"]: check["holds"] for check in capacity_report.check_targets(rows, duration_s=5.0)}
    assert checks == {
        "AuthorizeBatch, production (a), authorizations/s": False,
        "p99 at 80% of max, production (a), batch": True,
    }


def test_a_tiny_run_with_a_tls_folder_adds_the_mtls_rows(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "tls", CA())
    out = tmp_path / "capacity.json"
    command = [sys.executable, str(ROOT / "loadtests" / "capacity.py"), "--quick", "--duration", "0.4"]
    command += ["--warmup", "0.1", "--stores", "embedded", "--rows", "a", "--modes", "unary"]
    command += ["--tls-dir", str(folder), "--json", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = orjson.loads(out.read_bytes())
    labels = ["echo", "embedded (a) simulated", "echo (mTLS)", "embedded (a) simulated, mTLS"]
    assert [row["label"] for row in report["rows"]] == labels
    for row in report["rows"]:  # a refused handshake or caller would show here
        assert row["failed_calls"] == 0 and row["item_errors"] == 0, row
    assert "mTLS rows: the server serves mutual TLS" in done.stdout


def test_an_mtls_row_is_measured_against_the_echo_over_mtls(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "tls", CA())
    production = {"SWITCH_PLAINTEXT": "true", "SWITCH_REDIS_URL": "redis://127.0.0.1:1/0"}
    targets = capacity_targets.targets(
        tmp_path, config=capacity.CONFIG, stores=["production"], rows=["a"], production_env=production, tls_dir=folder
    )
    assert [(t.key, t.baseline) for t in targets] == [
        ("echo", "echo"),
        ("production-a", "echo"),
        ("echo-tls", "echo-tls"),
        ("production-a-tls", "echo-tls"),
    ]
    plain, tls = targets[1].server, targets[3].server
    assert plain.env["SWITCH_PLAINTEXT"] == "true" and "SWITCH_PLAINTEXT" not in tls.env
    assert "--tls-dir" in targets[2].server.command and tls.tls_dir == folder.resolve()
    assert "tls" not in tomllib.loads((tmp_path / "production-a.toml").read_text()).get("server", {})
    config = tomllib.loads((tmp_path / "production-a-tls.toml").read_text())
    assert config["server"]["tls"]["cert_file"] == str(folder.resolve() / "server.pem")
    assert config["security"]["callers"][0]["identity"] == "spiffe://switch.local/client"

    measured = [capacity_report.Measured(t.key, t.label, False, t.baseline) for t in targets]
    rates = {"echo": 4000, "production-a": 2000, "echo-tls": 3000, "production-a-tls": 1500}
    results = [capacity_report.run_result(key, "unary", "max", 0.0, _report(int(n * 1.5))) for key, n in rates.items()]
    args = capacity._parser().parse_args(["--quick"])
    capacity.settle_defaults(args)
    report = capacity_report.build_report(capacity_report.meta(args, []), ["unary"], measured, results)
    ratios = {row["target"]: row["vs_echo"] for row in report["rows"]}
    assert ratios == {"echo": 1.0, "production-a": 0.5, "echo-tls": 1.0, "production-a-tls": 0.5}
