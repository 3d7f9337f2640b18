"""Drift: tripled amounts shift the amount's PSI and raise a change alarm; a fresh sample of
the same traffic does neither. Uses the shipped model."""

from __future__ import annotations

import dataclasses
import math

import pytest

from switch.risk.model import drift, model, score, synthetic
from switch.risk.model.features import DAY, feature_rows

BATCH = 256


def watch(seed: int, triple_from_day: int | None) -> tuple[drift.DriftMonitor, list[drift.Alarm]]:
    events, _ = synthetic.traffic(28, seed=seed)
    if triple_from_day is not None:
        change = synthetic.START + triple_from_day * DAY
        events = [dataclasses.replace(e, amount_usd=e.amount_usd * 3) if e.at >= change else e for e in events]
    start, _ = synthetic.periods(events)
    rows = feature_rows(events)[start:]
    fraud_model = model.load()
    scores = score.Scorer(fraud_model).score_many(rows)
    monitor = drift.DriftMonitor(fraud_model)
    alarms: list[drift.Alarm] = []
    for i in range(0, len(rows), BATCH):
        alarms += monitor.observe(rows[i : i + BATCH], scores[i : i + BATCH])
    return monitor, alarms


def test_unchanged_traffic_is_stable() -> None:
    monitor, alarms = watch(seed=99, triple_from_day=None)
    assert alarms == []
    assert max(monitor.psi().values()) < 0.1, monitor.psi()


def test_tripled_amounts_shift_the_amount_and_raise_an_alarm() -> None:
    monitor, alarms = watch(seed=99, triple_from_day=16)
    assert monitor.psi()["amount_log"] > 0.25
    assert {a.signal for a in alarms} & {drift.SCORE_MEAN, drift.DECLINE_RATE}
    # The first alarm is the change itself, upwards; a detector starts afresh after an
    # alarm, and may later see the new level settle.
    assert alarms[0].direction == "up"


def test_the_window_forgets_what_left_it() -> None:
    fraud_model = model.load()
    monitor = drift.DriftMonitor(fraud_model, window=100)
    edges = fraud_model.reference["amount_log"].edges
    high = [[edges[-1] + 5.0] + [0.0] * (len(fraud_model.features) - 1)] * 100
    monitor.observe(high, [0.0] * 100)
    assert monitor.psi()["amount_log"] > 1
    low = [[edges[0] - 1.0] + [0.0] * (len(fraud_model.features) - 1)] * 100
    monitor.observe(low, [0.0] * 100)
    first, *rest = (max(p, drift.PSI_EPSILON) for p in fraud_model.reference["amount_log"].proportions)
    expected = (1 - first) * math.log(1 / first)
    expected += sum((drift.PSI_EPSILON - p) * math.log(drift.PSI_EPSILON / p) for p in rest)
    assert monitor.psi()["amount_log"] == pytest.approx(expected)


def test_page_hinkley_finds_a_step_and_ignores_noise() -> None:
    detector = drift.PageHinkley(delta=0.01, threshold=5.0, min_items=100)
    assert detector.update_many([0.1, 0.0] * 500) == []
    assert "up" in detector.update_many([0.5] * 200)
    down = drift.PageHinkley(delta=0.01, threshold=5.0, min_items=100)
    assert "down" in down.update_many([0.5] * 300 + [0.1] * 300)
    assert drift.DriftMonitor(model.load()).psi()["score"] == 0.0
