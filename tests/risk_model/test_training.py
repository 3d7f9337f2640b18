"""Training (needs scikit-learn): the held-out AUC, a valid and reproducible file, and the
shipped file is exactly what the default command writes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

from switch.cli import risk as risk_cli
from switch.risk.model import model, train
from switch.risk.model.features import FEATURES


@pytest.fixture(scope="module")
def small() -> train.Trained:
    return train.train(seed=3, days=14, holders=800)


def test_held_out_auc_is_at_least_0_9(small: train.Trained) -> None:
    assert small.held_out_auc >= 0.9
    assert small.at_decline.precision >= 0.85
    assert 0.02 <= small.fraud_share <= 0.05


def test_the_file_validates_and_is_reproducible(small: train.Trained, tmp_path: Path) -> None:
    train.write(small, tmp_path / "m.json")
    loaded = model.load(tmp_path / "m.json")
    assert loaded == small.model
    assert train.train(seed=3, days=14, holders=800).text() == small.text()
    assert train.train(seed=4, days=14, holders=800).model.version != small.model.version


def test_labelled_rows_join_the_training(small: train.Trained) -> None:
    extra = [([0.0] * len(FEATURES), True)] * 50
    assert train.train(seed=3, days=14, holders=800, labelled=extra).model.version != small.model.version
    with pytest.raises(ValueError, match="labelled row 0"):
        train.train(seed=3, days=14, holders=800, labelled=[([1.0], False)])


def test_the_shipped_file_is_the_default_command_s_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fraud-model.json"
    assert risk_cli.main(["--out", str(out)]) == 0
    assert out.read_bytes() == model.SHIPPED.read_bytes()
    table = capsys.readouterr().out
    assert "held-out AUC" in table and json.loads(out.read_text())["version"] in table


def test_without_scikit_learn_the_command_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    assert risk_cli.main([]) == 2
    assert "pip install -e '.[dev]'" in capsys.readouterr().err
