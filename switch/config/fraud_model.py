"""The [fraud_model] table: the fraud model the risk step scores with, and its drift window.

    [fraud_model]
    path = "models/fraud-model.json"  # default: the model shipped with the switch
    decline = 0.2                     # a score this high declines 59 (default: the model's own)
    alert = 0.01                      # ... this high passes with an alert (default: the model's own)
    drift_window = 10000              # scored payments the PSI is measured over, per worker

    [fraud_model.challenger]          # optional: a second model scored in shadow
    path = "models/fraud-model-next.json"
    decline = 0.3                     # its own thresholds, for comparison only
    alert = 0.02

The model file is read and checked when the switch starts: one that cannot be read, or
whose content does not hash to its version, refuses the start, naming the field. A
challenger never decides: it is scored beside the live model on the same features, and
the two models' outcomes are compared (switch.risk.assess); promoting it is a bundle
whose path is the challenger's, reloaded, or PromoteModel, which swaps the two models'
roles in every worker and journals it, so a restart keeps it (switch.flow.promotion).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from switch.config.checks import ConfigError, no_unknown_keys, unit_score
from switch.risk.model.model import SHIPPED, FraudModel, Thresholds, load

_KEYS = frozenset({"path", "decline", "alert", "drift_window", "challenger"})
_CHALLENGER_KEYS = frozenset({"path", "decline", "alert"})


@dataclass(frozen=True, slots=True)
class FraudModelSettings:
    model: FraudModel
    drift_window: int = 10_000
    challenger: FraudModel | None = None  # scored in shadow, never deciding


def parse_fraud_model(raw: Any) -> FraudModelSettings | None:
    """The [fraud_model] table, checked and its models loaded; None when there is none (no score)."""
    if raw is None:
        return None
    model = _model("fraud_model", raw, _KEYS, default_path=str(SHIPPED))
    window = raw.get("drift_window", 10_000)
    if isinstance(window, bool) or not isinstance(window, int) or window < 100:
        raise ConfigError("fraud_model.drift_window: must be an integer >= 100")
    challenger = None
    if "challenger" in raw:
        challenger = _model("fraud_model.challenger", raw["challenger"], _CHALLENGER_KEYS, default_path=None)
        if challenger.version == model.version:
            raise ConfigError("fraud_model.challenger.path: the challenger is the live model itself")
    return FraudModelSettings(model, window, challenger)


def _model(where: str, raw: Any, keys: frozenset[str], default_path: str | None) -> FraudModel:
    """The model of a table (its path, checked and loaded) with the table's thresholds."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a table")
    no_unknown_keys(where, raw, keys)
    path = raw.get("path", default_path)
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{where}.path: must be the path of a model file")
    try:
        model = load(Path(path))
    except OSError as exc:
        raise ConfigError(f"{where}.path: cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{where}.path: {path} is not a valid model: {exc}") from None
    decline = unit_score(f"{where}.decline", raw.get("decline", model.thresholds.decline))
    alert = unit_score(f"{where}.alert", raw.get("alert", model.thresholds.alert))
    if alert > decline:
        raise ConfigError(f"{where}.alert: must not be above {where}.decline")
    return replace(model, thresholds=Thresholds(decline, alert))
