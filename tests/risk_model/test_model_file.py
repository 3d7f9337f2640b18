"""Loading the model file: the shipped one loads; each malformed field is refused by name."""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from switch.risk.model import model
from switch.risk.model.features import FEATURES


@pytest.fixture(scope="module")
def shipped() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(model.SHIPPED.read_text())
    return data


def test_the_shipped_model_loads() -> None:
    loaded = model.load()
    assert loaded.features == FEATURES
    assert len(loaded.coefficients) == len(FEATURES)
    assert 0 < loaded.thresholds.alert <= loaded.thresholds.decline < 1
    assert loaded.version == model.content_version(json.loads(model.SHIPPED.read_text()))


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def apply(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = data
        for key in parents:
            target = target[key]
        target[last] = value

    return apply


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.pop(name) and None


MALFORMED = [
    ("format", _set("format", 2)),
    ("format", _set("format", True)),
    ("coefficients", _set("coefficients", [1.0, 2.0])),
    ("coefficients[3]", lambda d: d["coefficients"].__setitem__(3, math.inf)),
    ("intercept", _set("intercept", math.nan)),
    ("intercept", _set("intercept", "1.0")),
    ("features", _set("features", ["a", "a"])),
    ("thresholds", _set("thresholds.alert", 0.99)),
    ("thresholds.decline", _set("thresholds.decline", None)),
    ("reference", lambda d: d["reference"].pop("card") and None),
    ("reference.amount_log.proportions", _set("reference.amount_log.proportions", [1.0])),
    ("reference.amount_log.edges", lambda d: d["reference"]["amount_log"]["edges"].reverse()),
    ("reference.score.proportions", lambda d: d["reference"]["score"]["proportions"].__setitem__(0, 5.0)),
    ("version", lambda d: d["coefficients"].__setitem__(0, d["coefficients"][0] + 1e-9)),
    *[
        (name, _drop(name))
        for name in ("format", "version", "features", "coefficients", "intercept", "thresholds", "reference")
    ],
]


@pytest.mark.parametrize(("field", "damage"), MALFORMED)
def test_a_malformed_field_is_refused_by_name(
    shipped: dict[str, Any], field: str, damage: Callable[[dict[str, Any]], None]
) -> None:
    data = copy.deepcopy(shipped)
    damage(data)
    with pytest.raises(ValueError, match=rf"^{re.escape(field)}:"):
        model.FraudModel.from_dict(data)


def test_a_model_for_other_features_is_refused(shipped: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(shipped))
    with pytest.raises(ValueError, match=r"^features:"):
        model.load(path, features=(*FEATURES[1:], FEATURES[0]))
    path.write_text("{nope")
    with pytest.raises(ValueError, match="not JSON"):
        model.load(path)


def test_the_runtime_modules_need_neither_numpy_nor_scikit_learn() -> None:
    code = (
        "import sys; import switch.risk.model.drift, switch.risk.model.score, switch.risk.model.synthetic; "
        "print(sorted(m for m in ('numpy', 'sklearn') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
