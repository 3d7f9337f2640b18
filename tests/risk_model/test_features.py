"""The reference feature calculator on hand-made streams: windows, their edges, counts."""

from __future__ import annotations

import math

import pytest

from switch.risk.model.features import AGE_CAP_DAYS, AMOUNT_RATIO_CAP, DAY, FEATURES, HOUR, Event, OnlineFeatures

T0 = 1_767_225_600.0 + 12 * HOUR  # noon UTC


def event(at: float, holder: str = "h", destination: str = "d", amount: float = 10.0, declined: bool = False) -> Event:
    return Event(at, holder, destination, amount, cross_border=False, card=True, declined=declined)


def rows(*events: Event) -> list[dict[str, float]]:
    online = OnlineFeatures()
    return [dict(zip(FEATURES, online.push(e), strict=True)) for e in events]


def test_an_event_never_counts_itself() -> None:
    first = rows(event(T0))[0]
    assert first["holder_count_1h"] == 0
    assert first["holder_destinations_24h"] == 0
    assert first["destination_sources_24h"] == 0
    assert first["holder_sum_24h_log"] == 0
    assert first["holder_age_days_log"] == 0
    assert first["amount_vs_mean"] == 1.0


def test_an_event_exactly_one_hour_before_is_outside() -> None:
    assert rows(event(T0), event(T0 + HOUR))[1]["holder_count_1h"] == 0
    assert rows(event(T0), event(T0 + HOUR - 0.001))[1]["holder_count_1h"] == 1


def test_an_earlier_event_at_the_same_instant_is_inside() -> None:
    assert rows(event(T0), event(T0))[1]["holder_count_1h"] == 1


def test_declines_in_the_last_hour() -> None:
    stream = rows(
        event(T0, declined=True), event(T0 + 60, declined=False), event(T0 + 120, declined=True), event(T0 + 180)
    )
    assert (stream[3]["holder_count_1h"], stream[3]["holder_declines_1h"]) == (3, 2)


def test_the_24h_sum_is_exact_and_expires() -> None:
    stream = rows(event(T0, amount=0.1), event(T0 + 1, amount=0.2), event(T0 + 2), event(T0 + DAY))
    assert stream[2]["holder_sum_24h_log"] == math.log1p(math.fsum([0.1, 0.2]))
    assert stream[3]["holder_sum_24h_log"] == math.log1p(0.2 + 10.0)  # the first is exactly 24 h back


def test_fan_out_counts_distinct_destinations() -> None:
    stream = rows(*(event(T0 + i, destination=d) for i, d in enumerate(["a", "b", "a", "c", "x"])))
    assert stream[4]["holder_destinations_24h"] == 3
    later = rows(event(T0, destination="a"), event(T0 + 1, destination="b"), event(T0 + DAY + 0.5, destination="c"))
    assert later[2]["holder_destinations_24h"] == 1  # a left the window, b has not


def test_fan_in_counts_distinct_holders_of_a_destination() -> None:
    payers = ["p1", "p2", "p1", "p3", "p4"]
    stream = rows(*(event(T0 + i, holder=h, destination="mule") for i, h in enumerate(payers)))
    assert [r["destination_sources_24h"] for r in stream] == [0, 1, 2, 2, 3]


def test_age_grows_in_days_up_to_its_cap() -> None:
    stream = rows(event(T0), event(T0 + 2 * DAY), event(T0 + 40 * DAY))
    assert stream[1]["holder_age_days_log"] == math.log1p(2)
    assert stream[2]["holder_age_days_log"] == math.log1p(AGE_CAP_DAYS)


def test_amount_against_the_holder_mean() -> None:
    stream = rows(event(T0, amount=10), event(T0 + 1, amount=20), event(T0 + 2, amount=45), event(T0 + 3, amount=1e6))
    assert stream[2]["amount_vs_mean"] == 3.0
    assert stream[3]["amount_vs_mean"] == AMOUNT_RATIO_CAP
    assert rows(event(T0, amount=0), event(T0 + 1, amount=1))[1]["amount_vs_mean"] == AMOUNT_RATIO_CAP


def test_no_feature_reads_the_clock() -> None:
    """The same payment at any hour of the day gets the same vector."""
    midnight = T0 - 12 * HOUR
    assert len({tuple(rows(event(midnight + h * HOUR))[0].values()) for h in range(24)}) == 1


def test_request_fields() -> None:
    row = OnlineFeatures().push(Event(T0, "h", "d", 99.0, cross_border=True, card=False, declined=False))
    assert row[:3] == [math.log1p(99.0), 1.0, 0.0]
    assert len(row) == len(FEATURES)


def test_streams_must_be_chronological_and_events_sane() -> None:
    online = OnlineFeatures()
    online.push(event(T0))
    with pytest.raises(ValueError, match="chronological"):
        online.push(event(T0 - 1))
    with pytest.raises(ValueError, match="amount_usd"):
        event(T0, amount=-1)
    with pytest.raises(ValueError, match="at must be finite"):
        event(math.nan)
