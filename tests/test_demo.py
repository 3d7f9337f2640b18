"""`switch demo` runs end to end, meets its own expectations, and never prints a PAN."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from switch import config
from switch.cards.luhn import reference_luhn_valid
from switch.cli import demo

ROOT = Path(__file__).resolve().parent.parent
TEST_PANS = ("4111111111111111", "4000000000000002", "4000000000009995", "4111111111111112")


def check_summary(out: str) -> None:
    assert "all expectations held" in out, out
    assert re.search(r"^Authorize\s+approved\s+\d+\s", out, re.MULTILINE), out
    assert re.search(r"^Authorize\s+declined 05\s+\d+\s", out, re.MULTILINE), out
    assert re.search(r"^Authorize\s+declined 51\s+\d+\s", out, re.MULTILINE), out
    assert re.search(r"^Authorize\s+approved \(replayed\)\s+1\s", out, re.MULTILINE), out
    assert re.search(r"^Authorize\s+error ALREADY_EXISTS\s+1\s", out, re.MULTILINE), out
    assert re.search(r"^Authorize\s+error INVALID_ARGUMENT\s+\d+\s", out, re.MULTILINE), out
    assert re.search(r"^AuthorizeBatch item\s+approved\s", out, re.MULTILINE), out
    assert re.search(r"^AuthorizeStream item\s+approved\s", out, re.MULTILINE), out
    assert "replayed=true" in out
    assert "INVALID_ARGUMENT: source.card.pan" in out
    assert "declined 65" in out
    # The risk step: a sanctions hit, a KYC tier's cap, card testing, and the alerts they raised.
    assert "to a listed bank -> declined 93: transaction cannot be completed: violation of law (sanctions ofac" in out
    assert "(KYC tier limited: lifetime cap reached)" in out
    assert "(card testing) -> declined 59: suspected fraud" in out
    assert re.search(r"ListAlerts -> \d+ alerts: .*fraud_score.*sanctions_hit", out), out
    for pan in TEST_PANS:
        assert pan not in out
    # No card number of any kind (the demo's generated PANs are 16 digits too): the only
    # long digit runs allowed are tokens, which always fail the Luhn check.
    runs = re.findall(r"\d{12,}", out)
    assert runs, "the demo shows at least one token"
    assert not [run for run in runs if reference_luhn_valid(run)]


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    """`switch demo ARGS` as a user runs it: no SWITCH_ settings from this environment."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("SWITCH_")}
    command = [sys.executable, "-m", "switch", "demo", *args]
    return subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.slow
def test_demo_command_runs_and_masks_every_instrument() -> None:
    done = run_demo("--calls", "120")
    assert done.returncode == 0, done.stdout + done.stderr
    check_summary(done.stdout)
    assert "120 RPCs" in done.stdout
    for pan in TEST_PANS:
        assert pan not in done.stderr


def test_demo_main_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    settings = config.from_mapping({"server": {"port": 0}})
    assert demo.main(settings, calls=120) == 0
    check_summary(capsys.readouterr().out)


def test_demo_ignores_production_stores(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo always runs on the embedded default, whatever stores are configured."""
    settings = config.from_mapping(
        {
            "server": {"plaintext": True},
            "stores": {"redis_url": "redis://127.0.0.1:1/0", "postgres_dsn": "postgresql://nobody@127.0.0.1:1/none"},
            "security": {"fingerprint_key_hex": "ab" * 32},
        }
    )
    assert demo.main(settings, calls=40) == 0
    check_summary(capsys.readouterr().out)


def test_the_production_example_prices_as_the_demo_does() -> None:
    # examples/production.toml shows the demo's schedule; TOML cannot import it, so this pins the copy.
    import tomllib
    from pathlib import Path

    from switch.cli.demo import fees as demo_fees

    example = tomllib.loads((Path(__file__).parents[1] / "examples" / "production.toml").read_text())
    assert example["fee_schedule"] == demo_fees.FEE_SCHEDULE
