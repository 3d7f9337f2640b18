"""Sanctions name screening: normalisation, the score's properties (watchman issues 115 and
483 among them), and the index finding what comparing every listed name finds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from switch.risk.sanctions.matching import FLOOR, HIT, REVIEW, Match, Screener, similarity
from switch.risk.sanctions.normalize import key, tokens


def test_diacritics_and_case_are_folded() -> None:
    assert tokens("José MÜLLER-Lüdenscheidt") == ("jose", "muller", "ludenscheidt")
    assert tokens("François Øster") == ("francois", "oster")


def test_cyrillic_and_greek_are_transliterated() -> None:
    assert tokens("Александр Петров") == ("aleksandr", "petrov")
    assert tokens("Γιώργος Παπαδόπουλος") == ("giorgos", "papadopoylos")  # anyascii spells upsilon "y"


def test_last_first_is_reordered() -> None:
    assert tokens("PETROV, Aleksandr Ivanovich") == ("aleksandr", "ivanovich", "petrov")
    assert key("SMITH, John") == key("John Smith") == "john smith"
    assert tokens("A, B, C") == ("a", "b", "c")  # not one comma: left in order


def test_legal_suffixes_honorifics_and_stop_words_are_dropped() -> None:
    assert tokens("Golden Star Trading Co., Ltd.") == ("golden", "star")
    assert tokens("Banco Nacional S.A.") == ("banco", "nacional")
    assert tokens("OOO Romashka") == ("romashka",)
    assert tokens("Dr. Ayman al-Zawahiri") == ("ayman", "zawahiri")
    assert tokens("The Bank of Kunlun PLC") == ("bank", "kunlun")
    assert tokens("Trading Company") == ("trading", "company")  # nothing else left: kept


def test_punctuation_becomes_spaces_and_apostrophes_vanish() -> None:
    assert tokens("O'Brien-Smith, (Mary)  J.") == ("mary", "j", "obrien", "smith")
    assert tokens("  ") == ()


def test_an_exact_name_scores_one() -> None:
    assert similarity("Aleksandr Ivanovich Petrov", "PETROV, Aleksandr Ivanovich") == 1.0
    assert Screener([("P1", ["Kim Jong Un"])]).best("KIM JONG UN") == Match(1.0, "P1", "Kim Jong Un")


def test_token_order_is_irrelevant() -> None:
    assert similarity("Petrov Ivanovich Aleksandr", "Aleksandr Ivanovich Petrov") == 1.0


def test_each_token_is_matched_once() -> None:
    assert similarity("JOHN JOHN", "JOHN SMITH") < REVIEW
    assert similarity("JOHN SMITH", "JOHN JOHN") < REVIEW


def test_a_short_name_does_not_match_inside_a_long_one() -> None:
    """watchman issue 115: a short query scored high against any long name holding it."""
    listed = ["AL ZAWAHIRI, Ayman Muhammad Rabi", "Han Xiao Ming Wei", "Banco Han International Holdings"]
    for query in ("AL", "HAN", "Han Wei"):
        for name in listed:
            assert similarity(query, name) < REVIEW, (query, name)
    screener = Screener([(str(n), [name]) for n, name in enumerate(listed)])
    assert screener.best("AL") is None
    assert screener.best("HAN") is None


def test_a_shared_generic_word_is_not_a_match() -> None:
    """watchman issue 483: names sharing only a suffix-like word matched."""
    assert similarity("ACME CORP", "ZETA CORP") < REVIEW
    assert similarity("ACME CORP", "ZETA TRADING CORPORATION") < REVIEW
    assert similarity("Acme Trading LLC", "Zeta Trading Company Limited") < REVIEW
    assert Screener([("Z", ["ZETA TRADING CORPORATION"])]).best("ACME CORP") is None


def test_a_typo_of_a_listed_name_is_a_hit() -> None:
    screener = Screener([("P1", ["KHALIL, Anwar Bilal Saeed"]), ("P2", ["Kunlun Energy Holdings Ltd"])])
    for query, uid in (
        ("Anwar Bilal Saeed Khalil", "P1"),
        ("Anwar Bilal Saeed Kahlil", "P1"),
        ("Kunlum Energy Holdings", "P2"),
    ):
        match = screener.best(query)
        assert match is not None and match.uid == uid and match.score >= HIT, (query, match)


def test_transliteration_variants_match() -> None:
    assert similarity("Muhammad Yusuf Hasan", "Mohammed Youssef Hassan") >= HIT
    assert similarity("Alexander Petrov", "Александр Петров") >= HIT


def test_a_missing_middle_name_still_matches() -> None:
    assert similarity("Aleksandr Petrov", "Aleksandr Ivanovich Petrov") >= REVIEW


def test_the_thresholds_are_ordered() -> None:
    assert 0 < FLOOR < REVIEW < HIT < 1


# A small list whose tokens overlap a lot, and queries built from its tokens with edits,
# so that the index has near-misses to get right.
WORDS = ["mohammed", "muhammad", "ali", "hassan", "hasan", "petrov", "petrova", "li", "lin", "wei", "wen",
         "golden", "star", "acme", "zeta", "ivan", "ivanov", "yusuf", "youssef", "xiaoming"]  # fmt: skip
LIST = [
    ("P1", ["Mohammed Ali Hassan", "Abu Ali"]),
    ("P2", ["PETROV, Ivan", "Ivan Ivanov Petrov"]),
    ("P3", ["Li Wei", "Lin Wen"]),
    ("P4", ["Golden Star Trading LLC"]),
    ("P5", ["Yusuf Hasan", "Muhammad Yusuf"]),
    ("P6", ["Zeta Corp", "Acme Zeta"]),
    ("P7", ["Xiaoming Li", "Petrova Ivanova"]),
    ("P8", ["Wei"]),
]


def _reference_best(screener_list: list[tuple[str, list[str]]], name: str) -> Match | None:
    """Every listed name scored; the first of the best in list order, if it reaches FLOOR."""
    best: Match | None = None
    for uid, names in screener_list:
        seen: set[str] = set()
        for published in names:
            if key(published) in seen:
                continue
            seen.add(key(published))
            score = similarity(name, published)
            if score >= FLOOR and (best is None or score > best.score):
                best = Match(score, uid, published)
    return best


def _edited(draw: st.DrawFn) -> str:
    word = draw(st.sampled_from(WORDS))
    edit = draw(st.sampled_from(["none", "sub", "ins", "del", "swap"]))
    i = draw(st.integers(0, len(word) - 1))
    letter = draw(st.sampled_from("aeiouhnsy"))
    if edit == "sub":
        return word[:i] + letter + word[i + 1 :]
    if edit == "ins":
        return word[:i] + letter + word[i:]
    if edit == "del" and len(word) > 1:
        return word[:i] + word[i + 1 :]
    if edit == "swap" and i + 1 < len(word):
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word


@st.composite
def query_names(draw: st.DrawFn) -> str:
    return " ".join(_edited(draw) for _ in range(draw(st.integers(1, 4))))


@settings(max_examples=300, deadline=None)
@given(st.lists(query_names(), min_size=1, max_size=12))
def test_the_index_finds_what_comparing_every_name_finds(names: list[str]) -> None:
    screener = Screener(LIST)
    expected = [_reference_best(LIST, name) for name in names]
    assert screener.best_many(names) == expected
    assert [screener.best(name) for name in names] == expected


def test_best_many_of_nothing_and_of_blanks() -> None:
    screener = Screener(LIST)
    assert screener.best_many([]) == []
    assert screener.best_many(["", "  ", "LLC"]) == [None, None, None]
