"""Limits as counters: per item or for a whole batch, the counters are the ones first written."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.domain.limits import Limit, LimitScope
from switch.domain.models import Authorization, Card, Instrument, InstrumentKind, Money
from switch.risk.velocity import RiskRules
from switch.stores.base import Counter


def first_counters(
    limits: list[Limit], authorization: Authorization, instrument: Instrument, now: float
) -> tuple[Counter, ...]:
    """RiskRules.counters as first written."""
    counters: list[Counter] = []
    for limit in limits:
        if limit.scope is LimitScope.INSTRUMENT:
            subject = f"i:{instrument.fingerprint}"
        else:
            subject = f"m:{authorization.merchant_id}"
        bucket = int(now // limit.window_seconds)
        if limit.max_count is not None:
            name = f"c{limit.window_seconds}:{bucket}"
            counters.append(Counter(subject, name, limit.window_seconds, limit.max_count, by_amount=False))
        if limit.max_amount is not None:
            name = f"a{limit.window_seconds}:{authorization.amount.currency}:{bucket}"
            counters.append(Counter(subject, name, limit.window_seconds, limit.max_amount, by_amount=True))
    return tuple(counters)


limits = st.builds(
    Limit,
    scope=st.sampled_from(LimitScope),
    window_seconds=st.sampled_from([1, 60, 3600, 86400, 7 * 86400]),
    max_count=st.one_of(st.none(), st.integers(1, 10**6)),
    max_amount=st.one_of(st.none(), st.integers(1, 10**15)),
).filter(lambda limit: limit.max_count is not None or limit.max_amount is not None)

items = st.lists(
    st.tuples(st.sampled_from(["m-1", "m-2", "m-3"]), st.sampled_from(["USD", "EUR", "JPY"]), st.sampled_from("abcd")),
    max_size=30,
)


def batch(described: list[tuple[str, str, str]]) -> tuple[list[Authorization], list[Instrument]]:
    authorizations, instruments = [], []
    for index, (merchant, currency, card) in enumerate(described):
        source = Card("4111111111111111", 1, 2030)
        authorizations.append(Authorization(f"k{index}", merchant, Money(100 + index, currency), source))
        instruments.append(Instrument(InstrumentKind.CARD, f"fp-{card}", "411111******1111"))
    return authorizations, instruments


@settings(max_examples=150, deadline=None)
@given(st.lists(limits, max_size=4), items, st.lists(st.floats(0, 2e9), min_size=1, max_size=3))
def test_counters_per_item_and_per_batch_are_the_first_ones(
    configured: list[Limit], described: list[tuple[str, str, str]], clock: list[float]
) -> None:
    rules = RiskRules(configured)
    authorizations, instruments = batch(described)
    for now in clock:  # one RiskRules over several batches: nothing of an earlier `now` sticks
        expected = [first_counters(configured, a, i, now) for a, i in zip(authorizations, instruments, strict=True)]
        assert [rules.counters(a, i, now) for a, i in zip(authorizations, instruments, strict=True)] == expected
        assert rules.counters_many(authorizations, instruments, now) == expected
        for made in rules.counters_many(authorizations, instruments, now):
            assert type(made) is tuple and all(type(counter) is Counter for counter in made)


def test_a_batch_crossing_a_window_boundary_gets_the_new_bucket() -> None:
    rules = RiskRules([Limit(LimitScope.MERCHANT, 60, 5, 1000)])
    authorizations, instruments = batch([("m-1", "USD", "a")])
    first = rules.counters_many(authorizations, instruments, 119.9)[0]
    later = rules.counters_many(authorizations, instruments, 120.0)[0]
    assert [c.name for c in first] == ["c60:1", "a60:USD:1"]
    assert [c.name for c in later] == ["c60:2", "a60:USD:2"]
    assert rules.counters(authorizations[0], instruments[0], 119.9) == first


def test_counters_many_wants_one_instrument_per_authorization() -> None:
    rules = RiskRules([Limit(LimitScope.INSTRUMENT, 60, 5, None)])
    authorizations, instruments = batch([("m-1", "USD", "a"), ("m-1", "USD", "b")])
    with pytest.raises(ValueError):
        rules.counters_many(authorizations, instruments[:1], 0.0)
    with pytest.raises(ValueError):
        RiskRules([]).counters_many(authorizations, instruments[:1], 0.0)
    assert RiskRules([]).counters_many(authorizations, instruments, 0.0) == [(), ()]
