"""Card tokens (FF1, key rotation), key rings from configuration, and the tokenizer's older duties.

Token tests run with both FF1 implementations (the parameter `make`); the
exhaustive bijection check, 100,000 PANs, runs on the compiled one only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.cards import ff1
from switch.cards.ff1 import CipherFactory, ReferenceFF1
from switch.cards.luhn import luhn_valid, reference_luhn_valid
from switch.cards.tokenizer import CardToken, KeyRing, Tokenizer
from switch.config import ConfigError
from switch.config.keys import parse_key_ring, write_key_file
from switch.domain.errors import InvalidRequest
from switch.domain.models import Account, Card, Instrument, InstrumentKind, Token, mask_account, mask_pan

FINGERPRINT_KEY = b"f" * 32
K1 = bytes(range(16))
K2 = bytes(range(100, 132))
K1_HEX, K2_HEX = K1.hex(), K2.hex()
RING = KeyRing({"k1": K1}, "k1")
ROTATED = KeyRing({"k1": K1, "k2": K2}, "k2")
compiled_only = pytest.mark.skipif(ff1.CompiledFF1 is None, reason="cext not built or SWITCH_NO_EXTENSIONS=1")
each_implementation = pytest.mark.parametrize(
    "make",
    [pytest.param(ff1.CompiledFF1, id="compiled", marks=compiled_only), pytest.param(ReferenceFF1, id="reference")],
)


def with_check_digit(digits: str) -> str:
    """digits plus the Luhn check digit that makes the whole valid."""
    for check in "0123456789":
        if reference_luhn_valid(digits + check):
            return digits + check
    raise AssertionError("unreachable: one check digit always fits")


@st.composite
def pans(draw: st.DrawFn) -> str:
    length = draw(st.integers(12, 19))
    return with_check_digit(draw(st.text(alphabet="0123456789", min_size=length - 1, max_size=length - 1)))


def head_length(length: int) -> int:
    return {12: 2, 13: 3, 14: 4, 15: 5}.get(length, 6)


def field_of(error: InvalidRequest) -> set[str]:
    return {violation.field for violation in error.violations}


class IdentityCipher:
    """The worst permutation for a cycle-walk: every point is its own cycle."""

    def encrypt(self, tweak: bytes, text: str, radix: int = 10) -> str:
        return text

    def decrypt(self, tweak: bytes, text: str, radix: int = 10) -> str:
        return text


# ---- card tokens ----


@each_implementation
@settings(max_examples=80, deadline=None)
@given(pans())
def test_token_keeps_format_fails_luhn_and_detokenizes(make: CipherFactory, pan: str) -> None:
    tokenizer = Tokenizer(FINGERPRINT_KEY, RING, cipher=make)
    token = tokenizer.tokenize(Card(pan, 12, 2030))
    head = head_length(len(pan))
    assert len(token.token) == len(pan) and token.token.isdigit()
    assert token.token[:head] == pan[:head]
    assert token.token[-4:] == pan[-4:]
    assert len(pan) - head - 4 >= 6  # never fewer than 6 encrypted digits
    assert not reference_luhn_valid(token.token)
    assert token.key_id == "k1"
    assert token.masked == mask_pan(pan)
    assert tokenizer.detokenize(Token(token.token)) == Card(pan, 0, 0)
    assert tokenizer.detokenize(Token(token.token), "k1").pan == pan


@each_implementation
def test_same_pan_and_key_give_the_same_token(make: CipherFactory) -> None:
    card = Card("4111111111111111", 12, 2030)
    first = Tokenizer(FINGERPRINT_KEY, RING, cipher=make).tokenize(card)
    again = Tokenizer(b"other fingerprint key", RING, cipher=make).tokenize(Card(card.pan, 1, 2031, "A HOLDER"))
    assert first == again
    assert first.token.startswith("411111") and first.token.endswith("1111") and first.token != card.pan


def test_both_implementations_issue_the_same_tokens() -> None:
    if ff1.CompiledFF1 is None:
        pytest.skip("cext not built")
    rng = random.Random(3)
    compiled = Tokenizer(FINGERPRINT_KEY, ROTATED, cipher=ff1.CompiledFF1)
    reference = Tokenizer(FINGERPRINT_KEY, ROTATED, cipher=ReferenceFF1)
    for _ in range(200):
        length = rng.randint(12, 19)
        card = Card(with_check_digit("".join(rng.choice("0123456789") for _ in range(length - 1))), 1, 2030)
        assert compiled.tokenize(card) == reference.tokenize(card)


@each_implementation
@pytest.mark.parametrize(("length", "head"), [(12, 2), (13, 3), (14, 4), (15, 5), (16, 6), (17, 6), (18, 6), (19, 6)])
def test_short_card_policy(make: CipherFactory, length: int, head: int) -> None:
    """min(6, length - 10) leading digits stay: at least 6 are encrypted, as mask_pan hides them."""
    pan = with_check_digit("4000123456789012345"[: length - 1])
    token = Tokenizer(FINGERPRINT_KEY, RING, cipher=make).tokenize(Card(pan, 1, 2030))
    assert token.token[:head] == pan[:head]
    assert token.token[-4:] == pan[-4:]
    assert len(token.token) - head - 4 >= 6
    assert token.masked.count("*") == len(pan) - head - 4
    assert token.masked == mask_pan(pan)


@compiled_only
def test_tokens_are_a_bijection_on_every_pan_of_a_bin_and_last_four() -> None:
    """All 100,000 Luhn-valid PANs 411111 xxxxx? 1111: 100,000 distinct Luhn-failing tokens that invert."""
    assert ff1.CompiledFF1 is not None
    tokenizer = Tokenizer(FINGERPRINT_KEY, RING, cipher=ff1.CompiledFF1)
    tokens = set()
    for serial in range(100_000):
        # The middle's last digit is the one that makes the PAN valid (the check digit is in the kept 4).
        pan = next(p for d in "0123456789" if luhn_valid(p := f"411111{serial:05d}{d}1111"))
        token = tokenizer.tokenize(Card(pan, 1, 2030)).token
        assert token[:6] == "411111" and token[-4:] == "1111" and not luhn_valid(token)
        assert tokenizer.detokenize(Token(token)).pan == pan
        tokens.add(token)
    assert len(tokens) == 100_000


@each_implementation
def test_sampled_bijection_on_a_short_card(make: CipherFactory) -> None:
    tokenizer = Tokenizer(FINGERPRINT_KEY, RING, cipher=make)
    rng = random.Random(11)
    pans = {with_check_digit(f"401{rng.randrange(10**5):05d}0" + "123") for _ in range(300)}  # 13 digits
    tokens = {tokenizer.tokenize(Card(pan, 1, 2030)).token: pan for pan in pans}
    assert len(tokens) == len(pans)
    for token, pan in tokens.items():
        assert tokenizer.detokenize(Token(token)).pan == pan


def test_walk_ends_and_inverts_even_when_every_point_is_a_fixed_point() -> None:
    """With E = identity a walk from a Luhn-valid PAN to the next failing one would never end."""
    tokenizer = Tokenizer(FINGERPRINT_KEY, RING, cipher=lambda key: IdentityCipher())
    for pan in ("4111111111111111", "5555555555554444", "378282246310005", "401288888881881"):
        token = tokenizer.tokenize(Card(pan, 1, 2030)).token
        assert not reference_luhn_valid(token)
        assert tokenizer.detokenize(Token(token)).pan == pan


@each_implementation
def test_rotation_keeps_old_tokens_working(make: CipherFactory) -> None:
    card = Card("5555555555554444", 1, 2030)
    old = Tokenizer(FINGERPRINT_KEY, RING, cipher=make).tokenize(card)
    rotated = Tokenizer(FINGERPRINT_KEY, ROTATED, cipher=make)
    new = rotated.tokenize(card)
    assert (old.key_id, new.key_id) == ("k1", "k2")
    assert old.token != new.token
    assert rotated.detokenize(Token(old.token), "k1").pan == card.pan
    assert rotated.detokenize(Token(new.token)).pan == card.pan
    assert rotated.detokenize(Token(new.token), "k2").pan == card.pan


@each_implementation
@settings(max_examples=40, deadline=None)
@given(pans())
def test_a_transactions_card_comes_back_under_whichever_key_made_its_token(make: CipherFactory, pan: str) -> None:
    card = Card(pan, 1, 2030)
    before = Tokenizer(FINGERPRINT_KEY, RING, cipher=make).card(card)  # made under k1, then k2 became active
    rotated = Tokenizer(FINGERPRINT_KEY, ROTATED, cipher=make)
    after = rotated.card(card)
    assert rotated.card_of(before.token, before.fingerprint) == Card(pan, 0, 0)
    assert rotated.card_of(after.token, after.fingerprint) == Card(pan, 0, 0)
    # The fingerprint proves the key: one of another card finds nothing, a wrong key's Luhn-valid guess included.
    other = rotated.card(Card("4111111111111111" if pan != "4111111111111111" else "5555555555554444", 1, 2030))
    assert rotated.card_of(before.token, other.fingerprint) is None
    assert (
        Tokenizer(FINGERPRINT_KEY, KeyRing({"k2": K2}, "k2"), cipher=make).card_of(before.token, before.fingerprint)
        is None
    )  # its key left the ring
    assert Tokenizer(FINGERPRINT_KEY).card_of(before.token, before.fingerprint) is None  # no keys at all
    assert rotated.card_of("", before.fingerprint) is None


@each_implementation
def test_detokenize_errors_name_their_fields(make: CipherFactory) -> None:
    tokenizer = Tokenizer(FINGERPRINT_KEY, RING, cipher=make)
    token = tokenizer.tokenize(Card("4111111111111111", 1, 2030)).token
    cases: list[tuple[str, str, set[str]]] = [
        (token, "k9", {"source.token_key_id"}),
        ("tok_unknown_0001", "", {"source.token"}),
        ("41111111111", "", {"source.token"}),  # 11 digits
        ("41111111111111111111", "", {"source.token"}),  # 20 digits
        ("4111111111111111", "", {"source.token"}),  # passes Luhn: a card number
        ("\uff14111111111111112", "", {"source.token"}),
        ("4111 1111 1111 1112", "", {"source.token"}),
        ("x", "k9", {"source.token", "source.token_key_id"}),
    ]
    for value, key_id, fields in cases:
        with pytest.raises(InvalidRequest) as caught:
            tokenizer.detokenize(Token(value), key_id)
        assert field_of(caught.value) == fields, value
        assert value not in caught.value.message


@each_implementation
def test_tokens_that_were_never_issued_are_unknown(make: CipherFactory) -> None:
    tokenizer = Tokenizer(FINGERPRINT_KEY, RING, cipher=make)
    unknown = 0
    for serial in range(60):
        candidate = f"411111{serial:06d}1112"
        if reference_luhn_valid(candidate):
            continue
        try:
            card = tokenizer.detokenize(Token(candidate))
        except InvalidRequest as error:
            assert field_of(error) == {"source.token"}
            unknown += 1
        else:  # about 1 in 9 Luhn-failing numbers is some PAN's token: it must round-trip
            assert tokenizer.tokenize(card).token == candidate
    assert unknown > 0


def test_without_keys_no_tokens_are_issued_or_accepted() -> None:
    tokenizer = Tokenizer(FINGERPRINT_KEY)
    card = Card("4111111111111111", 1, 2030)
    assert tokenizer.card(card).token == ""
    with pytest.raises(ValueError, match="no tokenization keys"):
        tokenizer.tokenize(card)
    for value, key_id in (("4111111111111112", ""), ("4111111111111112", "k1"), ("tok_1", "")):
        with pytest.raises(InvalidRequest) as caught:
            tokenizer.detokenize(Token(value), key_id)
        assert field_of(caught.value) == {"source.token"}


@pytest.mark.parametrize("pan", ["4111111111111112", "41111111111", "4" * 20, "4111-1111-1111-1111"])
def test_tokenize_rejects_what_is_not_a_card_number(pan: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        Tokenizer(FINGERPRINT_KEY, RING).tokenize(Card(pan, 1, 2030))
    assert field_of(caught.value) == {"source.card.pan"}
    assert pan not in caught.value.message


@each_implementation
def test_card_instrument_carries_the_token_and_the_same_fingerprint(make: CipherFactory) -> None:
    card = Card("378282246310005", 1, 2030)
    plain = Tokenizer(FINGERPRINT_KEY).card(card)
    tokenized = Tokenizer(FINGERPRINT_KEY, ROTATED, cipher=make).card(card)
    assert tokenized.fingerprint == plain.fingerprint
    assert tokenized.masked == plain.masked == "37828******0005"
    assert plain.token == ""
    assert tokenized.token == Tokenizer(FINGERPRINT_KEY, ROTATED, cipher=make).tokenize(card).token


def test_no_pan_or_key_in_reprs() -> None:
    card = Card("4111111111111111", 1, 2030)
    token = Tokenizer(FINGERPRINT_KEY, ROTATED).tokenize(card)
    for text in (repr(token), str(token), repr(ROTATED), str(ROTATED), repr(Tokenizer(FINGERPRINT_KEY, ROTATED))):
        assert card.pan not in text
        assert K1_HEX not in text and K2_HEX not in text
        assert str(K1) not in text and str(K2) not in text
    assert repr(ROTATED) == "KeyRing(active_key='k2', key_ids=['k1', 'k2'])"
    assert isinstance(token, CardToken)


# ---- the tokenizer's earlier behaviour, unchanged ----


@pytest.mark.parametrize("ring", [None, ROTATED], ids=["no-keys", "keys"])
def test_fingerprints_and_masks_are_unchanged(ring: KeyRing | None) -> None:
    tokenizer = Tokenizer(FINGERPRINT_KEY, ring)
    card = tokenizer.card(Card("4111111111111111", 1, 2030))
    expected = hmac.new(FINGERPRINT_KEY, b"card:4111111111111111", hashlib.sha256).hexdigest()
    assert (card.kind, card.fingerprint, card.masked) == (InstrumentKind.CARD, expected, "411111******1111")
    account = tokenizer.account(Account("instant", "+5511999990000"))
    expected = hmac.new(FINGERPRINT_KEY, b"account:instant:+5511999990000", hashlib.sha256).hexdigest()
    assert (account.kind, account.fingerprint, account.masked, account.token) == (
        InstrumentKind.ACCOUNT,
        expected,
        "**********0000",
        "",
    )
    assert mask_account("abc") == "**c"


def first_card_instrument(key: bytes, ring: KeyRing | None, make: CipherFactory, card: Card) -> Instrument:
    """Tokenizer.card as first written (hmac.new, split, walk, mask_pan), to hold the quick one to."""
    fingerprint = hmac.new(key, b"card:" + card.pan.encode(), hashlib.sha256).hexdigest()
    if ring is None:
        return Instrument(InstrumentKind.CARD, fingerprint, mask_pan(card.pan))
    pan, cipher = card.pan, make(ring.keys[ring.active_key])
    kept = head_length(len(pan))
    head, middle, tail = pan[:kept], pan[kept:-4], pan[-4:]
    tweak = f"pan:{len(pan)}:{head}:{tail}".encode()
    middle = cipher.encrypt(tweak, middle[:-1] + str((int(middle[-1]) + 1) % 10))
    while reference_luhn_valid(head + middle + tail):
        middle = cipher.encrypt(tweak, middle)
    return Instrument(InstrumentKind.CARD, fingerprint, mask_pan(pan), head + middle + tail)


@each_implementation
@settings(max_examples=60, deadline=None)
@given(pans(), st.sampled_from([None, RING, ROTATED]))
def test_card_instruments_are_what_they_were(make: CipherFactory, pan: str, ring: KeyRing | None) -> None:
    card = Card(pan, 1, 2030, "A HOLDER")
    made = Tokenizer(FINGERPRINT_KEY, ring, cipher=make).card(card)
    assert made == first_card_instrument(FINGERPRINT_KEY, ring, make, card)
    assert type(made) is Instrument and hash(made) == hash(first_card_instrument(FINGERPRINT_KEY, ring, make, card))


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=16, max_size=200), st.binary(max_size=300))
def test_fingerprints_are_hmac_sha256_for_any_key_and_identity(key: bytes, identity: bytes) -> None:
    """The precomputed inner and outer states give hmac.new's digest, keys past SHA-256's block included."""
    assert Tokenizer(key)._fingerprint(identity) == hmac.new(key, identity, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("pan", ["", "4111", "41111111111111111111111", "4111-1111-1111-1111", "4111111111111112"])
def test_without_keys_any_card_still_gets_an_instrument(pan: str) -> None:
    """No ring, no token, no check (as before): a fingerprint and mask_pan's form."""
    made = Tokenizer(FINGERPRINT_KEY).card(Card(pan, 1, 2030))
    assert made == first_card_instrument(FINGERPRINT_KEY, None, ReferenceFF1, Card(pan, 1, 2030))


def test_fingerprint_key_must_be_long_enough() -> None:
    with pytest.raises(ValueError):
        Tokenizer(b"short")


# ---- key rings ----


def test_parse_inline_key_ring() -> None:
    ring = parse_key_ring({"active_key": "k2", "keys": {"k1": K1_HEX, "k2": K2_HEX.upper()}})
    assert ring.active_key == "k2"
    assert dict(ring.keys) == {"k1": K1, "k2": K2}


@pytest.mark.parametrize("size", [16, 24, 32])
def test_key_sizes(size: int) -> None:
    ring = parse_key_ring({"active_key": "a", "keys": {"a": "ab" * size}})
    assert len(ring.keys["a"]) == size


def test_key_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "tokenization.json"
    write_key_file(path, ROTATED)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert orjson.loads(path.read_bytes()) == {"active_key": "k2", "keys": {"k1": K1_HEX, "k2": K2_HEX}}
    ring = parse_key_ring({"key_file": str(path)})
    assert ring == ROTATED
    write_key_file(path, RING)  # replaces it
    assert parse_key_ring({"key_file": str(path)}).active_key == "k1"


BAD_TABLES: list[tuple[dict[str, Any], str]] = [
    (
        {"active_key": "k1", "keys": {"k1": K1_HEX, "k3": "abcd"}},
        "tokenization.keys.k3: must be 32, 48 or 64 hex digits",
    ),
    ({"active_key": "k1", "keys": {"k1": "zz" * 16}}, "tokenization.keys.k1: must be 32, 48 or 64 hex digits"),
    ({"active_key": "k1", "keys": {"k1": " " + K1_HEX[1:]}}, "tokenization.keys.k1: must be 32, 48 or 64 hex digits"),
    ({"active_key": "k1", "keys": {"k1": 12}}, "tokenization.keys.k1: must be 32, 48 or 64 hex digits"),
    ({"active_key": "k9", "keys": {"k1": K1_HEX}}, "tokenization.active_key: no key named 'k9'"),
    ({"active_key": K2_HEX, "keys": {"k1": K1_HEX}}, "tokenization.active_key: no key named (not a key id)"),
    ({"keys": {"k1": K1_HEX}}, "tokenization.active_key: must name one of the keys"),
    ({"active_key": "k1", "keys": {}}, "tokenization.keys: must be a table"),
    ({"active_key": "k1"}, "tokenization.keys: must be a table"),
    ({"active_key": "k1", "keys": {"bad id": K1_HEX}}, "tokenization.keys: key ids are"),
    ({"active_key": "k1", "keys": {"k1": K1_HEX}, "extra": 1}, "tokenization.extra: unknown key"),
    ({"key_file": "/x", "keys": {"k1": K1_HEX}}, "tokenization.key_file: set key_file alone"),
    ({"key_file": ""}, "tokenization.key_file: must be a path"),
    (
        {"key_file": "/nonexistent/tokenization.json"},
        "tokenization.key_file: cannot read /nonexistent/tokenization.json",
    ),
]


@pytest.mark.parametrize(("table", "message"), BAD_TABLES)
def test_bad_key_rings_name_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_key_ring(table)
    assert str(caught.value).startswith(message)
    assert K1_HEX not in str(caught.value) and K2_HEX not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"active_key": "k1", "keys": {"k1": "' + K1_HEX.encode() + b'",}}', "is not valid JSON"),
        (b"[1, 2]", "must hold an object"),
        (b'{"active_key": "k1", "keys": {"k1": "abc"}}', "tokenization.key_file: keys.k1: must be 32, 48 or 64 hex"),
        (b'{"active_key": "k2", "keys": {"k1": "' + K1_HEX.encode() + b'"}}', "no key named 'k2'"),
        (b'{"active": "k1"}', "tokenization.key_file: active: unknown key"),
    ],
)
def test_bad_key_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(ConfigError) as caught:
        parse_key_ring({"key_file": str(path)})
    assert message in str(caught.value)
    assert K1_HEX not in str(caught.value)


def test_key_ring_checks_itself() -> None:
    with pytest.raises(ValueError, match="active key"):
        KeyRing({"k1": K1}, "k2")
    with pytest.raises(ValueError, match="16, 24 or 32 bytes"):
        KeyRing({"k1": b"short"}, "k1")
    keys = {"k1": K1}
    ring = KeyRing(keys, "k1")
    keys["k2"] = K2  # the ring keeps its own copy
    assert set(ring.keys) == {"k1"}


@pytest.mark.parametrize("pan", ["4111111111111112", "41111111111", "4" * 20, "4111-1111-1111-1111"])
def test_card_with_keys_rejects_what_is_not_a_card_number(pan: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        Tokenizer(FINGERPRINT_KEY, RING).card(Card(pan, 1, 2030))
    assert field_of(caught.value) == {"source.card.pan"}


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_key_file_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keys.json"
    write_key_file(path, RING)
    path.chmod(mode)
    with pytest.raises(ConfigError, match=rf"tokenization\.key_file: .* is mode {mode:04o}; key files must be 0600"):
        parse_key_ring({"key_file": str(path)})
