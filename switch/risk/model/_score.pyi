"""The compiled fraud scorer (_score.pyx); its plain-Python twin is switch.risk.model.score.PureScorer."""

from collections.abc import Sequence

from switch.risk.model.model import FraudModel

def sigmoid(z: float) -> float: ...

class Scorer:
    def __init__(self, model: FraudModel) -> None: ...
    def score_many(self, rows: Sequence[Sequence[float]]) -> list[float]: ...
