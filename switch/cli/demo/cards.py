"""The instruments the demo pays with: the simulated issuer's test cards, fresh
valid card numbers, and rail accounts, each printed masked only."""

from __future__ import annotations

from dataclasses import dataclass

from switch.cards import luhn
from switch.domain.models import mask_account, mask_pan

EXPIRY_MONTH, EXPIRY_YEAR = 12, 2030
APPROVE_CARD = "4111111111111111"
DO_NOT_HONOR_CARD = "4000000000000002"
INSUFFICIENT_CARD = "4000000000009995"
BAD_LUHN_CARD = "4111111111111112"
RAIL = "instant"


def luhn_pan(serial: int) -> str:
    """A distinct, valid 16-digit test PAN for each serial."""
    body = f"424242{serial:09d}"
    for check in "0123456789":
        if luhn.reference_luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable: one check digit always fits")


@dataclass(frozen=True, slots=True)
class Instrument:
    """A card or a rail account, with how the demo may print it."""

    pan: str = ""
    account_id: str = ""

    @property
    def masked(self) -> str:
        return mask_pan(self.pan) if self.pan else f"{RAIL}:{mask_account(self.account_id)}"

    @classmethod
    def card(cls, pan: str) -> Instrument:
        return cls(pan=pan)

    @classmethod
    def account(cls, account_id: str) -> Instrument:
        return cls(account_id=account_id)
