"""A challenger fraud model scored in shadow beside the live one: it decides nothing, its
score is journaled beside the live one and the two models' outcomes are counted side by
side; promoting it is a bundle naming it as the live model, reloaded without a restart,
or PromoteModel: journaled, applied by every worker and kept across a restart."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from switch import config, server
from switch.config import ConfigError
from switch.config.policy import load_policy
from switch.risk.assess import outcome
from switch.risk.model.model import SHIPPED, content_version, load
from switch.v1 import switch_pb2 as pb
from switch.v1 import switch_pb2_grpc
from tests.conftest import drop_production_state, store_settings
from tests.e2e.support import (
    MASTERCARD,
    VISA,
    Switch,
    bundle_settings,
    card_request,
    decision_of,
    expect,
    serve_settings,
    write,
)

CALLERS = {"callers": [{"identity": "*", "roles": ["authorize", "read", "compliance", "admin"], "merchants": ["*"]}]}
LIVE = load()


def a_challenger(folder: Path, intercept_shift: float) -> Path:
    """The shipped model with its intercept moved: a shift of +12 scores every payment near 1."""
    data = json.loads(SHIPPED.read_text())
    data["intercept"] += intercept_shift
    data["version"] = content_version(data)
    path = folder / f"challenger-{data['version']}.json"
    path.write_text(json.dumps(data))
    return path


def bundle(live: str | None, challenger: Path | None) -> str:
    text = "[fraud_model]\n" + (f'path = "{live}"\n' if live else "")
    if challenger is not None:
        text += f'\n[fraud_model.challenger]\npath = "{challenger}"\n'
    return text


def test_a_challenger_is_checked_and_versions_the_bundle(tmp_path: Path) -> None:
    challenger = a_challenger(tmp_path, 12.0)
    alone = load_policy(write(tmp_path / "alone.toml", bundle(None, None)))
    paired = load_policy(write(tmp_path / "paired.toml", bundle(None, challenger)))
    assert paired.fraud_model is not None and paired.fraud_model.challenger is not None
    assert paired.fraud_model.challenger.version == load(challenger).version != LIVE.version
    assert paired.version != alone.version
    with pytest.raises(ConfigError, match=r"fraud_model\.challenger\.path: the challenger is the live model"):
        load_policy(write(tmp_path / "same.toml", bundle(None, SHIPPED)))
    with pytest.raises(ConfigError, match=r"fraud_model\.challenger\.path: cannot read"):
        load_policy(write(tmp_path / "missing.toml", bundle(None, tmp_path / "nowhere.json")))
    with pytest.raises(ConfigError, match=r"fraud_model\.challenger\.drift_window: unknown key"):
        load_policy(write(tmp_path / "extra.toml", bundle(None, challenger) + "drift_window = 100\n"))
    with pytest.raises(ConfigError, match=r"fraud_model\.challenger\.alert: must not be above"):
        load_policy(write(tmp_path / "order.toml", bundle(None, challenger) + "decline = 0.1\nalert = 0.2\n"))


@pytest.fixture
async def settings(store_set: str, tmp_path: Path) -> AsyncIterator[config.Settings]:
    async with bundle_settings(store_set, tmp_path, bundle(None, a_challenger(tmp_path, 12.0)), CALLERS) as kept:
        yield kept


async def test_the_challenger_decides_nothing_until_promoted(settings: config.Settings, tmp_path: Path) -> None:
    policy_file = Path(settings.policy_file)
    assert settings.policy.fraud_model is not None and settings.policy.fraud_model.challenger is not None
    challenger = settings.policy.fraud_model.challenger
    async with serve_settings(settings) as switch:
        answer = await switch.stub.Authorize(card_request(pan=VISA, amount=2_500))
        assert answer.response_code == "00", answer  # the live model passes it...
        decided = await decision_of(switch, answer)
        assert decided["model"] == LIVE.version and decided["score"] < LIVE.thresholds.decline
        # ...the challenger, in shadow, would have declined it: journaled and counted, not acted on
        assert decided["challenger"]["model"] == challenger.version
        assert decided["challenger"]["score"] >= challenger.thresholds.decline
        metrics = switch.running.metrics.render()
        live = outcome(decided["score"], LIVE)  # pass or, for a card never seen, an alert
        assert f'switch_risk_challenger_total{{live="{live}",challenger="decline"}} 1' in metrics

        # Promotion: the challenger becomes the bundle's live model, reloaded in place.
        write(policy_file, bundle(str(challenger_path(settings)), None))
        assert switch.running.reload_policy is not None and await switch.running.reload_policy()
        declined = await switch.stub.Authorize(card_request(pan=VISA, amount=2_500))
        assert declined.response_code == "59", declined
        decided = await decision_of(switch, declined)
        assert decided["model"] == challenger.version and "challenger" not in decided


def challenger_path(settings: config.Settings) -> Path:
    text = Path(settings.policy_file).read_text()
    return Path(text.split('[fraud_model.challenger]\npath = "', 1)[1].split('"', 1)[0])


def promote(settings: config.Settings, model: str, policy: str | None = None) -> pb.PromoteModelRequest:
    version = settings.policy.version if policy is None else policy
    return pb.PromoteModelRequest(policy_version=version, model_version=model, reason="review RSK-12")


async def decided_by(switch: Switch, code: str, pan: str = VISA) -> dict[str, Any]:
    answer = await switch.stub.Authorize(card_request(pan=pan, amount=2_500))
    assert answer.response_code == code, answer
    return await decision_of(switch, answer)


async def test_promote_model_makes_the_challenger_decide_and_a_restart_keeps_it(settings: config.Settings) -> None:
    assert settings.policy.fraud_model is not None and settings.policy.fraud_model.challenger is not None
    challenger = settings.policy.fraud_model.challenger
    async with serve_settings(settings) as switch:
        # The live model promoted: nothing changes, nothing is journaled.
        same = await switch.stub.PromoteModel(promote(settings, LIVE.version))
        assert (same.live_model, same.challenger_model) == (LIVE.version, challenger.version)
        assert await switch.running.journal.promoted_model(settings.policy.version) is None

        promoted = await switch.stub.PromoteModel(promote(settings, challenger.version))
        assert promoted.policy_version == settings.policy.version
        assert (promoted.live_model, promoted.challenger_model) == (challenger.version, LIVE.version)
        decided = await decided_by(switch, "59")  # the +12 challenger decides now, with its own thresholds
        assert decided["model"] == challenger.version and decided["policy"] == settings.policy.version
        assert decided["challenger"]["model"] == LIVE.version  # the old live model, in shadow
        assert switch.running.trail is not None
        await switch.running.trail.flush()
        events = [row for row in (await switch.running.journal.read_audit()).events if row[1] == "model_promotion"]
        assert [event[3:6] for event in events] == [
            ("allowed", f"policy {settings.policy.version} model {LIVE.version}", "reason: review RSK-12"),
            ("allowed", f"policy {settings.policy.version} model {challenger.version}", "reason: review RSK-12"),
        ]
        metrics = switch.running.metrics.render()
        assert 'switch_policy_reloads_total{outcome="swapped"} 1' in metrics

    async with serve_settings(settings) as switch:  # a restart: the same journal
        decided = await decided_by(switch, "59")
        assert decided["model"] == challenger.version and decided["challenger"]["model"] == LIVE.version
        # Promoting the bundle's own model back swaps the two again.
        back = await switch.stub.PromoteModel(promote(settings, LIVE.version))
        assert (back.live_model, back.challenger_model) == (LIVE.version, challenger.version)
        decided = await decided_by(switch, "00", MASTERCARD)  # a card of no history: VISA's declines count
        assert decided["model"] == LIVE.version and decided["challenger"]["model"] == challenger.version
        assert await switch.running.journal.promoted_model(settings.policy.version) == LIVE.version


async def test_a_promotion_the_policy_in_force_does_not_allow_changes_nothing(settings: config.Settings) -> None:
    refused = grpc.StatusCode.FAILED_PRECONDITION
    async with serve_settings(settings) as switch:
        seen = await expect(switch.stub.PromoteModel(promote(settings, LIVE.version, policy="0" * 16)), refused)
        assert seen.details == f"policy_version: the policy in force is {settings.policy.version}"
        seen = await expect(switch.stub.PromoteModel(promote(settings, "f" * 16)), refused)
        assert seen.details.startswith(f"model_version: the policy in force has live model {LIVE.version} and")
        assert await switch.running.journal.promoted_model(settings.policy.version) is None
        assert (await decided_by(switch, "00"))["model"] == LIVE.version

        invalid = grpc.StatusCode.INVALID_ARGUMENT
        request = promote(settings, LIVE.version)
        for name, value, message in [
            ("policy_version", "", "is required"),
            ("model_version", "a" * 65, "must be at most 64 characters"),
            ("model_version", VISA, "must not contain a card number"),
            ("reason", "", "is required"),
            ("reason", "r" * 201, "must be at most 200 characters"),
        ]:
            bad = pb.PromoteModelRequest()
            bad.CopyFrom(request)
            setattr(bad, name, value)
            seen = await expect(switch.stub.PromoteModel(bad), invalid)
            assert seen.violations == {name: message}, seen.violations
            assert VISA not in seen.details


async def test_a_switch_without_a_policy_bundle_refuses_promotion(store_set: str, tmp_path: Path) -> None:
    raw: dict[str, Any] = store_settings(store_set, tmp_path)
    raw.setdefault("server", {})["port"] = 0
    raw.setdefault("security", {}).update(CALLERS)
    raw["fraud_model"] = {}  # the main file's own table: no bundle, no version
    settings = config.from_mapping(raw)
    try:
        async with serve_settings(settings) as switch:
            request = pb.PromoteModelRequest(policy_version="any", model_version=LIVE.version, reason="try")
            seen = await expect(switch.stub.PromoteModel(request), grpc.StatusCode.FAILED_PRECONDITION)
            assert seen.details == "promotion needs a [policy] bundle"
    finally:
        await drop_production_state(settings)


async def test_the_promoting_worker_tells_the_others(settings: config.Settings) -> None:
    """spread (SIGHUP to the supervisor under `serve --workers N`) is called once the
    promotion is journaled and applied here; not for a promotion that changes nothing."""
    assert settings.policy.fraud_model is not None and settings.policy.fraud_model.challenger is not None
    challenger = settings.policy.fraud_model.challenger
    told: list[str] = []
    running = await server.build(settings, spread=lambda: told.append("others told"))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = switch_pb2_grpc.SwitchStub(channel)
            await stub.PromoteModel(promote(settings, LIVE.version))
            assert told == []
            await stub.PromoteModel(promote(settings, challenger.version))
            assert len(told) == 1
            await stub.PromoteModel(promote(settings, challenger.version))  # live already
            assert len(told) == 1
    finally:
        await running.stop(1.0)
