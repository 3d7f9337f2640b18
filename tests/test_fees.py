"""The fee engine against the Decimal reference (tests/fee_reference.py), run on
both arithmetic cores, compiled and pure (uvloop's one-mixin-two-backends idea:
every test here takes the `core` fixture); plus schedule validation."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switch import native
from switch.config import ConfigError
from switch.config.fees import parse_fee_schedules, parse_fx
from switch.domain.models import INT64_MAX, Money, MoneyOverflow
from switch.money import fees, fees_core
from switch.money.fees import FeeEngine, FxTable, QuoteRequest
from tests import fee_reference

COMPILED = native.load("switch.money._fees_core")
CORES = [
    pytest.param(COMPILED, id="compiled", marks=pytest.mark.skipif(COMPILED is None, reason="cext not built")),
    pytest.param(fees_core, id="pure"),
]
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

WORKED_EXAMPLE: dict[str, Any] = {
    "name": "cards",
    "rail": "card",
    "merchant_id": "m-1",
    "currency": "USD",
    "percent": "2.9",
    "fixed": 30,
    "min": 50,
    "max": 2000,
    "rounding": "half_even",
    "cross_border_percent": "1.0",
    "tiers": [{"up_to": 10000, "percent": "3.4", "fixed": 30}, {"percent": "2.5", "fixed": 20}],
    "shares": [
        {"party": "platform", "percent": "50"},
        {"party": "partner", "percent": "50", "shares": [{"party": "agent", "percent": "40"}]},
    ],
}


@pytest.fixture(params=CORES)
def core(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


def test_the_compiled_core_is_used_unless_disabled() -> None:
    assert (fees.CORE is fees_core) == native.DISABLED
    probe = "from switch.money import fees, fees_core; assert fees.CORE is fees_core"
    env = {**os.environ, "SWITCH_NO_EXTENSIONS": "1"}
    subprocess.run([sys.executable, "-c", probe], check=True, env=env)


# --- the worked example of the specification ---------------------------------------------------------------------


def test_worked_example(core: ModuleType) -> None:
    engine = FeeEngine(parse_fee_schedules([WORKED_EXAMPLE]), core=core)
    # $100.00 is in the first tier: 3.4 % + 30 = 370; platform gets half (185), the
    # partner's half splits 60/40 (111 kept, 74 to the agent).
    quote = engine.quote("m-1", Money(10000, "USD"), "card")
    assert quote.fee == Money(370, "USD")
    assert quote.shares == (("platform", 185), ("partner", 111), ("agent", 74))
    assert quote.schedule == "cards"
    assert quote.settlement is None
    # $200.00, cross-border: (2.5 % + 1.0 %) + 20 = 720 -> 360 / 216 / 144.
    quote = engine.quote("m-1", Money(20000, "USD"), "card", card_country="US", merchant_country="BR")
    assert (quote.fee.minor_units, quote.shares) == (720, (("platform", 360), ("partner", 216), ("agent", 144)))


def test_min_max_and_unmatched(core: ModuleType) -> None:
    engine = FeeEngine(parse_fee_schedules([WORKED_EXAMPLE]), core=core)
    assert engine.quote("m-1", Money(100, "USD"), "card").fee.minor_units == 50  # 3 + 30 below min
    assert engine.quote("m-1", Money(10**7, "USD"), "card").fee.minor_units == 2000
    none = engine.quote("m-2", Money(10000, "USD"), "card")
    assert (none.fee, none.shares, none.schedule) == (Money(0, "USD"), (), "")


def test_odd_fee_splits_by_largest_remainder(core: ModuleType) -> None:
    schedule = {**WORKED_EXAMPLE, "tiers": [], "percent": "0", "fixed": 333, "min": None, "max": None}
    del schedule["min"], schedule["max"]
    quote = FeeEngine(parse_fee_schedules([schedule]), core=core).quote("m-1", Money(1, "USD"), "card")
    # 166.5 / 166.5 -> the tie goes to the platform; the partner's 166 -> 99.6 kept, 66.4 agent.
    assert quote.shares == (("platform", 167), ("partner", 100), ("agent", 66))


@pytest.mark.parametrize(
    ("rounding", "expected"), [("half_even", [0, 2, 2]), ("half_up", [1, 2, 3]), ("down", [0, 1, 2]), ("up", [1, 2, 3])]
)
def test_rounding_modes_on_exact_halves(core: ModuleType, rounding: str, expected: list[int]) -> None:
    schedule = parse_fee_schedules([{"name": "r", "percent": "50", "rounding": rounding}])
    engine = FeeEngine(schedule, core=core)
    assert [engine.quote("m", Money(a, "USD"), "card").fee.minor_units for a in (1, 3, 5)] == expected


def test_overflow_raises(core: ModuleType) -> None:
    schedule = parse_fee_schedules([{"name": "x", "percent": "100", "fixed": 1, "cross_border_percent": "1"}])
    engine = FeeEngine(schedule, core=core)
    with pytest.raises(MoneyOverflow):
        engine.quote("m", Money(INT64_MAX, "USD"), "card")  # + fixed 1
    with pytest.raises(MoneyOverflow):
        engine.quote(
            "m", Money(INT64_MAX // 101 * 100 + 10**6, "USD"), "card", card_country="US", merchant_country="DE"
        )
    assert engine.quote("m", Money(INT64_MAX - 1, "USD"), "card").fee.minor_units == INT64_MAX


# --- FX ----------------------------------------------------------------------------------------------------------

FX = {"USD/JPY": "150", "JPY/USD": "0.0066", "USD/KWD": "0.3071", "KWD/JPY": "488.5", "JPY/KWD": "0.002"}


@pytest.mark.parametrize(
    ("amount", "to", "expected"),
    [
        (Money(1050, "USD"), "JPY", Money(1575, "JPY")),  # $10.50 x 150 = 1575 yen: the exponent drops by 2
        (Money(1575, "JPY"), "USD", Money(1040, "USD")),  # 10.395 -> 10.40
        (Money(1050, "USD"), "KWD", Money(3225, "KWD")),  # 3.22455 KWD -> 3.225 (3 decimals)
        (Money(1001, "KWD"), "JPY", Money(489, "JPY")),  # 488.9885 -> 489
        (Money(3, "JPY"), "KWD", Money(6, "KWD")),  # 0.006 KWD exactly
        (Money(1050, "USD"), "USD", Money(1050, "USD")),
    ],
)
def test_fx_exact_across_exponents(core: ModuleType, amount: Money, to: str, expected: Money) -> None:
    engine = FeeEngine(fx=parse_fx(FX), core=core)
    assert engine.convert(amount, to) == expected == fee_reference.convert(parse_fx(FX), amount, to)


def test_fx_half_even_and_markup(core: ModuleType) -> None:
    engine = FeeEngine(fx=parse_fx({"JPY/USD": "0.005"}), core=core)
    # 1 yen = 0.5 cent -> 0 (even); 3 yen = 1.5 cents -> 2.
    assert [engine.convert(Money(a, "JPY"), "USD").minor_units for a in (1, 3, 5)] == [0, 2, 2]
    marked = FeeEngine(fx=parse_fx({"USD/EUR": "0.9231", "markup_percent": "1.5"}), core=core)
    # 100.00 x 0.9231 x 0.985 = 90.92535 EUR: the customer receives less, never more.
    assert marked.convert(Money(10000, "USD"), "EUR") == Money(9093, "EUR")
    with pytest.raises(fees.FxRateMissing):
        marked.convert(Money(10000, "EUR"), "USD")


def test_fx_overflow(core: ModuleType) -> None:
    engine = FeeEngine(fx=parse_fx({"JPY/CLF": "10000000"}), core=core)
    with pytest.raises(MoneyOverflow):
        engine.convert(Money(INT64_MAX, "JPY"), "CLF")


CURRENCIES = ["JPY", "USD", "KWD", "CLF", "EUR"]


@st.composite
def fx_cases(draw: st.DrawFn) -> tuple[FxTable, Money, str]:
    base, quote = draw(st.lists(st.sampled_from(CURRENCIES), min_size=2, max_size=2, unique=True))
    rate = Decimal(draw(st.integers(1, 10**15))).scaleb(-8)
    markup = Decimal(draw(st.integers(0, 999_999))).scaleb(-4)
    table = parse_fx({f"{base}/{quote}": f"{rate:f}", "markup_percent": f"{markup:f}"})
    return table, Money(draw(_amounts()), base), quote


@given(case=fx_cases())
@PROPERTY
def test_fx_equals_reference(core: ModuleType, case: tuple[FxTable, Money, str]) -> None:
    table, amount, to = case
    assert _outcome(lambda: FeeEngine(fx=table, core=core).convert(amount, to)) == _outcome(
        lambda: fee_reference.convert(table, amount, to)
    )


# --- random schedules against the reference ----------------------------------------------------------------------


def _amounts() -> st.SearchStrategy[int]:
    return st.one_of(
        st.integers(0, 10**6),
        st.integers(0, INT64_MAX),
        st.integers(INT64_MAX - 10**6, INT64_MAX),
        st.sampled_from([0, 1, INT64_MAX, INT64_MAX // 2, INT64_MAX // 100]),
    )


def _percent_text(scaled: int) -> str:
    return f"{Decimal(scaled).scaleb(-4):f}"


def _percents() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(0, 1_000_000).map(_percent_text), st.sampled_from(["0", "100", "50", "2.9", "33.3333", "0.0001"])
    )


def _minor() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, 10**5), st.integers(0, INT64_MAX))


def _cuts(draw: Callable[[st.SearchStrategy[list[int]]], list[int]], total: int, parts: int) -> list[int]:
    """parts non-negative integers summing to total."""
    points = sorted(draw(st.lists(st.integers(0, total), min_size=parts - 1, max_size=parts - 1)))
    return [b - a for a, b in zip([0, *points], [*points, total], strict=True)]


@st.composite
def share_trees(draw: st.DrawFn, depth: int = 0, top: bool = True) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 4)) if top else draw(st.integers(0, 3))
    # Children leave their parent a kept part: one more cut than there are children.
    scaled = _cuts(draw, 1_000_000, count if top else count + 1)[:count]
    tree: list[dict[str, Any]] = []
    for part in scaled:
        node: dict[str, Any] = {"party": "", "percent": _percent_text(part)}
        if depth < 2 and draw(st.booleans()):
            node["shares"] = draw(share_trees(depth + 1, top=False))
        tree.append(node)
    return tree


def _name_parties(tree: list[dict[str, Any]], counter: list[int]) -> None:
    for node in tree:
        node["party"] = f"party{counter[0]}"
        counter[0] += 1
        _name_parties(node.get("shares", []), counter)


@st.composite
def schedules(draw: st.DrawFn, name: str) -> dict[str, Any]:
    raw: dict[str, Any] = {"name": name, "percent": draw(_percents()), "fixed": draw(_minor())}
    raw["rounding"] = draw(st.sampled_from(["half_even", "half_up", "down", "up"]))
    for key, values in (("rail", ["card", "instant"]), ("merchant_id", ["m-1", "m-2"]), ("currency", ["USD", "JPY"])):
        if draw(st.booleans()):
            raw[key] = draw(st.sampled_from(values))
    if draw(st.booleans()):
        raw["cross_border_percent"] = draw(_percents())
    bounds = sorted(draw(st.lists(_minor(), min_size=2, max_size=2)))
    if draw(st.booleans()):
        raw["min"] = bounds[0]
    if draw(st.booleans()):
        raw["max"] = bounds[1]
    limits = sorted(set(draw(st.lists(_amounts(), max_size=3))))
    tiers: list[dict[str, Any]] = [{"up_to": u, "percent": draw(_percents()), "fixed": draw(_minor())} for u in limits]
    if draw(st.booleans()):
        tiers.append({"percent": draw(_percents()), "fixed": draw(_minor())})
    raw["tiers"] = tiers
    if draw(st.booleans()):
        tree = draw(share_trees())
        _name_parties(tree, [0])
        raw["shares"] = tree
    return raw


@st.composite
def requests(draw: st.DrawFn) -> QuoteRequest:
    countries = st.sampled_from(["", "US", "BR"])
    return QuoteRequest(
        merchant_id=draw(st.sampled_from(["m-1", "m-2"])),
        amount=Money(draw(_amounts()), draw(st.sampled_from(["USD", "JPY"]))),
        rail=draw(st.sampled_from(["card", "instant"])),
        card_country=draw(countries),
        merchant_country=draw(countries),
        settlement_currency=draw(st.sampled_from(["", "USD", "JPY", "KWD"])),
    )


FX_TABLE = parse_fx({"USD/JPY": "151.2345", "JPY/USD": "0.00661234", "USD/KWD": "0.3071", "JPY/KWD": "0.002"})


def _outcome(call: Any) -> Any:
    """The value, or the kind of error: overflow must be an error on both sides, never a number."""
    try:
        return call()
    except MoneyOverflow:
        return MoneyOverflow
    except LookupError:
        return LookupError


def _reference(raw_schedules: list[dict[str, Any]], request: QuoteRequest) -> Any:
    parsed = parse_fee_schedules(raw_schedules)
    return _outcome(
        lambda: fee_reference.quote(
            parsed,
            FX_TABLE,
            request.merchant_id,
            request.amount,
            request.rail,
            card_country=request.card_country,
            merchant_country=request.merchant_country,
            settlement_currency=request.settlement_currency,
        )
    )


@given(raw=st.lists(schedules("s"), min_size=1, max_size=3), batch=st.lists(requests(), min_size=1, max_size=8))
@PROPERTY
def test_engine_equals_reference(core: ModuleType, raw: list[dict[str, Any]], batch: list[QuoteRequest]) -> None:
    for index, schedule in enumerate(raw):
        schedule["name"] = f"s{index}"
    engine = FeeEngine(parse_fee_schedules(raw), FX_TABLE, core=core)
    expected = [_reference(raw, request) for request in batch]
    assert [_outcome(lambda r=r: engine.quote_many([r])[0]) for r in batch] == expected
    if not any(isinstance(e, type) for e in expected):
        assert engine.quote_many(batch) == expected


@given(raw=schedules("s"), amount=_amounts(), cross=st.booleans())
@PROPERTY
def test_shares_always_sum_to_the_fee(core: ModuleType, raw: dict[str, Any], amount: int, cross: bool) -> None:
    engine = FeeEngine(parse_fee_schedules([raw]), core=core)
    request = QuoteRequest(
        raw.get("merchant_id", "m-1"), Money(amount, raw.get("currency", "USD")), raw.get("rail", "card")
    )
    if cross:
        request = QuoteRequest(request.merchant_id, request.amount, request.rail, "US", "BR")
    outcome = _outcome(lambda: engine.quote_many([request])[0])
    if outcome is MoneyOverflow:
        return
    assert outcome.fee.minor_units >= 0
    if "shares" in raw:
        assert sum(part for _, part in outcome.shares) == outcome.fee.minor_units
        assert all(part >= 0 for _, part in outcome.shares)


@given(total=st.integers(0, INT64_MAX), data=st.data())
@PROPERTY
def test_largest_remainder_equals_reference(core: ModuleType, total: int, data: st.DataObject) -> None:
    scaled = _cuts(data.draw, 1_000_000, data.draw(st.integers(1, 6)))
    expected = fee_reference.allocate(total, [Decimal(p).scaleb(-4) for p in scaled])
    assert core.largest_remainder(total, scaled) == expected


# --- validation --------------------------------------------------------------------------------------------------

BAD_SCHEDULES: list[tuple[dict[str, Any], str]] = [
    (
        {"tiers": [{"up_to": 10000, "percent": "3.4"}, {"up_to": 10000, "percent": "2"}]},
        "fee_schedule[cards].tiers[1].up_to: must be greater than 10000",
    ),
    (
        {"tiers": [{"percent": "3.4"}, {"up_to": 5, "percent": "2"}]},
        "fee_schedule[cards].tiers[0].up_to: only the last tier",
    ),
    (
        {"shares": [{"party": "platform", "percent": "90"}]},
        "fee_schedule[cards].shares: percents must sum to 100, not 90",
    ),
    (
        {
            "shares": [
                {
                    "party": "a",
                    "percent": "100",
                    "shares": [{"party": "b", "percent": "60"}, {"party": "c", "percent": "40.5"}],
                }
            ]
        },
        "fee_schedule[cards].shares[0].shares: percents must sum to at most 100, not 100.5",
    ),
    (
        {"shares": [{"party": "a", "percent": "50"}, {"party": "a", "percent": "50"}]},
        "fee_schedule[cards].shares: party 'a' appears more than once",
    ),
    ({"shares": [{"party": "a", "percent": "100", "cut": 1}]}, "fee_schedule[cards].shares[0].cut: unknown key"),
    ({"percent": "2.12345"}, "fee_schedule[cards].percent: at most 4 decimals"),
    ({"percent": 2.9}, 'fee_schedule[cards].percent: must be a decimal string such as "2.9"'),
    ({"percent": "100.01"}, "fee_schedule[cards].percent: must be between 0 and 100"),
    ({"percent": "-1"}, "fee_schedule[cards].percent: must be between 0 and 100"),
    ({"cross_border_percent": "1e2"}, "fee_schedule[cards].cross_border_percent: must be a decimal string"),
    ({"min": 100, "max": 50}, "fee_schedule[cards].min: must be <= max (50), not 100"),
    ({"fixed": -1}, "fee_schedule[cards].fixed: must be an integer of minor units"),
    ({"max": 2**63}, "fee_schedule[cards].max: must be an integer of minor units"),
    ({"currency": "XXX"}, "fee_schedule[cards].currency: unknown ISO 4217 currency 'XXX'"),
    ({"rounding": "bankers"}, "fee_schedule[cards].rounding: must be one of half_even, half_up, down, up"),
    ({"colour": "red"}, "fee_schedule[cards].colour: unknown key"),
    ({"tiers": [{"up_to": 1, "percent": "1", "fee": 2}]}, "fee_schedule[cards].tiers[0].fee: unknown key"),
    ({"tiers": [{"up_to": 1, "percent": "101"}]}, "fee_schedule[cards].tiers[0].percent: must be between 0 and 100"),
    ({"name": ""}, "fee_schedule[0].name: must be a non-empty string"),
]


@pytest.mark.parametrize(("change", "message"), BAD_SCHEDULES, ids=[m for _, m in BAD_SCHEDULES])
def test_bad_schedules_name_schedule_and_key(change: dict[str, Any], message: str) -> None:
    raw = {"name": "cards", "percent": "2.9", **change}
    with pytest.raises(ConfigError) as error:
        parse_fee_schedules([raw])
    assert str(error.value).startswith(message), str(error.value)


def test_duplicate_schedule_names() -> None:
    with pytest.raises(ConfigError, match=r"^fee_schedule\[a\]\.name: duplicate"):
        parse_fee_schedules([{"name": "a"}, {"name": "a"}])


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"USD/XXX": "1"}, "fx.USD/XXX: unknown currency 'XXX'"),
        ({"USD/USD": "1"}, "fx.USD/USD: a rate needs two different currencies"),
        ({"USD/EUR": 0.9}, 'fx.USD/EUR: must be a decimal string such as "2.9"'),
        ({"USD/EUR": "0"}, "fx.USD/EUR: must be > 0"),
        ({"USD/EUR": "0.123456789"}, "fx.USD/EUR: at most 8 decimals"),
        ({"USD/EUR": "10000001"}, "fx.USD/EUR: must be > 0 and <= 10000000"),
        ({"markup_percent": "100"}, "fx.markup_percent: must be >= 0 and < 100"),
        ({"rates": {}}, "fx.rates: unknown key"),
    ],
)
def test_bad_fx_names_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_fx(raw)
    assert str(error.value).startswith(message), str(error.value)


def test_parsed_schedule_values() -> None:
    (schedule,) = parse_fee_schedules([WORKED_EXAMPLE])
    assert schedule.percent == Decimal("2.9")
    assert schedule.rounding is fees.Rounding.HALF_EVEN
    assert schedule.tiers[1] == fees.Tier(up_to=None, percent=Decimal("2.5"), fixed=20)
    assert [s.party for s in schedule.shares[1].shares] == ["agent"]
    table = parse_fx({"USD/EUR": "0.9231", "markup_percent": "1.5"})
    assert table.find("USD", "EUR") == fees.FxRate("USD", "EUR", Decimal("0.9231"))
    assert table.find("EUR", "USD") is None
