"""Trains the fraud model offline and writes its JSON file (development only).

numpy and scikit-learn are imported inside the functions that need them: they are
development dependencies, and nothing the switch runs imports this module.

The recipe: synthetic traffic (switch.risk.model.synthetic) through the reference feature
calculator, split by time; a logistic regression on standardised features, plus any
labelled rows reported later (outcomes from the journal), with the standardisation
folded into the exported coefficients. Everything measured afterwards (AUC, thresholds,
histograms) uses the exported numbers through the same scorer the switch runs, so the
file describes the model as it will behave. Same arguments, same bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switch.risk.model import synthetic
from switch.risk.model.features import FEATURES, feature_rows
from switch.risk.model.model import FORMAT, SCORE, SHIPPED, FraudModel, Thresholds, content_version
from switch.risk.model.score import PureScorer

DEFAULT_SEED = 7
DEFAULT_DAYS = 28
DEFAULT_HOLDERS = 2000
HELD_OUT_FRACTION = 0.3
DECLINE_PRECISION = 0.9  # the decline threshold is the lowest score with this precision held out
ALERT_PRECISION = 0.5
BINS = 10
DIGITS = 12  # significant digits kept: the file stays the same across BLAS builds' last bits


@dataclass(frozen=True)
class Outcome:
    precision: float
    recall: float


@dataclass(frozen=True)
class Trained:
    data: dict[str, Any]  # the file's content
    model: FraudModel
    events: int
    fraud_share: float
    held_out_auc: float
    at_decline: Outcome
    at_alert: Outcome

    def text(self) -> str:
        return json.dumps(self.data, sort_keys=True, indent=1, allow_nan=False) + "\n"


def train(
    seed: int = DEFAULT_SEED,
    days: int = DEFAULT_DAYS,
    holders: int = DEFAULT_HOLDERS,
    labelled: Sequence[tuple[Sequence[float], bool]] = (),
) -> Trained:
    """A model trained on `days` of synthetic traffic from seed, plus the labelled rows."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped, unused-ignore]
    from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped, unused-ignore]

    events, labels = synthetic.traffic(days, seed, holders)
    rows = feature_rows(events)
    frauds = [label is not None for label in labels]
    start, cut = synthetic.periods(events, HELD_OUT_FRACTION)
    extra_rows, extra_frauds = _checked(labelled)
    x_train = np.array(rows[start:cut] + extra_rows, dtype=np.float64)
    y_train = np.array(frauds[start:cut] + extra_frauds, dtype=bool)
    means, scales = x_train.mean(axis=0), x_train.std(axis=0)
    scales[scales == 0] = 1.0  # a constant feature carries no weight
    regression = LogisticRegression(C=1.0, max_iter=2000)
    regression.fit((x_train - means) / scales, y_train)
    weights = regression.coef_[0] / scales
    intercept = float(regression.intercept_[0] - np.sum(weights * means))
    coefficients = [_rounded(float(w)) for w in weights]
    draft = PureScorer(_draft(coefficients, _rounded(intercept)))
    held_scores = np.array(draft.score_many(rows[cut:]))
    held_frauds = np.array(frauds[cut:], dtype=bool)
    decline = _rounded(_threshold(held_scores, held_frauds, DECLINE_PRECISION))
    alert = min(_rounded(_threshold(held_scores, held_frauds, ALERT_PRECISION)), decline)
    train_scores = draft.score_many(x_train.tolist())
    reference = {name: _histogram(np, x_train[:, i]) for i, name in enumerate(FEATURES)}
    reference[SCORE] = _histogram(np, np.array(train_scores))
    data: dict[str, Any] = {
        "format": FORMAT,
        "features": list(FEATURES),
        "coefficients": coefficients,
        "intercept": _rounded(intercept),
        "thresholds": {"decline": decline, "alert": alert},
        "reference": reference,
    }
    data["version"] = content_version(data)
    return Trained(
        data=data,
        model=FraudModel.from_dict(data),
        events=len(events),
        fraud_share=sum(frauds) / len(frauds),
        held_out_auc=float(roc_auc_score(held_frauds, held_scores)),
        at_decline=_outcome(held_scores, held_frauds, decline),
        at_alert=_outcome(held_scores, held_frauds, alert),
    )


def write(trained: Trained, path: Path = SHIPPED) -> None:
    Path(path).write_text(trained.text(), encoding="utf-8")


def _checked(labelled: Sequence[tuple[Sequence[float], bool]]) -> tuple[list[list[float]], list[bool]]:
    rows, frauds = [], []
    for index, (row, fraud) in enumerate(labelled):
        values = [float(v) for v in row]
        if len(values) != len(FEATURES) or not all(math.isfinite(v) for v in values):
            raise ValueError(f"labelled row {index}: needs {len(FEATURES)} finite values")
        rows.append(values)
        frauds.append(bool(fraud))
    return rows, frauds


def _rounded(value: float) -> float:
    return float(f"{value:.{DIGITS}g}")


def _draft(coefficients: list[float], intercept: float) -> FraudModel:
    # Only the scorer reads this model: thresholds and histograms do not exist yet.
    return FraudModel("", FEATURES, tuple(coefficients), intercept, Thresholds(1.0, 1.0), {})


def _threshold(scores: Any, frauds: Any, precision: float) -> float:
    """The lowest score s such that flagging score >= s has at least `precision` held out
    (the highest recall at that precision); the top score when none reaches it."""
    from sklearn.metrics import precision_recall_curve

    precisions, _, thresholds = precision_recall_curve(frauds, scores)
    for p, threshold in zip(precisions[:-1], thresholds, strict=True):
        if p >= precision:
            return float(threshold)
    return float(thresholds[-1])


def _outcome(scores: Any, frauds: Any, threshold: float) -> Outcome:
    flagged = scores >= threshold
    caught = int((flagged & frauds).sum())
    return Outcome(precision=caught / max(1, int(flagged.sum())), recall=caught / max(1, int(frauds.sum())))


def _histogram(np: Any, values: Any) -> dict[str, list[float]]:
    """Deciles as edges (repeats dropped, so a 0/1 feature gets one edge), and the share of
    values per bin, a value going to the first bin whose edge is >= it."""
    quantiles = np.quantile(values, [i / BINS for i in range(1, BINS)])
    edges = sorted({_rounded(float(q)) for q in quantiles})
    counts = np.bincount(np.searchsorted(np.array(edges), values, side="left"), minlength=len(edges) + 1)
    return {"edges": edges, "proportions": [_rounded(float(c) / len(values)) for c in counts]}
