"""Each authorization's holder counters: its payer's KYC totals and activity, and its
destination's activity, for the state store to check and move in the claim.

One counter on the payer (its instrument's fingerprint) carries both the KYC caps of
the payment's currency (switch.risk.kyc) and the payment as its activity records it;
a transfer to an account adds one on the destination account, which counts its
distinct payers (fan-in). Parties appear in each other's lists by a short id: the
first SHORT_ID hex digits of their fingerprint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from switch.domain.models import Authorization, Instrument, Money
from switch.risk.kyc import KycRules
from switch.risk.velocity import new_counter
from switch.stores.base import Counter, Payment

SHORT_ID = 12  # hex digits: 48 bits, no collision to fear among DISTINCT_KEPT parties
_NONE: tuple[Counter, ...] = ()


class HolderCounters:
    def __init__(
        self,
        kyc: KycRules | None,
        *,
        activity: bool,
        in_usd: Callable[[Money], int | None],
        near_threshold: Callable[[int], bool],
    ) -> None:
        """activity: record each payment in its parties' activity (the risk step reads it);
        in_usd: an amount in USD minor units, None without a rate; near_threshold: whether
        an amount in USD minor units is just below the AML reporting threshold."""
        self._kyc = kyc
        self._activity = activity
        self._in_usd = in_usd
        self._near = near_threshold

    @property
    def active(self) -> bool:
        return self._kyc is not None or self._activity

    def counters_many(
        self,
        authorizations: Sequence[Authorization],
        instruments: Sequence[Instrument],
        destinations: Sequence[str | None],
        now: float,
    ) -> list[tuple[Counter, ...]]:
        """Each authorization's holder counters, in order. destinations: the fingerprint of
        each one's destination account (None: none, a card payment to its merchant)."""
        kyc = self._kyc.counters_many(authorizations, instruments, now) if self._kyc is not None else None
        if not self._activity:
            return kyc if kyc is not None else [_NONE] * len(authorizations)
        out: list[tuple[Counter, ...]] = []
        for index, (authorization, instrument, destination) in enumerate(
            zip(authorizations, instruments, destinations, strict=True)
        ):
            cents = self._in_usd(authorization.amount) or 0
            near = self._near(cents)
            payer = "i:" + instrument.fingerprint
            caps = kyc[index][0].caps if kyc is not None and kyc[index] else None
            paying = Payment(cents, near, destination[:SHORT_ID] if destination else "", False)
            counters = [new_counter(payer, authorization.amount.currency, 0, 0, True, caps=caps, payment=paying)]
            if destination:
                receiving = Payment(cents, near, instrument.fingerprint[:SHORT_ID], True)
                counters.append(new_counter("i:" + destination, "in", 0, 0, True, payment=receiving))
            out.append(tuple(counters))
        return out
