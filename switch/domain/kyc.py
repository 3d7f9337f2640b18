"""Know-your-customer tiers: how much a holder may pay depends on how well they are known.

A holder is an instrument's fingerprint (a card or an account). Tiers and their caps
are configuration (switch.risk.kyc); which tier a holder is in is set by compliance
(SetHolderTier), journaled, and read by the state store in the claim itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HolderTier:
    holder: str  # the instrument's fingerprint
    tier: str
    seq: int  # the journal's order of tier changes: the latest wins wherever it lands
