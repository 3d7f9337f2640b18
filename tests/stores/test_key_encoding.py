"""Properties of how the Redis stores write identifiers into key names: injective,
free of the characters that delimit a name's parts, and a no-op on plain ids."""

from __future__ import annotations

import itertools
from urllib.parse import unquote

from hypothesis import given
from hypothesis import strategies as st

from switch.stores import redis
from switch.stores.base import Claim, Completion, Counter
from switch.stores.redis import KeyLayout, encode_id, encode_subject

DELIMITERS = "{}:"
# Mostly the characters that matter (delimiters, '%', what an escape is spelt with),
# and any other character UTF-8 holds (what protobuf strings hold), non-ASCII included.
nasty = st.text(st.sampled_from("{}:%7BDA3a25i") | st.characters(codec="utf-8"), max_size=12)
plain = st.text(st.sampled_from("abcxyzABCXYZ0123456789._-"), max_size=40)


@given(nasty)
def test_an_encoded_id_holds_no_delimiter_and_decodes_back(value: str) -> None:
    encoded = encode_id(value)
    assert not set(encoded) & set(DELIMITERS)
    assert unquote(encoded, errors="strict") == value  # a left inverse: injective


@given(nasty, nasty)
def test_two_ids_share_an_encoding_only_when_equal(first: str, second: str) -> None:
    assert (encode_id(first) == encode_id(second)) == (first == second)


def test_no_two_short_strings_of_the_escaped_characters_share_an_encoding() -> None:
    words = ["".join(chars) for n in range(5) for chars in itertools.product("%{}:7D", repeat=n)]
    assert len({encode_id(word) for word in words}) == len(words)


@given(plain)
def test_a_plain_id_is_written_as_it_is(value: str) -> None:
    assert encode_id(value) is value  # nothing to copy either


@given(nasty)
def test_a_subject_keeps_its_kind_and_encodes_the_rest(subject: str) -> None:
    encoded = encode_subject(subject)
    kind, colon, rest = encoded.partition(":")
    assert ":" not in rest and not set(encoded) & set("{}")
    decoded = unquote(kind) + colon + unquote(rest)
    assert decoded == subject
    if ":" in subject:
        assert encode_subject(subject) == encode_id(subject.partition(":")[0]) + ":" + encode_id(
            subject.partition(":")[2]
        )


@given(nasty, nasty, nasty, nasty)
def test_the_layout_never_gives_two_things_one_key(m1: str, k1: str, m2: str, k2: str) -> None:
    layout = KeyLayout("sw", 600, 30)
    assert (layout.idempotency_key(m1, k1) == layout.idempotency_key(m2, k2)) == ((m1, k1) == (m2, k2))
    first, second = Counter(m1, k1, 60, 1, False), Counter(m2, k2, 60, 1, False)
    assert (layout.counter_key(first) == layout.counter_key(second)) == ((m1, k1) == (m2, k2))
    assert layout.idempotency_key(m1, k1) != layout.counter_key(second)


@given(
    st.lists(nasty, min_size=2, max_size=4),
    st.lists(st.sampled_from(["}:i:", "}:v:"]), min_size=1, max_size=3),
)
def test_no_two_readings_of_one_concatenated_name_share_a_key(parts: list[str], marks: list[str]) -> None:
    # Concatenated, "sw:{m:" + text named the key of every way of cutting text at a
    # "}:i:" into (merchant, key), and the counter of every cut at a "}:v:" into (the
    # merchant's subject, name): one name for them all.
    text = parts[0] + "".join(mark + part for mark, part in zip(marks, parts[1:], strict=False))
    layout = KeyLayout("sw", 600, 30)
    names = []
    for at in range(len(text)):
        before, mark, after = text[:at], text[at : at + 4], text[at + 4 :]
        if mark == "}:i:":
            names.append(layout.idempotency_key(before, after))
        elif mark == "}:v:":
            names.append(layout.counter_key(Counter("m:" + before, after, 60, 1, False)))
    assert len(set(names)) == len(names)


ids = plain | nasty


@given(st.lists(st.tuples(ids, ids, st.sampled_from(["h", "h:1"]), ids, ids), max_size=6))
def test_a_batch_is_packed_as_if_every_id_were_encoded(items: list[tuple[str, str, str, str, str]]) -> None:
    # The packers skip encoding a batch whose packed ids hold nothing to escape: that
    # must never change what is sent.
    claims = [
        Claim(merchant, key, hash_, 1, (Counter(f"i:{card}", f"c60:{name}", 60, 5, False),))
        for merchant, key, hash_, card, name in items
    ]
    for counters_only in (False, True):
        assert redis.pack_claims(claims, counters_only) == redis._pack_claims(claims, counters_only, encode=True)
    completions = [Completion(c.merchant_id, c.idempotency_key, c.request_hash, b"r", 1, c.counters) for c in claims]
    assert redis.pack_completions(completions) == redis._pack_completions(completions, None, encode=True)
