"""Velocity and amount limits, turned into the counters a claim must fit under.

Windows are fixed and aligned to the epoch (an hour-long window runs from one
full hour to the next): each counter's name carries its window's bucket, so a
claim and its later release move the same counter. The state store checks and
moves all of an item's counters atomically.

Everything but the subject is the same for every item of a batch with the same
currency (one ``now``), so the counters' names are worked out once per ``now``
and currency; counters_many also shares a merchant's counters between its items
(counters are frozen values).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from switch.domain.limits import Limit, LimitScope
from switch.domain.models import Authorization, Instrument, slot_setters
from switch.stores.base import Counter, KycCaps, Payment

# (per instrument, name, window_seconds, limit, by_amount): one counter to make, less its subject.
_Spec = tuple[bool, str, int, int, bool]
# A spec and its counter when the batch can share it (the merchant's), else None.
_Made = tuple[Counter | None, _Spec]

_new = object.__new__
_subject, _name, _window, _limit, _by_amount, _caps, _payment = slot_setters(
    Counter, "subject", "name", "window_seconds", "limit", "by_amount", "caps", "payment"
)


def new_counter(
    subject: str,
    name: str,
    window_seconds: int,
    limit: int,
    by_amount: bool,
    *,
    caps: KycCaps | None = None,
    payment: Payment | None = None,
) -> Counter:
    """Counter(...) without the frozen __init__: every value here is already checked (a
    Limit's, or a KYC cap's), and the risk steps make one per counter per item."""
    counter: Counter = _new(Counter)
    _subject(counter, subject)
    _name(counter, name)
    _window(counter, window_seconds)
    _limit(counter, limit)
    _by_amount(counter, by_amount)
    _caps(counter, caps)
    _payment(counter, payment)
    return counter


class RiskRules:
    def __init__(self, limits: Sequence[Limit]) -> None:
        self._limits = tuple(limits)
        # The specs of the last `now` seen, by currency; replaced whole when `now` moves.
        self._specs: tuple[float, dict[str, tuple[_Spec, ...]]] = (math.nan, {})

    def counters(self, authorization: Authorization, instrument: Instrument, now: float) -> tuple[Counter, ...]:
        """The counters one authorization moves; see counters_many."""
        return self.counters_many([authorization], [instrument], now)[0]

    def counters_many(
        self, authorizations: Sequence[Authorization], instruments: Sequence[Instrument], now: float
    ) -> list[tuple[Counter, ...]]:
        """Each authorization's counters, in order: its instrument's and its merchant's, per
        limit that applies to its currency. A merchant's counters are made once per
        batch and shared by its items.
        """
        if len(authorizations) != len(instruments):
            raise ValueError("counters_many takes one instrument per authorization")
        if not self._limits:
            return [()] * len(authorizations)
        by_merchant: dict[tuple[str, str], tuple[tuple[Counter, ...] | None, tuple[_Made, ...]]] = {}
        out: list[tuple[Counter, ...]] = []
        for authorization, instrument in zip(authorizations, instruments, strict=True):
            key = (authorization.merchant_id, authorization.amount.currency)
            entry = by_merchant.get(key)
            if entry is None:
                entry = by_merchant[key] = self._merchant_counters(authorization, now)
            complete, row = entry
            if complete is not None:
                out.append(complete)
                continue
            subject = "i:" + instrument.fingerprint
            out.append(
                tuple(
                    [
                        new_counter(subject, name, window, limit, by_amount) if made is None else made
                        for made, (_, name, window, limit, by_amount) in row
                    ]
                )
            )
        return out

    def _merchant_counters(
        self, authorization: Authorization, now: float
    ) -> tuple[tuple[Counter, ...] | None, tuple[_Made, ...]]:
        """(every counter, when all are the merchant's; else None), and each spec beside its
        merchant counter, or None where the counter is the instrument's."""
        subject = "m:" + authorization.merchant_id
        row = tuple(
            (None if per_instrument else new_counter(subject, name, window, limit, by_amount), spec)
            for spec in self._specs_for(authorization, now)
            for per_instrument, name, window, limit, by_amount in (spec,)
        )
        made = [counter for counter, _ in row if counter is not None]
        return (tuple(made) if len(made) == len(row) else None), row

    def _specs_for(self, authorization: Authorization, now: float) -> tuple[_Spec, ...]:
        currency = authorization.amount.currency
        seen, by_currency = self._specs
        if seen != now:
            by_currency = {}
            self._specs = (now, by_currency)
        specs = by_currency.get(currency)
        if specs is None:
            specs = by_currency[currency] = self._make_specs(currency, now)
        return specs

    def _make_specs(self, currency: str, now: float) -> tuple[_Spec, ...]:
        specs: list[_Spec] = []
        for limit in self._limits:
            per_instrument = limit.scope is LimitScope.INSTRUMENT
            window = limit.window_seconds
            bucket = int(now // window)
            if limit.max_count is not None:
                specs.append((per_instrument, f"c{window}:{bucket}", window, limit.max_count, False))
            if limit.max_amount is not None:
                specs.append((per_instrument, f"a{window}:{currency}:{bucket}", window, limit.max_amount, True))
        return tuple(specs)
