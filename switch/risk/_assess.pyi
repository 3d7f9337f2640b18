"""The compiled risk arithmetic (_assess.pyx); its plain-Python twin is switch.risk.assess.PureKernel."""

from collections.abc import Sequence

from switch.risk.aml.rules import AmlRules
from switch.risk.assess import Scored
from switch.risk.model.model import FraudModel

class Kernel:
    def __init__(self, model: FraudModel | None, aml: AmlRules | None) -> None: ...
    def judge_many(self, payments: Sequence[Scored]) -> tuple[list[list[float]], list[float], list[int]]: ...
