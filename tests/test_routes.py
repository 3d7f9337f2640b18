"""Routing rules: matchers, first-match order, the default, weights, the BIN table
and configuration errors naming their key."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from switch.config import ConfigError
from switch.config.routing import check_routes, load_bin_table, parse_routing
from switch.domain.models import Account, Authorization, Card, Money, Token
from switch.routing.breaker import BreakerSettings
from switch.routing.rules import BinRange, BinTable, OrderBy, RoutingTable

BINS = Path(__file__).parent / "data" / "bins.csv"
VISA = Card("4111111111111111", 12, 2030)


def auth(
    source: Card | Account | Token = VISA, amount: int = 1000, currency: str = "USD", merchant: str = "m-1"
) -> Authorization:
    return Authorization("k-1", merchant, Money(amount, currency), source)


def rule(name: str = "r", routes: tuple[str, ...] = ("a", "b"), **match: Any) -> dict[str, Any]:
    return {"name": name, "candidates": [{"route": r} for r in routes], **match}


def table(*rules: dict[str, Any], bins: BinTable | None = None, **routing: Any) -> RoutingTable:
    return parse_routing({"rules": list(rules), **routing}, bins, random.Random(7))


@pytest.fixture(scope="module")
def bins() -> BinTable:
    return load_bin_table(BINS)


# --- the default equals the router of today ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "route"),
    [
        (VISA, "card"),
        (Token("4111119999991112"), "card"),
        (Account("instant", "+5511999990000"), "instant"),
        (Account("pix", "x"), "pix"),
        (Account("sepa", "y"), "sepa"),
    ],
)
def test_empty_config_routes_cards_to_card_accounts_to_their_rail(source: Card | Account | Token, route: str) -> None:
    assert parse_routing({}, None).candidates(auth(source), "411111") == [route]


def test_no_matching_rule_falls_back_to_the_default() -> None:
    routing = table(rule(currency="EUR"))
    assert routing.candidates(auth(), "411111") == ["card"]
    assert routing.candidates(auth(Account("pix", "x")), None) == ["pix"]


# --- matchers ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("match", "authorization", "card_bin", "expected"),
    [
        ({"source": "card"}, auth(), "411111", True),
        ({"source": "card"}, auth(Token("4111119999991112")), "411111", True),
        ({"source": "card"}, auth(Account("pix", "x")), None, False),
        ({"source": "account"}, auth(Account("pix", "x")), None, True),
        ({"source": "account"}, auth(), "411111", False),
        ({"rail": "pix"}, auth(Account("pix", "x")), None, True),
        ({"rail": "pix"}, auth(Account("instant", "x")), None, False),
        ({"rail": "pix"}, auth(), "411111", False),
        ({"bin_ranges": ["400000-411111"]}, auth(), "411111", True),
        ({"bin_ranges": ["400000-411110"]}, auth(), "411111", False),
        ({"bin_ranges": ["411111"]}, auth(), "411111", True),
        ({"bin_ranges": ["300000-399999", "411111-411112"]}, auth(), "411111", True),
        ({"bin_ranges": ["400000-499999"]}, auth(), None, False),
        ({"bin_ranges": ["400000-499999"]}, auth(Account("pix", "400000")), "400000", False),
        ({"currency": "USD"}, auth(), "411111", True),
        ({"currency": "USD"}, auth(currency="EUR"), "411111", False),
        ({"min_amount": 1000}, auth(amount=1000), "411111", True),
        ({"min_amount": 1000}, auth(amount=999), "411111", False),
        ({"max_amount": 1000}, auth(amount=1000), "411111", True),
        ({"max_amount": 1000}, auth(amount=1001), "411111", False),
        ({"merchant_id": "m-1"}, auth(), "411111", True),
        ({"merchant_id": "m-2"}, auth(), "411111", False),
        ({"currency": "USD", "max_amount": 5000, "source": "card"}, auth(amount=5000), "411111", True),
        ({"currency": "USD", "max_amount": 5000, "source": "card"}, auth(amount=5001), "411111", False),
    ],
)
def test_each_matcher(
    match: dict[str, Any], authorization: Authorization, card_bin: str | None, expected: bool
) -> None:
    candidates = table(rule(**match)).candidates(authorization, card_bin)
    assert (candidates == ["a", "b"]) is expected


@pytest.mark.parametrize(
    ("card_bin", "expected"),
    [("412345", ["a", "b"]), ("510000", ["a", "b"]), ("411111", ["card"]), ("999999", ["card"]), (None, ["card"])],
)
def test_card_country_comes_from_the_bin_table(bins: BinTable, card_bin: str | None, expected: list[str]) -> None:
    routing = table(rule(card_country="BR"), bins=bins)
    assert routing.candidates(auth(), card_bin) == expected


def test_the_first_matching_rule_wins() -> None:
    routing = table(
        rule("small", ("small-a",), max_amount=100),
        rule("usd", ("usd-a", "usd-b"), currency="USD"),
        rule("all", ("any",)),
    )
    assert routing.candidates(auth(amount=50), "411111") == ["small-a"]
    assert routing.candidates(auth(amount=500), "411111") == ["usd-a", "usd-b"]
    assert routing.candidates(auth(amount=500, currency="EUR"), "411111") == ["any"]


def test_candidates_keep_their_order_as_the_failover_order() -> None:
    assert table(rule(routes=("c", "a", "b"))).candidates(auth(), "411111") == ["c", "a", "b"]


# --- weights ----------------------------------------------------------------------------------------------------


def weighted(*candidates: tuple[str, int | None]) -> dict[str, Any]:
    return {
        "name": "w",
        "candidates": [{"route": r} if w is None else {"route": r, "weight": w} for r, w in candidates],
    }


def test_weights_split_the_first_pick() -> None:
    routing = table(weighted(("card-a", 70), ("card-b", 30), ("card-c", None)))
    firsts = Counter(routing.candidates(auth(), "411111")[0] for _ in range(10_000))
    assert set(firsts) == {"card-a", "card-b"}
    assert abs(firsts["card-a"] / 10_000 - 0.70) < 0.02
    assert abs(firsts["card-b"] / 10_000 - 0.30) < 0.02


def test_the_rest_follow_in_order_after_the_weighted_pick() -> None:
    routing = table(weighted(("a", 1), ("b", 1), ("c", 1), ("d", None), ("e", None)))
    seen = {tuple(routing.candidates(auth(), "411111")) for _ in range(200)}
    assert seen == {("a", "b", "c", "d", "e"), ("b", "a", "c", "d", "e"), ("c", "a", "b", "d", "e")}


def test_one_weighted_candidate_is_always_first() -> None:
    routing = table(weighted(("a", 5), ("b", None)))
    assert {tuple(routing.candidates(auth(), "411111")) for _ in range(50)} == {("a", "b")}


def test_a_seeded_random_repeats_its_picks() -> None:
    config = {"rules": [weighted(("a", 1), ("b", 1))]}
    first = parse_routing(config, None, random.Random(3))
    second = parse_routing(config, None, random.Random(3))
    assert [first.candidates(auth(), None)[0] for _ in range(100)] == [
        second.candidates(auth(), None)[0] for _ in range(100)
    ]


# --- the BIN table ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("card_bin", "expected"),
    [
        ("400000", BinRange(400000, 409999, "visa", "US", "credit")),  # low bound
        ("409999", BinRange(400000, 409999, "visa", "US", "credit")),  # high bound
        ("410000", None),  # between ranges
        ("411111", BinRange(411111, 411111, "visa", "US", "debit")),  # a one-BIN range
        ("411110", None),
        ("411112", None),
        ("399999", None),  # below the first
        ("650999", BinRange(650000, 650999, "elo", "BR", "debit")),  # the last high bound
        ("651000", None),  # above the last
    ],
)
def test_bin_lookup(bins: BinTable, card_bin: str, expected: BinRange | None) -> None:
    assert bins.find(int(card_bin)) == expected


def test_an_empty_bin_table_finds_nothing() -> None:
    assert BinTable([]).find(400000) is None


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bins.csv"
    path.write_text(text)
    return path


HEADER = "low,high,scheme,country,type\n"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("400000,409999,visa,US,credit\n405000,405999,visa,BR,debit\n", "line 3: its range overlaps line 2"),
        ("405000,405999,visa,BR,debit\n400000,409999,visa,US,credit\n", "line 3: its range overlaps line 2"),
        ("400000,409999,visa,US,credit\n409999,419999,visa,BR,debit\n", "line 3: its range overlaps line 2"),
        ("400000,409999,visa,US\n", "line 2: expected 5 columns, found 4"),
        ("40000,409999,visa,US,credit\n", "line 2: '40000' is not a 6-digit BIN"),
        ("409999,400000,visa,US,credit\n", "line 2: low 409999 is above high 400000"),
        ("400000,409999,visa,usa,credit\n", "line 2: country 'usa' is not an ISO 3166 alpha-2 code"),
    ],
)
def test_bad_bin_tables_name_the_line(tmp_path: Path, rows: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_bin_table(write(tmp_path, HEADER + rows))


def test_adjacent_ranges_do_not_overlap(tmp_path: Path) -> None:
    loaded = load_bin_table(write(tmp_path, HEADER + "400000,409999,visa,US,credit\n410000,419999,visa,BR,debit\n"))
    assert len(loaded) == 2
    assert loaded.find(410000) == BinRange(410000, 419999, "visa", "BR", "debit")


def test_a_bin_table_needs_its_header(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="line 1: the header must be low,high,scheme,country,type"):
        load_bin_table(write(tmp_path, "400000,409999,visa,US,credit\n"))


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    assert len(load_bin_table(write(tmp_path, HEADER + "\n400000,409999,visa,US,credit\n\n"))) == 1


def test_a_missing_bin_table_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"routing.bin_table: .*missing\.csv"):
        load_bin_table(tmp_path / "missing.csv")


def test_bin_table_built_in_code_refuses_overlaps() -> None:
    with pytest.raises(ValueError, match="overlaps"):
        BinTable([BinRange(1, 10, "x", "US", "credit"), BinRange(10, 20, "x", "US", "credit")])


# --- configuration ----------------------------------------------------------------------------------------------


def test_the_full_example_parses(bins: BinTable) -> None:
    routing = table(
        {
            "name": "br-pix",
            "source": "account",
            "rail": "pix",
            "currency": "BRL",
            "min_amount": 0,
            "max_amount": 1_000_000,
            "merchant_id": "m-1",
            "candidates": [{"route": "pix-a"}],
        },
        {
            "name": "br-cards",
            "source": "card",
            "bin_ranges": ["400000-499999"],
            "card_country": "BR",
            "candidates": [{"route": "card-a", "weight": 70}, {"route": "card-b", "weight": 30}, {"route": "card-c"}],
        },
        bins=bins,
        bin_table="bins.csv",
        order_by="cost",
        breaker={"failures": 3, "window": 10, "timeout_rate": 0.3, "cool_down_seconds": 5, "probes": 2},
    )
    assert routing.order_by is OrderBy.COST
    assert routing.breaker == BreakerSettings(3, 10, 0.3, 5.0, 2)
    assert [r.name for r in routing.rules] == ["br-pix", "br-cards"]
    assert routing.candidates(auth(Account("pix", "x"), currency="BRL"), None) == ["pix-a"]
    assert routing.candidates(auth(), "412345")[2] == "card-c"


def test_order_by_defaults_to_rules() -> None:
    assert parse_routing({}, None).order_by is OrderBy.RULES


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        ({"color": "red"}, "routing.color: unknown key"),
        ({"order_by": "speed"}, "routing.order_by: must be one of rules, success_rate, cost"),
        ({"bin_table": 3}, "routing.bin_table: must be a non-empty string"),
        ({"rules": {"name": "x"}}, r"routing.rules: must be an array of tables"),
        ({"rules": [rule(), {"candidates": [{"route": "a"}]}]}, "routing.rules.1..name: must be a non-empty string"),
        ({"rules": [rule(), rule()]}, r"routing.rules\[1\].name: duplicate rule name 'r'"),
        ({"rules": [rule(colour="x")]}, r"routing.rules\[0\].colour: unknown key"),
        ({"rules": [rule(source="wire")]}, r"routing.rules\[0\].source: must be one of 'card', 'account'"),
        ({"rules": [rule(rail="")]}, r"routing.rules\[0\].rail: must be a non-empty string"),
        ({"rules": [rule(rail="pix", source="card")]}, r"routing.rules\[0\].rail: only accounts have a rail"),
        ({"rules": [rule(bin_ranges=["400000"], rail="pix")]}, r"routing.rules\[0\].bin_ranges: only cards"),
        ({"rules": [rule(bin_ranges=["4000-5000"])]}, r"routing.rules\[0\].bin_ranges\[0\]: must be \"NNNNNN-NNNNNN\""),
        ({"rules": [rule(bin_ranges=["500000-400000"])]}, r"routing.rules\[0\].bin_ranges\[0\]: 500000 is above"),
        ({"rules": [rule(bin_ranges="400000")]}, r"routing.rules\[0\].bin_ranges: must be an array"),
        ({"rules": [rule(bin_ranges=[400000])]}, r"routing.rules\[0\].bin_ranges\[0\]: must be"),
        ({"rules": [rule(card_country="BR")]}, r"routing.rules\[0\].card_country: needs routing.bin_table"),
        ({"rules": [rule(currency="XXX")]}, r"routing.rules\[0\].currency: unknown ISO 4217 currency 'XXX'"),
        ({"rules": [rule(min_amount=-1)]}, r"routing.rules\[0\].min_amount: must be an integer of minor units >= 0"),
        ({"rules": [rule(max_amount=1.5)]}, r"routing.rules\[0\].max_amount: must be an integer"),
        ({"rules": [rule(min_amount=10, max_amount=5)]}, r"routing.rules\[0\].min_amount: must be <= max_amount"),
        ({"rules": [rule(merchant_id=7)]}, r"routing.rules\[0\].merchant_id: must be a non-empty string"),
        ({"rules": [{"name": "x"}]}, r"routing.rules\[0\].candidates: must be a non-empty array"),
        ({"rules": [{"name": "x", "candidates": []}]}, r"routing.rules\[0\].candidates: must be a non-empty array"),
        ({"rules": [{"name": "x", "candidates": ["a"]}]}, r"routing.rules\[0\].candidates\[0\]: must be a table"),
        ({"rules": [{"name": "x", "candidates": [{}]}]}, r"routing.rules\[0\].candidates\[0\].route: must be"),
        (
            {"rules": [{"name": "x", "candidates": [{"route": "a", "cost": 1}]}]},
            r"routing.rules\[0\].candidates\[0\].cost: unknown key",
        ),
        (
            {"rules": [{"name": "x", "candidates": [{"route": "a"}, {"route": "a"}]}]},
            r"routing.rules\[0\].candidates\[1\].route: 'a' appears more than once",
        ),
        (
            {"rules": [rule(), rule("s", candidates=[{"route": "a", "weight": 0}])]},
            r"routing.rules\[1\].candidates\[0\].weight: must be an integer >= 1",
        ),
        (
            {"rules": [rule(candidates=[{"route": "a", "weight": True}])]},
            r"routing.rules\[0\].candidates\[0\].weight: must be an integer >= 1",
        ),
        (
            {"rules": [rule(candidates=[{"route": "a"}, {"route": "b", "weight": 3}])]},
            r"routing.rules\[0\].candidates\[1\].weight: only the leading candidates may have weights",
        ),
        ({"breaker": {"failures": 0}}, r"routing.breaker.failures: must be an integer >= 1"),
        ({"breaker": {"timeout_rate": 1.5}}, r"routing.breaker.timeout_rate: must be <= 1"),
        ({"breaker": {"cool_down_seconds": -1}}, r"routing.breaker.cool_down_seconds: must be a number >= 0"),
        ({"breaker": {"probes": "2"}}, r"routing.breaker.probes: must be an integer >= 1"),
        ({"breaker": {"window": 5, "delay": 1}}, r"routing.breaker.delay: unknown key"),
        ({"breaker": 3}, r"routing.breaker: must be a table"),
    ],
)
def test_config_errors_name_the_key(routing: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_routing(routing, None)


def test_check_routes_names_an_unknown_route() -> None:
    routing = table(rule(routes=("a",)), rule("second", ("a", "nowhere")))
    check_routes(routing, {"a", "nowhere"})
    with pytest.raises(ConfigError, match=r"routing.rules\[1\].candidates\[1\].route: unknown route 'nowhere'"):
        check_routes(routing, {"a"})
