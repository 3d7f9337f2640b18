"""The risk policy bundle: read from [policy]'s file, versioned, journaled with every
decision, swapped in under load without a restart or a failed call, a bad one refused."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from switch import config
from switch.cli.main import main as cli
from switch.config import ConfigError
from switch.config.policy import load_policy
from switch.v1 import switch_pb2 as pb
from tests.e2e.support import bundle_settings, card_request, decision_of, serve_settings, write

FIRST = """
[kyc]
default_tier = "standard"
tiers.standard.USD = { lifetime = 1000000000 }
tiers.frozen.USD = { per_transaction = 0 }
"""
# The same tiers, but an unclassified holder may pay at most 5.00 USD at a time.
SECOND = FIRST.replace(
    "tiers.standard.USD = { lifetime = 1000000000 }", "tiers.standard.USD = { per_transaction = 500 }"
)
BROKEN = FIRST.replace('default_tier = "standard"', 'default_tier = "platinum"')


@pytest.fixture
async def settings(store_set: str, tmp_path: Path) -> AsyncIterator[config.Settings]:
    async with bundle_settings(store_set, tmp_path, FIRST) as kept:
        yield kept


def test_a_bundle_is_versioned_by_its_content(tmp_path: Path) -> None:
    first = load_policy(write(tmp_path / "a.toml", FIRST))
    assert first.kyc is not None and first.fraud_model is None and first.aml is None
    assert load_policy(write(tmp_path / "b.toml", FIRST)).version == first.version
    assert load_policy(write(tmp_path / "c.toml", SECOND)).version != first.version
    scored = load_policy(write(tmp_path / "d.toml", FIRST + "\n[fraud_model]\ndecline = 0.5\n"))
    assert scored.fraud_model is not None and scored.fraud_model.model.thresholds.decline == 0.5
    assert scored.version not in (first.version, "")


def test_a_bad_bundle_is_refused_naming_its_fault(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"kyc\.default_tier"):
        load_policy(write(tmp_path / "bad.toml", BROKEN))
    with pytest.raises(ConfigError, match="unknown key"):
        load_policy(write(tmp_path / "extra.toml", FIRST + "\n[limits]\nx = 1\n"))
    with pytest.raises(ConfigError, match=r"fraud_model\.path"):
        load_policy(write(tmp_path / "model.toml", '[fraud_model]\npath = "/nonexistent/model.json"\n'))
    raw = {"policy": {"file": str(tmp_path / "bad.toml")}}
    with pytest.raises(ConfigError, match=r"bad\.toml: kyc\.default_tier"):
        config.from_mapping(raw)
    with pytest.raises(ConfigError, match=r"kyc: with \[policy\]"):
        config.from_mapping({"policy": {"file": str(write(tmp_path / "ok.toml", FIRST))}, "kyc": {}})


async def test_a_reload_under_load_changes_decisions_without_a_failed_call(settings: config.Settings) -> None:
    policy_file = Path(settings.policy_file)
    first_version = settings.policy.version
    async with serve_settings(settings) as switch:
        assert switch.running.reload_policy is not None
        answers: list[pb.AuthorizeResponse] = []
        failures: list[BaseException] = []
        stop = asyncio.Event()

        async def load() -> None:
            while not stop.is_set():
                try:
                    answers.append(await switch.stub.Authorize(card_request(amount=1_000), timeout=5))
                except grpc.aio.AioRpcError as error:
                    failures.append(error)

        loaders = [asyncio.create_task(load()) for _ in range(8)]
        try:
            await asyncio.sleep(0.3)
            before = len(answers)
            assert before and {a.response_code for a in answers} == {"00"}

            write(policy_file, SECOND)
            assert await switch.running.reload_policy()
            await asyncio.sleep(0.3)
            after = answers[before:]
            assert after[-1].response_code == "57"  # 10.00 USD, over the new per-payment cap
            assert "KYC tier default: per_transaction cap reached" in after[-1].message
            decided = await decision_of(switch, after[-1])
            second_version = decided["policy"]
            assert second_version != first_version
            assert decided["kyc"] == {"tier": "", "cap": "per_transaction"}

            write(policy_file, BROKEN)
            assert not await switch.running.reload_policy()  # refused: the second bundle goes on
            await asyncio.sleep(0.2)
            assert answers[-1].response_code == "57"
            assert (await decision_of(switch, answers[-1]))["policy"] == second_version
        finally:
            stop.set()
            await asyncio.gather(*loaders)
        assert failures == []
        codes = [a.response_code for a in answers]
        assert set(codes) == {"00", "57"}
        assert codes.index("57") > 0 and "00" not in codes[len(codes) - codes[::-1].index("00") :]
        metrics = switch.running.metrics.render()
        assert 'switch_policy_reloads_total{outcome="swapped"} 1' in metrics
        assert 'switch_policy_reloads_total{outcome="refused"} 1' in metrics
        assert f'switch_policy{{version="{second_version}"}} 1' in metrics


def test_the_command_checks_the_bundle_and_signals_the_switch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy_file = write(tmp_path / "policy.toml", FIRST)
    main_file = write(tmp_path / "switch.toml", f'[policy]\nfile = "{policy_file}"\n')
    assert cli(["policy", "check", "--config", str(main_file)]) == 0
    assert load_policy(policy_file).version in capsys.readouterr().out

    # A process standing in for `switch serve`: it exits 0 on SIGHUP.
    waiter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time; signal.signal(signal.SIGHUP, lambda *_: sys.exit(0)); "
            "print('ready', flush=True); time.sleep(30); sys.exit(1)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert waiter.stdout is not None and waiter.stdout.readline() == b"ready\n"
        write(policy_file, BROKEN)
        assert cli(["policy", "reload", "--config", str(main_file), "--pid", str(waiter.pid)]) == 2
        assert "kyc.default_tier" in capsys.readouterr().err  # refused: nothing signalled
        assert waiter.poll() is None
        write(policy_file, SECOND)
        assert cli(["policy", "reload", "--config", str(main_file), "--pid", str(waiter.pid)]) == 0
        assert waiter.wait(timeout=10) == 0
    finally:
        if waiter.poll() is None:
            os.kill(waiter.pid, signal.SIGKILL)
            waiter.wait()
