"""The risk step's judgement of each payment from its parties' activity: the fraud score
and the AML rules, once per batch.

A score at or above the model's decline threshold declines the payment (59, suspected
fraud); at or above its alert threshold, the payment passes with an alert. AML rules
only ever raise alerts. Every scored payment's decision names the model's version
and its score, so the journal says what decided it. The drift monitor sees every
scored batch: its PSI per feature and score is exported, and its change detectors
raise alarms (logged and counted; not tied to one payment). It sees a sample of one in
DRIFT_SAMPLE payments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from switch.risk.activity import Activity
from switch.risk.aml.rules import AmlRules
from switch.risk.model.drift import Alarm, DriftMonitor
from switch.risk.model.features import model_row
from switch.risk.model.model import FraudModel
from switch.risk.model.score import Scorer, rounded_many

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


@dataclass(slots=True)  # built per authorization, so not frozen: see switch.domain.models
class Scored:
    """What a payment is judged on: its parties' activity before it, and the request's facts."""

    activity: Activity
    amount_usd: float
    cross_border: bool
    card: bool


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
    ) -> None:
        self.model = model
        self.aml = aml
        self.drift = drift
        self._scorer = Scorer(model) if model is not None else None
        self._sample = drift_sample
        self._offset = 0  # where the next batch's sample starts, so every position gets its turn

    def judge(self, payments: Sequence[Scored]) -> tuple[list[Judged], list[Alarm]]:
        """Each payment's judgement, in order, and the drift alarms this batch raised."""
        scores: list[float] | None = None
        rows: list[list[float]] = []
        journaled: list[list[float]] = []
        alarms: list[Alarm] = []
        model, scorer = self.model, self._scorer
        if model is not None and scorer is not None:
            rows = [model_row(p.activity, p.amount_usd, p.cross_border, p.card) for p in payments]
            scores = scorer.score_many(rows)
            journaled = rounded_many(rows)
            if self.drift is not None:
                start, step = self._offset, self._sample
                alarms = self.drift.observe(rows[start::step], scores[start::step])
                self._offset = (start - len(rows)) % step
        aml = self.aml.evaluate([(p.activity, p.amount_usd) for p in payments]) if self.aml is not None else None
        judged = []
        for index in range(len(payments)):
            alerts = aml[index] if aml is not None else _NO_ALERTS
            if scores is None:
                judged.append(Judged(None, False, alerts))
                continue
            score = scores[index]
            assert model is not None
            declines = score >= model.thresholds.decline
            if declines or score >= model.thresholds.alert:
                alerts = (FRAUD_SCORE, *alerts)
            judged.append(Judged(score, declines, alerts, journaled[index]))
        return judged, alarms
