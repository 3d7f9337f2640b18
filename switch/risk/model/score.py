"""Fraud scores for a batch of feature rows, compiled when the extensions are built.

Scorer is switch.risk.model._score.Scorer when it is importable and SWITCH_NO_EXTENSIONS
is not set, else PureScorer, its plain-Python twin. The two give identical floats: the
linear term is summed in one order (intercept, then each weight x value in feature
order, no fused multiply-add), and the sigmoid is one formula on libm's exp that never
overflows: for z >= 0, 1 / (1 + exp(-z)); below, exp(z) / (1 + exp(z)).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol

from switch import native
from switch.risk.model.model import FraudModel


class BatchScorer(Protocol):
    def score_many(self, rows: Sequence[Sequence[float]]) -> list[float]: ...


def sigmoid(z: float) -> float:
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)  # z < 0 or NaN, checked by the caller
    return e / (1.0 + e)


class PureScorer:
    """The model's probability of fraud for each row of feature values."""

    def __init__(self, model: FraudModel) -> None:
        self._weights = tuple(float(w) for w in model.coefficients)
        self._intercept = float(model.intercept)

    def score_many(self, rows: Sequence[Sequence[float]]) -> list[float]:
        weights, size = self._weights, len(self._weights)
        scores: list[float] = []
        for index, row in enumerate(rows):
            if len(row) != size:
                raise ValueError(f"row {index} has {len(row)} values, the model {size}")
            z = self._intercept
            for weight, value in zip(weights, row, strict=True):
                z = z + weight * value
            if math.isnan(z):
                raise ValueError(f"row {index}: the linear term is not a number")
            scores.append(sigmoid(z))
        return scores


_compiled = native.load("switch.risk.model._score")
Scorer: Callable[[FraudModel], BatchScorer] = PureScorer if _compiled is None else _compiled.Scorer
