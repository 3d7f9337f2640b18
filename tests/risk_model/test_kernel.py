"""The risk step's arithmetic for a batch: the compiled kernel (switch.risk._assess) equals
its pure twin (features, score, AML rules) bit for bit on random answers, models and
rules; the twin itself is the sum of the parts the other tests check against references."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch import native
from switch.risk import assess
from switch.risk.activity import DAY
from switch.risk.aml import RULES, AmlPolicy, AmlRules
from switch.risk.assess import PureKernel, Scored, pure_rounded_many
from switch.risk.model import model as fraud_model
from switch.risk.model.features import FEATURES, model_row
from switch.risk.model.model import FraudModel, Thresholds
from switch.risk.model.score import PureScorer

COMPILED = native.load("switch.risk._assess")
needs_compiled = pytest.mark.skipif(COMPILED is None, reason="not built")

counts = st.floats(0, 5_000, allow_nan=False)
cents = st.floats(0, 1e12, allow_nan=False)
seconds = st.floats(0, 400 * DAY, allow_nan=False)


@st.composite
def payments(draw: st.DrawFn) -> Scored:
    payer = struct.pack(
        "<10d",
        draw(st.sampled_from([0.0, 1.0])),
        draw(counts),
        draw(counts),
        draw(cents),
        draw(st.floats(0, 50, allow_nan=False)),
        float(draw(st.integers(0, 32))),
        draw(counts),
        draw(cents),
        draw(seconds),
        draw(seconds),
    )
    destination = draw(st.none() | st.integers(0, 32).map(lambda n: struct.pack("<d", float(n))))
    amount = draw(st.floats(0, 1e7, allow_nan=False) | st.sampled_from([9_000.0, 9_999.99, 3_000.0, 1_000.0]))
    return Scored(payer, destination, amount, draw(st.booleans()), draw(st.booleans()))


@st.composite
def aml_rules(draw: st.DrawFn) -> AmlRules:
    return AmlRules(
        AmlPolicy(
            enabled=frozenset(draw(st.sets(st.sampled_from(RULES)))),
            structuring_count=draw(st.integers(1, 5)),
            fan_out_destinations=draw(st.integers(1, 32)),
            fan_in_sources=draw(st.integers(1, 32)),
            spike_ratio=draw(st.floats(1.5, 20)),
            spike_min_history=draw(st.integers(1, 10)),
            spike_min_usd=draw(st.floats(0, 5_000)),
            dormant_days=draw(st.floats(1, 120)),
            dormant_min_usd=draw(st.floats(0, 2_000)),
        )
    )


@st.composite
def models(draw: st.DrawFn) -> FraudModel:
    weights = draw(st.lists(st.floats(-5, 5, allow_nan=False), min_size=len(FEATURES), max_size=len(FEATURES)))
    return FraudModel("test", FEATURES, tuple(weights), draw(st.floats(-10, 10)), Thresholds(1.0, 1.0), {})


def hexed(judged: tuple[list[list[float]], list[float], list[int]]) -> tuple[object, ...]:
    rows, scores, masks = judged
    return [[v.hex() for v in row] for row in rows], [s.hex() for s in scores], masks


def test_the_switch_uses_the_compiled_kernel_unless_disabled() -> None:
    if native.DISABLED or COMPILED is None:
        assert assess.make_kernel is PureKernel
    else:
        assert assess.make_kernel is COMPILED.Kernel


@needs_compiled
@settings(max_examples=300, deadline=None)
@given(
    st.lists(payments(), max_size=30),
    st.none() | st.just(fraud_model.load()) | models(),
    st.none() | st.just(AmlRules(AmlPolicy())) | aml_rules(),
)
def test_compiled_equals_pure_exactly(batch: list[Scored], model: FraudModel | None, aml: AmlRules | None) -> None:
    assert COMPILED is not None
    assert hexed(COMPILED.Kernel(model, aml).judge_many(batch)) == hexed(PureKernel(model, aml).judge_many(batch))


@settings(max_examples=100, deadline=None)
@given(st.lists(payments(), min_size=1, max_size=10))
def test_the_twin_is_the_features_the_scorer_and_the_rules(batch: list[Scored]) -> None:
    model, rules = fraud_model.load(), AmlRules(AmlPolicy())
    rows, scores, masks = PureKernel(model, rules).judge_many(batch)
    exact = [model_row(p.activity, p.amount_usd, p.cross_border, p.card) for p in batch]
    assert rows == pure_rounded_many(exact)
    assert scores == PureScorer(model).score_many(exact)
    assert [rules.alerts(mask) for mask in masks] == rules.evaluate([(p.activity, p.amount_usd) for p in batch])


def test_what_is_not_judged_is_empty() -> None:
    batch = [Scored(struct.pack("<10d", *([0.0] * 10)), None, 12.5, False, True)]
    assert PureKernel(None, None).judge_many(batch) == ([], [], [])
    if COMPILED is not None:
        assert COMPILED.Kernel(None, None).judge_many(batch) == ([], [], [])


@needs_compiled
def test_the_compiled_kernel_refuses_a_short_answer() -> None:
    assert COMPILED is not None
    kernel = COMPILED.Kernel(fraud_model.load(), None)
    with pytest.raises(ValueError, match="80 bytes, not 8"):
        kernel.judge_many([Scored(b"\0" * 8, None, 1.0, False, False)])
    with pytest.raises(ValueError, match="8 bytes, not 16"):
        kernel.judge_many([Scored(b"\0" * 80, b"\0" * 16, 1.0, False, False)])


@settings(max_examples=50, deadline=None)
@given(st.lists(payments(), min_size=1, max_size=20), models())
def test_a_challenger_changes_no_judgement_and_is_compared(batch: list[Scored], challenger: FraudModel) -> None:
    live = fraud_model.load()
    alone = assess.Assessor(live, AmlRules(AmlPolicy())).judge(batch)[0]
    shadowed = assess.Assessor(live, AmlRules(AmlPolicy()), challenger=challenger)
    judged = shadowed.judge(batch)[0]
    assert [(j.score, j.declines, j.alerts, j.features) for j in judged] == [
        (j.score, j.declines, j.alerts, j.features) for j in alone
    ]
    shadow_scores = make_scores(challenger, batch)
    assert [j.challenger for j in judged] == shadow_scores
    expected: dict[tuple[str, str], int] = {}
    for j, s in zip(judged, shadow_scores, strict=True):
        assert j.score is not None
        pair = (assess.outcome(j.score, live), assess.outcome(s, challenger))
        expected[pair] = expected.get(pair, 0) + 1
    assert shadowed.compared(judged) == expected
    assert assess.Assessor(live, None).compared(alone) == {}


def make_scores(model: FraudModel, batch: list[Scored]) -> list[float]:
    return PureScorer(model).score_many([model_row(p.activity, p.amount_usd, p.cross_border, p.card) for p in batch])


def test_outcomes_at_the_thresholds() -> None:
    model = FraudModel("t", FEATURES, (0.0,) * len(FEATURES), 0.0, Thresholds(0.5, 0.1), {})
    assert [assess.outcome(s, model) for s in (0.0, 0.0999, 0.1, 0.4999, 0.5, 1.0)] == [
        "pass", "pass", "alert", "alert", "decline", "decline"
    ]  # fmt: skip


@given(st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=1, max_size=12))
def test_journal_rounding_keeps_six_decimals(row: list[float]) -> None:
    for value, rounded in zip(row, pure_rounded_many([row])[0], strict=True):
        assert abs(rounded - value) <= 0.5e-6 + abs(value) * 1e-15
        assert rounded == float(f"{rounded:.6f}")  # it prints as six decimals at most
