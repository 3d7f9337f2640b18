"""Scoring: the compiled scorer equals its pure-Python twin bit for bit, and both equal a
slow, obviously correct sigmoid; nothing overflows. Every test runs on both."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch import native
from switch.risk.model import score
from switch.risk.model.model import FraudModel, Thresholds

COMPILED = native.load("switch.risk.model._score")
SCORERS = [
    pytest.param(
        getattr(COMPILED, "Scorer", None), id="compiled", marks=pytest.mark.skipif(COMPILED is None, reason="not built")
    ),
    pytest.param(score.PureScorer, id="pure"),
]
Factory = Callable[[FraudModel], score.BatchScorer]

weights = st.floats(-40, 40, allow_nan=False)
values = st.floats(-1e3, 1e3, allow_nan=False)


def a_model(coefficients: Sequence[float], intercept: float) -> FraudModel:
    names = tuple(f"f{i}" for i in range(len(coefficients)))
    return FraudModel("test", names, tuple(coefficients), intercept, Thresholds(1.0, 1.0), {})


def slow_score(model: FraudModel, row: Sequence[float]) -> float:
    z = model.intercept
    for w, x in zip(model.coefficients, row, strict=True):
        z = z + w * x
    if z < -700:
        return 0.0  # the plain formula's exp overflows; the true value is below 1e-304
    return 1 / (1 + math.exp(-z))


def test_the_switch_uses_the_compiled_scorer_unless_disabled() -> None:
    if native.DISABLED or COMPILED is None:
        assert score.Scorer is score.PureScorer
    else:
        assert score.Scorer is COMPILED.Scorer


@st.composite
def models_and_rows(draw: st.DrawFn) -> tuple[FraudModel, list[list[float]]]:
    size = draw(st.integers(1, 12))
    model = a_model(draw(st.lists(weights, min_size=size, max_size=size)), draw(weights))
    rows = draw(st.lists(st.lists(values, min_size=size, max_size=size), max_size=40))
    return model, rows


@pytest.mark.skipif(COMPILED is None, reason="not built")
@settings(max_examples=300, deadline=None)
@given(models_and_rows())
def test_compiled_equals_pure_exactly(case: tuple[FraudModel, list[list[float]]]) -> None:
    model, rows = case
    assert COMPILED is not None
    compiled = COMPILED.Scorer(model).score_many(rows)
    pure = score.PureScorer(model).score_many(rows)
    assert [s.hex() for s in compiled] == [s.hex() for s in pure]


@pytest.mark.parametrize("scorer", SCORERS)
@settings(max_examples=200, deadline=None)
@given(case=models_and_rows())
def test_matches_the_slow_reference(scorer: Factory, case: tuple[FraudModel, list[list[float]]]) -> None:
    model, rows = case
    for got, row in zip(scorer(model).score_many(rows), rows, strict=True):
        assert 0.0 <= got <= 1.0
        assert abs(got - slow_score(model, row)) <= 1e-12


@pytest.mark.parametrize("scorer", SCORERS)
def test_extreme_inputs_do_not_overflow(scorer: Factory) -> None:
    model = a_model([1e300, -1.0], 0.0)
    rows: list[list[float]] = [
        [1e300, 0.0],
        [-1e300, 0.0],
        [800.0 / 1e300, 0.0],
        [0.0, 800.0],
        [0.0, 0.0],
        [0.0, 1e308],
    ]
    assert scorer(model).score_many(rows) == [1.0, 0.0, 1.0, 0.0, 0.5, 0.0]


@pytest.mark.parametrize("scorer", SCORERS)
def test_bad_rows_are_refused(scorer: Factory) -> None:
    model = a_model([1e300, 1e300], 0.0)
    with pytest.raises(ValueError, match="row 1 has 1 values"):
        scorer(model).score_many([[0.0, 0.0], [1.0]])
    with pytest.raises(ValueError, match="not a number"):
        scorer(model).score_many([[1e300, -1e300]])  # inf - inf


@pytest.mark.parametrize("scorer", SCORERS)
def test_ints_and_tuples_score_like_floats(scorer: Factory) -> None:
    model = a_model([0.5, -0.25, 2.0], 0.1)
    assert scorer(model).score_many([(1, True, 3)]) == scorer(model).score_many([[1.0, 1.0, 3.0]])
    assert scorer(model).score_many([]) == []
