"""The synthetic traffic: reproducible, a few percent fraud, every pattern in it."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from switch.risk.model import synthetic
from switch.risk.model.features import Event


@pytest.fixture(scope="module")
def traffic() -> tuple[list[Event], list[synthetic.Label]]:
    return synthetic.traffic(10, seed=3, holders=600)


def test_the_same_seed_gives_the_same_traffic(traffic: tuple[list[Event], list[synthetic.Label]]) -> None:
    assert synthetic.traffic(10, seed=3, holders=600) == traffic
    assert synthetic.traffic(10, seed=4, holders=600)[0] != traffic[0]


def test_fraud_is_a_few_percent_with_every_pattern(
    traffic: tuple[list[Event], list[synthetic.Label]],
) -> None:
    events, labels = traffic
    counts = Counter(label for label in labels if label is not None)
    assert set(counts) == set(synthetic.PATTERNS)
    assert 0.02 <= sum(counts.values()) / len(events) <= 0.05


def test_events_are_in_time_order(traffic: tuple[list[Event], list[synthetic.Label]]) -> None:
    events, _ = traffic
    assert all(a.at <= b.at for a, b in itertools.pairwise(events))


def test_card_testing_is_small_and_often_declined(traffic: tuple[list[Event], list[synthetic.Label]]) -> None:
    tests = [e for e, label in zip(*traffic, strict=True) if label == synthetic.CARD_TESTING]
    assert max(e.amount_usd for e in tests) <= 5.0
    assert sum(e.declined for e in tests) / len(tests) > 0.5


def test_periods_split_by_time(traffic: tuple[list[Event], list[synthetic.Label]]) -> None:
    events, _ = traffic
    start, cut = synthetic.periods(events, 0.3)
    assert events[start].at >= synthetic.START + synthetic.WARMUP_DAYS * 86400 > events[start - 1].at
    assert 0 < start < cut < len(events)
    assert events[cut - 1].at < events[cut].at or events[cut - 1].at == events[cut].at
    with pytest.raises(ValueError, match="warm-up"):
        synthetic.periods(synthetic.traffic(3, seed=1, holders=100)[0])
