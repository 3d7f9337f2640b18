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

from switch.domain.models import Authorization, Instrument, Money, slot_setters
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
        kyc = self._kyc
        if not self._activity:
            return (
                kyc.counters_many(authorizations, instruments, now)
                if kyc is not None
                else [_NONE] * len(authorizations)
            )
        in_usd, near = self._in_usd, self._near
        out: list[tuple[Counter, ...]] = []
        for authorization, instrument, destination in zip(authorizations, instruments, destinations, strict=True):
            amount = authorization.amount
            cents = in_usd(amount) or 0
            is_near = near(cents)
            caps = kyc.caps(amount.currency, now) if kyc is not None else None
            paying = _payment(cents, is_near, destination[:SHORT_ID] if destination else "", False)
            payer = new_counter("i:" + instrument.fingerprint, amount.currency, 0, 0, True, caps=caps, payment=paying)
            if destination:
                receiving = _payment(cents, is_near, instrument.fingerprint[:SHORT_ID], True)
                out.append((payer, new_counter("i:" + destination, "in", 0, 0, True, payment=receiving)))
            else:
                out.append((payer,))
        return out


_new = object.__new__
_cents, _near, _counterparty, _receiving = slot_setters(
    Payment, "usd_cents", "near_threshold", "counterparty", "receiving"
)


def _payment(usd_cents: int, near_threshold: bool, counterparty: str, receiving: bool) -> Payment:
    """Payment(...) without the frozen __init__ (its values come checked from the
    authorization), as new_counter: one or two per item."""
    payment: Payment = _new(Payment)
    _cents(payment, usd_cents)
    _near(payment, near_threshold)
    _counterparty(payment, counterparty)
    _receiving(payment, receiving)
    return payment
