"""Labelled examples from the journal: each authorization reported with ReportFraud, with
the features it was scored on (its journaled decision keeps them), for training.

A decision without features (the payment was not scored), or with another number of
them (scored by a model of another feature set), cannot be learned from: it is skipped
and counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import orjson

from switch.risk.model.features import FEATURES

Labelled = tuple[list[float], bool]


def labelled_rows(decisions: Sequence[tuple[str, bool]]) -> tuple[list[Labelled], int]:
    """(the usable examples, how many were skipped) from (decision JSON, fraud) pairs."""
    rows: list[Labelled] = []
    skipped = 0
    for decision, fraud in decisions:
        try:
            features = orjson.loads(decision).get("features") if decision else None
        except (orjson.JSONDecodeError, AttributeError):
            features = None
        if (
            not isinstance(features, list)
            or len(features) != len(FEATURES)
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in features)
        ):
            skipped += 1
            continue
        rows.append(([float(v) for v in features], fraud))
    return rows, skipped
