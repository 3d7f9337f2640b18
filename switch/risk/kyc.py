"""KYC tiers: the caps a holder's tier puts on what they pay, as counters the claim checks.

Each tier caps, per currency, one payment (per transaction) and what the holder pays
in a UTC day, a calendar year (UTC) and their lifetime, in the manner of the People's
Bank of China's three classes of payment accounts. Each item carries one KYC counter
on its holder (its instrument's fingerprint, the subject of its velocity counters):
the state store reads the holder's tier and running totals, checks and moves them in
the claim itself, atomically with the velocity counters, and gives them back when the
item is not approved.

A currency a tier does not name is not capped by it (the caps are not converted
between currencies).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

from switch.domain.models import Authorization, Instrument
from switch.risk.velocity import new_counter
from switch.stores.base import CAP_NAMES, UNCAPPED, Counter, KycCaps

CAPS = CAP_NAMES


@dataclass(frozen=True, slots=True)
class TierLimits:
    """One tier's caps in one currency, in minor units; None: no such cap."""

    per_transaction: int | None = None
    daily: int | None = None
    yearly: int | None = None
    lifetime: int | None = None

    def in_order(self) -> tuple[int, int, int, int]:
        """The caps in CAP_NAMES order, UNCAPPED where there is none."""

        def _or_uncapped(cap: int | None) -> int:
            return UNCAPPED if cap is None else cap

        return (
            _or_uncapped(self.per_transaction),
            _or_uncapped(self.daily),
            _or_uncapped(self.yearly),
            _or_uncapped(self.lifetime),
        )


@dataclass(frozen=True, slots=True)
class KycPolicy:
    """The tiers (name -> currency -> caps) and the tier of a holder no one classified."""

    default_tier: str
    tiers: Mapping[str, Mapping[str, TierLimits]]

    def __post_init__(self) -> None:
        if self.default_tier not in self.tiers:
            raise ValueError(f"the default tier {self.default_tier!r} is not one of the tiers")


_NONE = TierLimits()


class KycRules:
    """Turns a KycPolicy into each authorization's KYC counter: one per item, on its
    holder (the instrument's fingerprint), in its currency."""

    def __init__(self, policy: KycPolicy) -> None:
        self.policy = policy
        currencies = {currency for by_currency in policy.tiers.values() for currency in by_currency}
        # By currency: every tier's caps in it (a tier that does not name it: none).
        self._limits = {
            currency: MappingProxyType(
                {tier: by_currency.get(currency, _NONE).in_order() for tier, by_currency in policy.tiers.items()}
            )
            for currency in currencies
        }
        # The caps of the last `now` seen, by currency; replaced whole when `now` moves.
        self._caps: tuple[float, dict[str, KycCaps]] = (math.nan, {})

    def counters_many(
        self, authorizations: Sequence[Authorization], instruments: Sequence[Instrument], now: float
    ) -> list[tuple[Counter, ...]]:
        """Each authorization's KYC counter (none in a currency no tier caps), in order."""
        out: list[tuple[Counter, ...]] = []
        for authorization, instrument in zip(authorizations, instruments, strict=True):
            caps = self.caps(authorization.amount.currency, now)
            if caps is None:
                out.append(())
            else:
                out.append((new_counter("i:" + instrument.fingerprint, caps.currency, 0, 0, True, caps=caps),))
        return out

    def caps(self, currency: str, now: float) -> KycCaps | None:
        """The caps of a payment made now in currency (None: no tier caps it), shared by
        every payment of the same `now` and currency."""
        seen, by_currency = self._caps
        if seen != now:
            by_currency = {}
            self._caps = (now, by_currency)
        caps = by_currency.get(currency)
        if caps is None:
            limits = self._limits.get(currency)
            if limits is None:
                return None
            today = datetime.fromtimestamp(now, UTC)
            caps = by_currency[currency] = KycCaps(
                currency, f"{today:%Y%m%d}", f"{today:%Y}", self.policy.default_tier, limits
            )
        return caps
