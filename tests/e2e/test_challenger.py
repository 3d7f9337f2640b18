"""A challenger fraud model scored in shadow beside the live one: it decides nothing, its
score is journaled beside the live one and the two models' outcomes are counted side by
side; promoting it is a bundle naming it as the live model, reloaded without a restart."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from switch import config
from switch.config import ConfigError
from switch.config.policy import load_policy
from switch.risk.assess import outcome
from switch.risk.model.model import SHIPPED, content_version, load
from tests.conftest import drop_production_state, store_settings
from tests.e2e.support import VISA, card_request, decision_of, serve_settings

CALLERS = {"callers": [{"identity": "*", "roles": ["authorize", "read", "compliance"], "merchants": ["*"]}]}
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


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
async def settings(store_set: str, tmp_path: Path) -> AsyncIterator[config.Settings]:
    raw: dict[str, Any] = store_settings(store_set, tmp_path)
    raw.setdefault("server", {})["port"] = 0
    raw.setdefault("security", {}).update(CALLERS)
    raw["policy"] = {"file": str(write(tmp_path / "policy.toml", bundle(None, a_challenger(tmp_path, 12.0))))}
    kept = config.from_mapping(raw)
    yield kept
    await drop_production_state(kept)


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
        assert switch.running.reload_policy is not None and switch.running.reload_policy()
        declined = await switch.stub.Authorize(card_request(pan=VISA, amount=2_500))
        assert declined.response_code == "59", declined
        decided = await decision_of(switch, declined)
        assert decided["model"] == challenger.version and "challenger" not in decided


def challenger_path(settings: config.Settings) -> Path:
    text = Path(settings.policy_file).read_text()
    return Path(text.split('[fraud_model.challenger]\npath = "', 1)[1].split('"', 1)[0])
