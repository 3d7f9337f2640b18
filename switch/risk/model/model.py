"""The trained fraud model as the switch loads it: a validated, frozen view of its JSON file.

The file (written by switch.risk.model.train) holds:
- format: FORMAT; a file of another format is refused, never guessed at;
- version: the first 16 hex digits of the sha256 of the canonical JSON of every other
  field (canonical_json), so the version names the content and an edit shows;
- features: the feature names, in the order the coefficients use;
- coefficients, intercept: the logistic regression on raw feature values (the
  standardisation is folded in), score = 1 / (1 + exp(-(intercept + sum(w x))));
- thresholds: alert <= decline, on the score;
- reference: per feature and for "score", a histogram of the training data: edges
  (strictly increasing) split the line into len(edges) + 1 bins, a value v falling in
  the first bin whose edge is >= v, and proportions per bin summing to 1.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from switch.risk.model.features import FEATURES

FORMAT = 1
SCORE = "score"  # the reference histogram of the score, beside the features'
SHIPPED = Path(__file__).with_name("fraud-model.json")
_FIELDS = ("format", "version", "features", "coefficients", "intercept", "thresholds", "reference")


@dataclass(frozen=True, slots=True)
class Histogram:
    edges: tuple[float, ...]
    proportions: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Thresholds:
    decline: float
    alert: float


@dataclass(frozen=True, slots=True)
class FraudModel:
    version: str
    features: tuple[str, ...]
    coefficients: tuple[float, ...]
    intercept: float
    thresholds: Thresholds
    reference: Mapping[str, Histogram]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FraudModel:
        """The model in data (a parsed file); ValueError naming the first field that is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError("fraud model: the file must hold a JSON object")
        for name in _FIELDS:
            if name not in data:
                raise ValueError(f"{name}: missing")
        if data["format"] != FORMAT or isinstance(data["format"], bool):
            raise ValueError(f"format: {data['format']!r} is not a known format (this switch reads {FORMAT})")
        features = _names(data["features"])
        coefficients = _floats("coefficients", data["coefficients"], len(features))
        intercept = _float("intercept", data["intercept"])
        thresholds = _thresholds(data["thresholds"])
        reference = _reference(data["reference"], features)
        version = data["version"]
        expected = content_version(data)
        if version != expected:
            raise ValueError(f"version: {version!r} does not match the content ({expected})")
        return cls(version, features, coefficients, intercept, thresholds, reference)


def canonical_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def content_version(data: Mapping[str, Any]) -> str:
    """The version a model's content gets: every field but version itself, hashed."""
    content = {key: value for key, value in data.items() if key != "version"}
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()[:16]


def load(path: Path = SHIPPED, features: tuple[str, ...] = FEATURES) -> FraudModel:
    """The model in the file at path, refused unless it scores exactly `features`, in order."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"fraud model {path}: not JSON ({exc})") from exc
    model = FraudModel.from_dict(data)
    if model.features != features:
        raise ValueError(f"features: the model scores {list(model.features)}, the switch computes {list(features)}")
    return model


def _float(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{field}: {value!r} is not a finite number")
    return float(value)


def _floats(field: str, values: object, length: int | None = None) -> tuple[float, ...]:
    if not isinstance(values, list):
        raise ValueError(f"{field}: must be a list of numbers")
    if length is not None and len(values) != length:
        raise ValueError(f"{field}: {len(values)} values, expected {length}")
    return tuple(_float(f"{field}[{i}]", value) for i, value in enumerate(values))


def _names(values: object) -> tuple[str, ...]:
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise ValueError("features: must be a non-empty list of names")
    if len(set(values)) != len(values) or SCORE in values:
        raise ValueError(f"features: names must be distinct and not {SCORE!r}")
    return tuple(values)


def _thresholds(value: object) -> Thresholds:
    if not isinstance(value, Mapping) or set(value) != {"decline", "alert"}:
        raise ValueError("thresholds: must hold exactly decline and alert")
    decline = _float("thresholds.decline", value["decline"])
    alert = _float("thresholds.alert", value["alert"])
    if not 0 <= alert <= decline <= 1:
        raise ValueError(f"thresholds: need 0 <= alert <= decline <= 1, not alert {alert}, decline {decline}")
    return Thresholds(decline=decline, alert=alert)


def _reference(value: object, features: tuple[str, ...]) -> dict[str, Histogram]:
    if not isinstance(value, Mapping) or set(value) != {*features, SCORE}:
        raise ValueError(f"reference: must hold a histogram for each feature and for {SCORE!r}")
    return {name: _histogram(f"reference.{name}", value[name]) for name in (*features, SCORE)}


def _histogram(field: str, value: object) -> Histogram:
    if not isinstance(value, Mapping) or set(value) != {"edges", "proportions"}:
        raise ValueError(f"{field}: must hold exactly edges and proportions")
    edges = _floats(f"{field}.edges", value["edges"])
    if any(b <= a for a, b in pairwise(edges)):
        raise ValueError(f"{field}.edges: must be strictly increasing")
    proportions = _floats(f"{field}.proportions", value["proportions"], len(edges) + 1)
    if any(p < 0 for p in proportions) or abs(math.fsum(proportions) - 1) > 1e-6:
        raise ValueError(f"{field}.proportions: must be >= 0 and sum to 1")
    return Histogram(edges, proportions)
