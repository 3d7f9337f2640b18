"""The [fraud_model] table: the fraud model the risk step scores with, and its drift window.

    [fraud_model]
    path = "models/fraud-model.json"  # default: the model shipped with the switch
    decline = 0.2                     # a score this high declines 59 (default: the model's own)
    alert = 0.01                      # ... this high passes with an alert (default: the model's own)
    drift_window = 10000              # scored payments the PSI is measured over, per worker

The model file is read and checked when the switch starts: one that cannot be read, or
whose content does not hash to its version, refuses the start, naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from switch.config.checks import ConfigError, no_unknown_keys, unit_score
from switch.risk.model.model import SHIPPED, FraudModel, Thresholds, load

_KEYS = frozenset({"path", "decline", "alert", "drift_window"})


@dataclass(frozen=True, slots=True)
class FraudModelSettings:
    model: FraudModel
    drift_window: int = 10_000


def parse_fraud_model(raw: Any) -> FraudModelSettings | None:
    """The [fraud_model] table, checked and its model loaded; None when there is none (no score)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError("fraud_model: must be a table")
    no_unknown_keys("fraud_model", raw, _KEYS)
    path = raw.get("path", str(SHIPPED))
    if not isinstance(path, str) or not path:
        raise ConfigError("fraud_model.path: must be the path of a model file")
    try:
        model = load(Path(path))
    except OSError as exc:
        raise ConfigError(f"fraud_model.path: cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"fraud_model.path: {path} is not a valid model: {exc}") from None
    decline = unit_score("fraud_model.decline", raw.get("decline", model.thresholds.decline))
    alert = unit_score("fraud_model.alert", raw.get("alert", model.thresholds.alert))
    if alert > decline:
        raise ConfigError("fraud_model.alert: must not be above fraud_model.decline")
    window = raw.get("drift_window", 10_000)
    if isinstance(window, bool) or not isinstance(window, int) or window < 100:
        raise ConfigError("fraud_model.drift_window: must be an integer >= 100")
    return FraudModelSettings(replace(model, thresholds=Thresholds(decline, alert)), window)
