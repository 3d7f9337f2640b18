"""What the online feature store knows of a payment's parties when it arrives.

The state store keeps each holder's (and each destination account's) recent activity
beside its KYC totals and answers, for every claimed authorization, an Activity as
it stood before that authorization: the fraud model's features and the AML rules
both read it. Windows are sliding, estimated from two fixed windows (the current
one and the one before it, weighted by how much of it the sliding window still
covers); distinct counts are exact up to DISTINCT_KEPT and stop there.
switch.risk.model.features.OnlineFeatures computes the same quantities exactly,
from a stream of events, as the reference.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from switch.stores import holder_lua

HOUR = 3600.0
DAY = 86_400.0
MONTH = 30 * DAY
DISTINCT_KEPT = holder_lua.DISTINCT_KEPT  # counterparties the stores remember per party, each way


@dataclass(slots=True)  # built per authorization, so not frozen: see switch.domain.models
class Activity:
    """A holder's activity before one payment (a first payment: all zero, first=True)."""

    first: bool  # the holder was never seen before
    count_1h: float  # payments attempted in the last hour (declined ones included)
    declines_1h: float  # of those, declined (by the switch, its routes or the issuer)
    sum_24h_usd: float  # what was attempted in the last 24 h, in USD (major units)
    near_threshold_24h: float  # payments in the last 24 h just below the reporting threshold
    destinations_24h: int  # distinct destination accounts paid in the last 24 h (fan-out)
    sources_24h: int  # distinct holders who paid this payment's destination in the last 24 h (fan-in)
    count_30d: float  # payments in the last 30 days
    sum_30d_usd: float  # their amount, in USD
    age_seconds: float  # since the holder's first payment
    idle_seconds: float  # since the holder's last payment (0 for a first one)

    @property
    def mean_30d_usd(self) -> float | None:
        """The holder's mean payment over 30 days, None without one."""
        return self.sum_30d_usd / self.count_30d if self.count_30d > 0 else None


FIRST = Activity(True, 0.0, 0.0, 0.0, 0.0, 0, 0, 0.0, 0.0, 0.0, 0.0)


_PAYER = struct.Struct("<10d")
_DESTINATION = struct.Struct("<d")


def parse_activity(payer: bytes, destination: bytes | None) -> Activity:
    """The Activity a state store answered for a payment, as little-endian doubles: the
    payer's (switch.stores.holder_lua: first, attempts and declines in an hour, USD cents
    and near-threshold payments in 24 h, destinations in 24 h, payments and USD cents in
    30 days, seconds since the first and the last payment) and the destination's distinct
    payers (None: no destination account)."""
    first, count, declines, cents, near, destinations, count_30d, cents_30d, age, idle = _PAYER.unpack(payer)
    return Activity(
        first == 1.0,
        count,
        declines,
        cents / 100,
        near,
        int(destinations),
        0 if destination is None else int(_DESTINATION.unpack(destination)[0]),
        count_30d,
        cents_30d / 100,
        age,
        idle,
    )
