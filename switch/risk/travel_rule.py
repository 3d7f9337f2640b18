"""FATF recommendation 16, the travel rule: a cross-border transfer of 1,000 USD or EUR
or more carries the names of its originator and its beneficiary.

A transfer here is an authorization from an account to a destination account whose
countries are both known and differ. Its amount is compared with the threshold in
its own currency when that is USD or EUR, else converted to USD at the configured
rate; without a rate the equivalent cannot be known, and the names are required. A
transfer without them is the caller's error, refused at the edge with the fields
named, before anything is claimed or sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from switch.domain import currency
from switch.domain.errors import Violation
from switch.domain.models import Account, Authorization, Money

THRESHOLD = 1_000  # in whole USD or EUR
_NAMED = ("USD", "EUR")

# The minor units in USD an amount is worth, or None without a rate.
InUsd = Callable[[Money], int | None]


@dataclass(frozen=True, slots=True)
class TravelRule:
    in_usd: InUsd
    threshold: int = THRESHOLD

    def violations(self, authorization: Authorization) -> list[Violation]:
        """The names a transfer must carry and does not; [] for what the rule does not cover."""
        source, destination = authorization.source, authorization.destination
        if not authorization.cross_border or self._below(authorization.amount):
            return []
        assert isinstance(source, Account) and destination is not None  # what cross_border says
        found = []
        if not source.holder_name.strip():
            found.append(Violation("source.account.holder_name", self._required("originator")))
        if not destination.holder_name.strip():
            found.append(Violation("destination.holder_name", self._required("beneficiary")))
        return found

    def _below(self, amount: Money) -> bool:
        if amount.currency in _NAMED:
            return amount.minor_units < _minor(self.threshold, amount.currency)
        usd = self.in_usd(amount)
        return usd is not None and usd < _minor(self.threshold, "USD")

    def _required(self, party: str) -> str:
        return (
            f"is required: a cross-border transfer of {self.threshold:,} USD or EUR or more carries its {party}'s name"
        )


def _minor(whole: int, code: str) -> int:
    places: int = currency.exponent(code)
    return whole * int(10**places)
