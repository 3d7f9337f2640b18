"""Watching the model's inputs and output drift away from what it was trained on.

DriftMonitor keeps, for the last `window` scored items, which bin of the model's
reference histogram each feature and the score fell in (a ring buffer of bin indexes
and the counts per bin, so an item costs one bisect and two count updates per signal),
and gives the population stability index of each against its reference:

    PSI = sum over bins of (a - e) * ln(a / e)

with a the window's share of a bin and e the training share, both raised to at least
PSI_EPSILON so that an empty bin counts as rare, not as infinitely surprising. The usual
reading: under 0.1 stable, 0.1 to 0.25 moving, above 0.25 shifted.

Two Page-Hinkley detectors watch the score's mean and the decline rate (the share of
scores at or above the model's decline threshold) for a change in either direction; an
Alarm names the signal that moved.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

from switch.risk.model.model import SCORE, FraudModel

PSI_EPSILON = 1e-4
SCORE_MEAN = "score_mean"
DECLINE_RATE = "decline_rate"
# For signals averaging a few percent that swing with the hour of day and jump with fraud
# bursts (a card-testing run is a string of scores near 1): a wide delta and a high
# threshold let those pass, while a shift that lasts days is found within a day or two.
DETECTOR_DELTA = 0.01
DETECTOR_THRESHOLD = 100.0


@dataclass(frozen=True, slots=True)
class Alarm:
    signal: str  # SCORE_MEAN or DECLINE_RATE
    direction: str  # "up" or "down"


class PageHinkley:
    """The two-sided Page-Hinkley test for a change in the mean of a stream.

    m_T = sum over t <= T of (x_t - mean_t - delta) climbs when values run above their
    running mean by more than delta; a rise of more than `threshold` from its lowest
    point raises "up" (and the mirror image, "down"). delta is the change in mean that is
    tolerated as noise, threshold trades detection delay for false alarms (both in the
    signal's units; a shift d is found after about threshold / (d - delta) items), and
    nothing is raised before `min_items`, while the running mean settles. The detector
    starts afresh after an alarm, learning the new mean.
    """

    def __init__(self, delta: float, threshold: float, min_items: int = 3000) -> None:
        if delta < 0 or threshold <= 0 or min_items < 1:
            raise ValueError("PageHinkley needs delta >= 0, threshold > 0 and min_items >= 1")
        self.delta, self.threshold, self.min_items = delta, threshold, min_items
        self.reset()

    def reset(self) -> None:
        self.items = 0
        self.mean = 0.0
        self._up = self._up_low = 0.0
        self._down = self._down_high = 0.0

    def update_many(self, values: Sequence[float]) -> list[str]:
        """Feeds values in order; the direction of each change found (usually none)."""
        found: list[str] = []
        for x in values:
            self.items += 1
            self.mean += (x - self.mean) / self.items
            self._up += x - self.mean - self.delta
            self._up_low = min(self._up_low, self._up)
            self._down += x - self.mean + self.delta
            self._down_high = max(self._down_high, self._down)
            if self.items < self.min_items:
                continue
            if self._up - self._up_low > self.threshold:
                found.append("up")
                self.reset()
            elif self._down_high - self._down > self.threshold:
                found.append("down")
                self.reset()
        return found


class DriftMonitor:
    """PSI per feature and for the score over the last `window` items, and change alarms."""

    def __init__(
        self,
        model: FraudModel,
        window: int = 10_000,
        score_mean: PageHinkley | None = None,
        decline_rate: PageHinkley | None = None,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, not {window}")
        self.signals = (*model.features, SCORE)
        self._edges = [model.reference[name].edges for name in self.signals]
        self._expected = [model.reference[name].proportions for name in self.signals]
        self._counts = [[0] * len(p) for p in self._expected]
        self._ring: list[tuple[int, ...]] = []
        self._next = 0
        self._window = window
        self._decline = model.thresholds.decline
        self.detectors = {
            SCORE_MEAN: score_mean or PageHinkley(DETECTOR_DELTA, DETECTOR_THRESHOLD),
            DECLINE_RATE: decline_rate or PageHinkley(DETECTOR_DELTA, DETECTOR_THRESHOLD),
        }

    def observe(self, rows: Sequence[Sequence[float]], scores: Sequence[float]) -> list[Alarm]:
        """Adds a scored batch to the window; the alarms it raised (usually none)."""
        if len(rows) != len(scores):
            raise ValueError(f"{len(rows)} rows but {len(scores)} scores")
        width = len(self.signals) - 1
        edges, counts, ring, window = self._edges, self._counts, self._ring, self._window
        for row, score in zip(rows, scores, strict=True):
            if len(row) != width:
                raise ValueError(f"a row has {len(row)} values, the model {width}")
            bins = (*(bisect_left(e, v) for e, v in zip(edges, row, strict=False)), bisect_left(edges[-1], score))
            if len(ring) < window:
                ring.append(bins)
            else:
                for signal, old in enumerate(ring[self._next]):
                    counts[signal][old] -= 1
                ring[self._next] = bins
                self._next = (self._next + 1) % window
            for signal, new in enumerate(bins):
                counts[signal][new] += 1
        declines = [1.0 if score >= self._decline else 0.0 for score in scores]
        return [
            Alarm(name, direction)
            for name, values in ((SCORE_MEAN, scores), (DECLINE_RATE, declines))
            for direction in self.detectors[name].update_many(values)
        ]

    def psi(self) -> dict[str, float]:
        """PSI of each feature and of the score over the window (0.0 for an empty window)."""
        size = len(self._ring)
        if not size:
            return dict.fromkeys(self.signals, 0.0)
        return {
            name: _psi([c / size for c in counts], expected)
            for name, counts, expected in zip(self.signals, self._counts, self._expected, strict=True)
        }


def _psi(actual: Sequence[float], expected: Sequence[float]) -> float:
    total = 0.0
    for share, reference in zip(actual, expected, strict=True):
        a, e = max(share, PSI_EPSILON), max(reference, PSI_EPSILON)
        total += (a - e) * math.log(a / e)
    return total
