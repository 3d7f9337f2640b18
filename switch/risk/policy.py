"""The risk policy a worker applies: what one bundle (switch.config.policy) becomes, and
the one a pipeline reads at the start of each batch.

A reload builds a whole new RiskPolicy and swaps it in with one assignment: a batch uses
the policy it started with from its claim to its decisions, the next one the new policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from switch.risk.assess import Assessor
from switch.risk.holders import HolderCounters


@dataclass(frozen=True, slots=True)
class RiskPolicy:
    version: str  # the bundle's ("" for the main file's own tables); journaled with each decision
    # (a promotion swaps the bundle's models, not its version: each decision names its model)
    holders: HolderCounters | None  # KYC caps and activity, moved in the claim; None: neither
    assessor: Assessor | None  # the fraud score and AML rules; None: neither
    tiers: frozenset[str]  # the KYC tiers SetHolderTier may set

    @property
    def live_model(self) -> str:
        """The version of the fraud model that decides ("" without one)."""
        model = self.assessor.model if self.assessor is not None else None
        return model.version if model is not None else ""

    @property
    def challenger_model(self) -> str:
        """The version of the fraud model scored in shadow ("" without one)."""
        challenger = self.assessor.challenger if self.assessor is not None else None
        return challenger.version if challenger is not None else ""


NO_POLICY = RiskPolicy("", None, None, frozenset())


class CurrentPolicy:
    """The policy in force in this worker."""

    def __init__(self, policy: RiskPolicy = NO_POLICY) -> None:
        self.policy = policy

    def swap(self, policy: RiskPolicy) -> None:
        self.policy = policy
