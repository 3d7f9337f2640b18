"""The risk step's judgement of each payment from its parties' activity: the fraud score
and the AML rules, once per batch.

A score at or above the model's decline threshold declines the payment (59, suspected
fraud); at or above its alert threshold, the payment passes with an alert. AML rules
only ever raise alerts. Every scored payment's decision names the model's version
and its score, so the journal says what decided it. The arithmetic is one pass over
the batch (a Kernel: compiled, or its pure twin). The drift monitor sees every scored
batch, a sample of one in DRIFT_SAMPLE payments, as journaled: its PSI per feature and
score is exported, and its change detectors raise alarms (logged and counted; not tied
to one payment). A challenger model, when there is one, is scored in shadow and
compared, never acted on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from switch import native
from switch.risk.activity import Activity, parse_activity
from switch.risk.aml.rules import AmlRules
from switch.risk.model.drift import Alarm, DriftMonitor
from switch.risk.model.features import model_row
from switch.risk.model.model import FraudModel
from switch.risk.model.score import PureScorer

FRAUD_SCORE = "fraud_score"  # the alert of a score between the alert and the decline thresholds
_NO_ALERTS: tuple[str, ...] = ()


@dataclass(slots=True)  # built per authorization, so not frozen: see switch.domain.models
class Judged:
    """One payment's judgement: its score (None: no model), whether it declines, its alerts,
    and the features it was scored on, to the journal's precision (journaled: a payment
    reported as fraud later becomes a labelled example for training)."""

    score: float | None
    declines: bool
    alerts: tuple[str, ...]
    features: list[float] | None = None
    challenger: float | None = None  # the challenger's score, in shadow: it decides nothing


@dataclass(slots=True)  # built per authorization, so not frozen: see switch.domain.models
class Scored:
    """What a payment is judged on: its parties' activity before it, as the claim answered it
    (the payer's, and its destination account's or None), and the request's facts."""

    payer: bytes
    destination: bytes | None
    amount_usd: float
    cross_border: bool
    card: bool

    @property
    def activity(self) -> Activity:
        return parse_activity(self.payer, self.destination)


JOURNAL_PLACES = 6  # decimals of a journaled feature: what the decision keeps of it
_SCALE = 10.0**JOURNAL_PLACES  # the compiled Kernel's 1e6


def pure_rounded_many(rows: Sequence[Sequence[float]]) -> list[list[float]]:
    """Each row's values rounded to JOURNAL_PLACES decimals, half to even on v * 1e6; a
    product that is not finite is divided back as it is (the compiled Kernel's rounding)."""
    return [[(round(v) if math.isfinite(v) else v) / _SCALE for v in [x * _SCALE for x in row]] for row in rows]


class Kernel(Protocol):
    def judge_many(self, payments: Sequence[Scored]) -> tuple[list[list[float]], list[float], list[int]]: ...


class PureKernel:
    """The risk step's arithmetic for a batch: each payment's model row, to the journal's
    precision, its score and its AML mask (empty lists for what it does not judge). The
    compiled twin (switch.risk._assess.Kernel) reads the answers' bytes directly."""

    def __init__(self, model: FraudModel | None, aml: AmlRules | None) -> None:
        self._scorer = PureScorer(model) if model is not None else None
        self._aml = aml

    def judge_many(self, payments: Sequence[Scored]) -> tuple[list[list[float]], list[float], list[int]]:
        activities = [payment.activity for payment in payments]
        rows: list[list[float]] = []
        scores: list[float] = []
        if self._scorer is not None:
            rows = [
                model_row(activity, payment.amount_usd, payment.cross_border, payment.card)
                for activity, payment in zip(activities, payments, strict=True)
            ]
            scores = self._scorer.score_many(rows)
            rows = pure_rounded_many(rows)
        masks: list[int] = []
        if self._aml is not None:
            masks = self._aml.masks([(a, p.amount_usd) for a, p in zip(activities, payments, strict=True)])
        return rows, scores, masks


_compiled = native.load("switch.risk._assess")
make_kernel: Callable[[FraudModel | None, AmlRules | None], Kernel] = (
    PureKernel if _compiled is None else _compiled.Kernel
)

PASS, ALERT, DECLINE = "pass", "alert", "decline"  # what a score does at a model's thresholds


def outcome(score: float, model: FraudModel) -> str:
    """What score does at model's thresholds: DECLINE, ALERT or PASS."""
    if score >= model.thresholds.decline:
        return DECLINE
    return ALERT if score >= model.thresholds.alert else PASS


# The drift monitor sees one scored payment in this many: PSI and the change detectors
# read a sample as well as the whole, at a fraction of the cost per payment.
DRIFT_SAMPLE = 8


class Assessor:
    def __init__(
        self,
        model: FraudModel | None,
        aml: AmlRules | None,
        drift: DriftMonitor | None = None,
        drift_sample: int = DRIFT_SAMPLE,
        challenger: FraudModel | None = None,
    ) -> None:
        """challenger: a second model, scored in shadow beside model (which it needs) on the
        same features; its scores are compared with the live ones, never acted on."""
        self.model = model
        self.aml = aml
        self.drift = drift
        self.challenger = challenger if model is not None else None
        self._kernel = make_kernel(model, aml)
        self._shadow = make_kernel(self.challenger, None) if self.challenger is not None else None
        self._sample = drift_sample
        self._offset = 0  # where the next batch's sample starts, so every position gets its turn

    def judge(self, payments: Sequence[Scored]) -> tuple[list[Judged], list[Alarm]]:
        """Each payment's judgement, in order, and the drift alarms this batch raised."""
        rows, scores, masks = self._kernel.judge_many(payments)
        shadow = self._shadow.judge_many(payments)[1] if self._shadow is not None else None
        alarms: list[Alarm] = []
        model, aml = self.model, self.aml
        if model is not None and self.drift is not None:
            start, step = self._offset, self._sample
            alarms = self.drift.observe(rows[start::step], scores[start::step])
            self._offset = (start - len(rows)) % step
        judged = []
        for index in range(len(payments)):
            alerts = aml.alerts(masks[index]) if aml is not None else _NO_ALERTS
            if model is None:
                judged.append(Judged(None, False, alerts))
                continue
            score = scores[index]
            acts = outcome(score, model)
            if acts != PASS:
                alerts = (FRAUD_SCORE, *alerts)
            challenger = shadow[index] if shadow is not None else None
            judged.append(Judged(score, acts == DECLINE, alerts, rows[index], challenger))
        return judged, alarms

    def compared(self, judged: Sequence[Judged]) -> dict[tuple[str, str], int]:
        """How many payments each pair of outcomes (the live model's, the challenger's) took:
        the two models' decisions side by side. Empty without a challenger."""
        model, challenger = self.model, self.challenger
        pairs: dict[tuple[str, str], int] = {}
        if model is None or challenger is None:
            return pairs
        for judgement in judged:
            if judgement.score is not None and judgement.challenger is not None:
                pair = (outcome(judgement.score, model), outcome(judgement.challenger, challenger))
                pairs[pair] = pairs.get(pair, 0) + 1
        return pairs
