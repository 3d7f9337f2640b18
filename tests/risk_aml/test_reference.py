"""reference_activities on hand-made streams (windows, their edges, the distinct caps), and
model_row: the model's vector from an Activity is exactly feature_rows'."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from switch.risk import activity
from switch.risk.activity import DISTINCT_KEPT, FIRST, Activity
from switch.risk.model import features, synthetic
from switch.risk.model.features import DAY, HOUR, MONTH, Event, feature_rows, model_row, reference_activities

T0 = synthetic.START + 12 * HOUR  # noon UTC


def event(at: float, holder: str = "h", destination: str = "d", amount: float = 10.0, declined: bool = False) -> Event:
    return Event(at, holder, destination, amount, cross_border=False, card=True, declined=declined)


def near(amount_usd: float) -> bool:
    return 9_000 <= amount_usd < 10_000


def activities(*events: Event) -> list[Activity]:
    return reference_activities(events, near)


def test_the_windows_are_the_contracts() -> None:
    assert (features.HOUR, features.DAY, features.MONTH) == (activity.HOUR, activity.DAY, activity.MONTH)


def test_a_first_payment_knows_nothing_of_its_holder() -> None:
    assert activities(event(T0))[0] == FIRST


def test_a_first_payment_still_sees_its_destination() -> None:
    # FIRST is all zero, but fan-in is the destination's: a new holder paying a mule counts its payers.
    stream = activities(event(T0, holder="a"), event(T0 + 1, holder="b"), event(T0 + 2, holder="c"))
    assert stream[2] == replace(FIRST, sources_24h=2)


def test_age_and_idle() -> None:
    stream = activities(event(T0), event(T0 + 50), event(T0 + 40 * DAY), event(T0 + 40 * DAY))
    assert [(a.first, a.age_seconds, a.idle_seconds) for a in stream] == [
        (True, 0.0, 0.0),
        (False, 50.0, 50.0),
        (False, 40 * DAY, 40 * DAY - 50),  # idle reaches past every window; age is not capped
        (False, 40 * DAY, 0.0),  # an earlier payment at the same instant
    ]
    assert stream[2].count_30d == 0 and stream[2].mean_30d_usd is None


def test_the_hour_excludes_its_start_and_counts_declines() -> None:
    stream = activities(
        event(T0, declined=True), event(T0 + 60, declined=True), event(T0 + 120), event(T0 + HOUR), event(T0 + HOUR)
    )
    assert (stream[2].count_1h, stream[2].declines_1h) == (2, 2)
    assert (stream[3].count_1h, stream[3].declines_1h) == (2, 1)  # the first is exactly an hour back
    assert (stream[4].count_1h, stream[4].declines_1h) == (3, 1)  # the same instant is inside


def test_the_day_sums_exactly_and_counts_near_threshold_payments() -> None:
    stream = activities(
        event(T0, amount=9_000.0),
        event(T0 + 1, amount=0.1, declined=True),
        event(T0 + 2, amount=9_999.99, declined=True),  # attempts count, declined or not
        event(T0 + 3, amount=10_000.0),  # the threshold itself is not near it
        event(T0 + 4, amount=8_999.99),
        event(T0 + DAY),
        event(T0 + DAY + 2),
    )
    assert (stream[4].near_threshold_24h, stream[4].sum_24h_usd) == (2, math.fsum([9_000.0, 0.1, 9_999.99, 10_000.0]))
    assert stream[5].near_threshold_24h == 1  # the first is exactly 24 h back
    assert stream[5].sum_24h_usd == math.fsum([0.1, 9_999.99, 10_000.0, 8_999.99])
    assert stream[6].near_threshold_24h == 0  # the third is exactly 24 h back
    assert stream[6].sum_24h_usd == math.fsum([10_000.0, 8_999.99, 10.0])


def test_the_month() -> None:
    stream = activities(event(T0, amount=30.0), event(T0 + DAY, amount=10.0), event(T0 + MONTH, amount=1.0))
    assert (stream[1].count_30d, stream[1].sum_30d_usd, stream[1].mean_30d_usd) == (1, 30.0, 30.0)
    assert (stream[2].count_30d, stream[2].sum_30d_usd) == (1, 10.0)  # the first is exactly 30 days back


def test_fan_out_and_fan_in_are_distinct_and_expire() -> None:
    stream = activities(
        *(event(T0 + i, destination=d) for i, d in enumerate(["a", "b", "a", "c"])),
        event(T0 + DAY + 1.5, destination="x"),
    )
    assert [a.destinations_24h for a in stream] == [0, 1, 2, 2, 2]  # at the last, "a" (twice) and "b" left
    payers = activities(*(event(T0 + i, holder=h, destination="mule") for i, h in enumerate(["p", "q", "p", "r"])))
    assert [a.sources_24h for a in payers] == [0, 1, 2, 2]


def test_distinct_counts_stop_at_distinct_kept() -> None:
    many = DISTINCT_KEPT + 8
    out = activities(*(event(T0 + i, destination=f"d{i}") for i in range(many + 1)))
    assert [a.destinations_24h for a in out] == [*range(DISTINCT_KEPT), *[DISTINCT_KEPT] * (many + 1 - DISTINCT_KEPT)]
    into = activities(*(event(T0 + i, holder=f"p{i}", destination="mule") for i in range(many + 1)))
    assert into[DISTINCT_KEPT].sources_24h == DISTINCT_KEPT
    assert into[-1].sources_24h == DISTINCT_KEPT


def test_a_stream_must_be_chronological() -> None:
    with pytest.raises(ValueError, match="chronological"):
        activities(event(T0 + 1), event(T0))


def rows_from_activities(events: list[Event]) -> list[list[float]]:
    return [
        model_row(a, e.amount_usd, e.cross_border, e.card)
        for a, e in zip(reference_activities(events, near), events, strict=True)
    ]


def test_model_row_is_exactly_feature_rows_over_synthetic_traffic() -> None:
    events, _ = synthetic.traffic(14, seed=3, holders=800)  # the fraud patterns included
    activities = reference_activities(events, near)
    # Below the cap the distinct counts are exact, which is where the two must agree.
    assert max(max(a.destinations_24h, a.sources_24h) for a in activities) < DISTINCT_KEPT
    assert rows_from_activities(events) == feature_rows(events)


def test_past_distinct_kept_the_model_counts_on_and_the_store_stops() -> None:
    # The shipped model was trained on exact counts: feature_rows keeps them, the store cannot.
    events = [event(T0 + i, destination=f"d{i}") for i in range(DISTINCT_KEPT + 2)]
    index = FEATURES_INDEX["holder_destinations_24h"]
    assert feature_rows(events)[-1][index] == DISTINCT_KEPT + 1
    assert rows_from_activities(events)[-1][index] == DISTINCT_KEPT


def test_model_row_transforms() -> None:
    row = dict(zip(features.FEATURES, model_row(FIRST, 99.0, True, False), strict=True))
    assert row["amount_log"] == math.log1p(99.0)
    assert (row["cross_border"], row["card"]) == (1.0, 0.0)
    assert (row["holder_age_days_log"], row["amount_vs_mean"]) == (0.0, 1.0)
    old = replace(FIRST, first=False, count_30d=2.0, sum_30d_usd=0.0, age_seconds=100 * DAY)
    row = dict(zip(features.FEATURES, model_row(old, 1.0, False, True), strict=True))
    assert row["holder_age_days_log"] == math.log1p(features.AGE_CAP_DAYS)
    assert row["amount_vs_mean"] == features.AMOUNT_RATIO_CAP  # a zero mean counts as MIN_MEAN_USD


FEATURES_INDEX = {name: i for i, name in enumerate(features.FEATURES)}
