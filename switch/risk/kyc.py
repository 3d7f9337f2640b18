"""KYC tiers: the caps a holder's tier puts on what they pay, as counters the claim checks.

Each tier caps, per currency, one payment (per transaction) and what the holder pays
in a UTC day, a calendar year (UTC) and their lifetime, in the manner of the People's
Bank of China's three classes of payment accounts. The caps become counters on the
holder (its instrument's fingerprint, beside its velocity counters); the state store
reads the holder's tier and checks and moves them in the claim itself, atomically
with the velocity counters, and gives them back when the item is not approved.

A currency a tier does not name is not capped by it (the caps are not converted
between currencies).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from switch.domain.models import Authorization, Instrument
from switch.risk.velocity import new_counter
from switch.stores.base import LIFETIME, PER_ITEM, Counter, TierCap

CAPS = ("per_transaction", "daily", "yearly", "lifetime")

# A day or year counter outlives its period by this much, so that the release of an
# item claimed just before the period ended still finds it.
_GRACE_SECONDS = 86_400


@dataclass(frozen=True, slots=True)
class TierLimits:
    """One tier's caps in one currency, in minor units; None: no such cap."""

    per_transaction: int | None = None
    daily: int | None = None
    yearly: int | None = None
    lifetime: int | None = None


@dataclass(frozen=True, slots=True)
class KycPolicy:
    """The tiers (name -> currency -> caps) and the tier of a holder no one classified."""

    default_tier: str
    tiers: Mapping[str, Mapping[str, TierLimits]]

    def __post_init__(self) -> None:
        if self.default_tier not in self.tiers:
            raise ValueError(f"the default tier {self.default_tier!r} is not one of the tiers")


# (cap, name, window seconds): one counter to make per item, less its subject.
_Spec = tuple[TierCap, str, int]


class KycCaps:
    """Turns a KycPolicy into each authorization's cap counters."""

    def __init__(self, policy: KycPolicy) -> None:
        self.policy = policy
        names = frozenset(policy.tiers)
        self._caps: dict[str, tuple[TierCap, ...]] = {}  # by currency: the caps any tier sets in it
        currencies = {currency for by_currency in policy.tiers.values() for currency in by_currency}
        for currency in sorted(currencies):
            caps = []
            for cap in CAPS:
                limits = {
                    tier: limit
                    for tier, by_currency in policy.tiers.items()
                    if currency in by_currency and (limit := getattr(by_currency[currency], cap)) is not None
                }
                if limits:
                    caps.append(TierCap(cap, policy.default_tier, names, MappingProxyType(limits)))
            self._caps[currency] = tuple(caps)
        # The specs of the last `now` seen, by currency; replaced whole when `now` moves.
        self._specs: tuple[float, dict[str, tuple[_Spec, ...]]] = (math.nan, {})

    def tiers(self) -> frozenset[str]:
        return frozenset(self.policy.tiers)

    def counters_many(
        self, authorizations: Sequence[Authorization], instruments: Sequence[Instrument], now: float
    ) -> list[tuple[Counter, ...]]:
        """Each authorization's cap counters, on its instrument's holder, in order."""
        out: list[tuple[Counter, ...]] = []
        for authorization, instrument in zip(authorizations, instruments, strict=True):
            specs = self._specs_for(authorization.amount.currency, now)
            if not specs:
                out.append(())
                continue
            subject = "i:" + instrument.fingerprint
            out.append(tuple([new_counter(subject, name, window, 0, True, cap=cap) for cap, name, window in specs]))
        return out

    def _specs_for(self, currency: str, now: float) -> tuple[_Spec, ...]:
        seen, by_currency = self._specs
        if seen != now:
            by_currency = {}
            self._specs = (now, by_currency)
        specs = by_currency.get(currency)
        if specs is None:
            specs = by_currency[currency] = self._make_specs(currency, now)
        return specs

    def _make_specs(self, currency: str, now: float) -> tuple[_Spec, ...]:
        caps = self._caps.get(currency, ())
        if not caps:
            return ()
        today = datetime.fromtimestamp(now, UTC).date()
        day_ends = datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)
        year_ends = datetime(today.year + 1, 1, 1, tzinfo=UTC)
        windows = {
            "per_transaction": (f"kyc.per_transaction:{currency}", PER_ITEM),
            "daily": (f"kyc.daily:{currency}:{today:%Y%m%d}", _seconds_until(day_ends, now)),
            "yearly": (f"kyc.yearly:{currency}:{today.year}", _seconds_until(year_ends, now)),
            "lifetime": (f"kyc.lifetime:{currency}", LIFETIME),
        }
        return tuple((cap, *windows[cap.name]) for cap in caps)


def cap_of(counter_name: str) -> str:
    """The cap a cap counter's name stands for ("kyc.daily:CNY:20261207" -> "daily")."""
    return counter_name.partition(":")[0].removeprefix("kyc.")


def _seconds_until(moment: datetime, now: float) -> int:
    return math.ceil(moment.timestamp() - now) + _GRACE_SECONDS
