"""FF1: the NIST samples, and the compiled cipher against the reference and an independent one.

The same contract runs against both implementations (every test of it takes the
implementation as the parameter `make`: compiled and reference). The random vectors check compiled ==
reference == fastfpe (a Rust FF1 from PyPI, written by others) on every key size,
tweaks of 0-32 bytes, every radix and lengths from the minimum domain up to
MAX_LEN, so both the compiled u128 path and its Python-int path for long strings
are covered.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastfpe import ff1 as fastfpe_ff1  # type: ignore[import-untyped]  # no py.typed marker
from hypothesis import given, settings
from hypothesis import strategies as st

from switch import native
from switch.cards import ff1
from switch.cards.ff1 import ALPHABET, MAX_LEN, MAX_TWEAK_LEN, CipherFactory, ReferenceFF1

# NIST SP 800-38G FF1 samples 1-9 (FF1samples.pdf), kept in the repo so the tests need nothing beside it.
VECTORS = Path(__file__).parent / "vectors"
NIST = orjson.loads((VECTORS / "ff1_nist_samples.json").read_bytes())["vectors"]
KEY = bytes(range(16))
RANDOM_VECTORS = 3000
compiled_only = pytest.mark.skipif(ff1.CompiledFF1 is None, reason="cext not built or SWITCH_NO_EXTENSIONS=1")
IMPLEMENTATIONS = [
    pytest.param(ff1.CompiledFF1, id="compiled", marks=compiled_only),
    pytest.param(ReferenceFF1, id="reference"),
]
each_implementation = pytest.mark.parametrize("make", IMPLEMENTATIONS)


def min_length(radix: int) -> int:
    length = 2
    while radix**length < ff1.MIN_DOMAIN:
        length += 1
    return length


@st.composite
def plaintexts(draw: st.DrawFn) -> tuple[bytes, bytes, str, int]:
    key = draw(st.sampled_from([16, 24, 32]).flatmap(lambda size: st.binary(min_size=size, max_size=size)))
    tweak = draw(st.binary(max_size=32))
    radix = draw(st.integers(2, 36))
    length = draw(st.integers(min_length(radix), min(MAX_LEN, min_length(radix) + 40)))
    text = draw(st.text(alphabet=ALPHABET[:radix], min_size=length, max_size=length))
    return key, tweak, text, radix


@each_implementation
@pytest.mark.parametrize("sample", NIST, ids=[f"sample{v['sample']}" for v in NIST])
def test_nist_samples(make: CipherFactory, sample: dict[str, Any]) -> None:
    cipher = make(bytes.fromhex(sample["key"]))
    tweak = bytes.fromhex(sample["tweak"])
    assert cipher.encrypt(tweak, sample["plaintext"], sample["radix"]) == sample["ciphertext"]
    assert cipher.decrypt(tweak, sample["ciphertext"], sample["radix"]) == sample["plaintext"]


@each_implementation
@settings(max_examples=60, deadline=None)
@given(plaintexts())
def test_decrypt_inverts_encrypt(make: CipherFactory, case: tuple[bytes, bytes, str, int]) -> None:
    key, tweak, text, radix = case
    cipher = make(key)
    ciphertext = cipher.encrypt(tweak, text, radix)
    assert len(ciphertext) == len(text)
    assert set(ciphertext) <= set(ALPHABET[:radix])
    assert cipher.decrypt(tweak, ciphertext, radix) == text


@each_implementation
def test_default_radix_is_10(make: CipherFactory) -> None:
    cipher = make(KEY)
    assert cipher.encrypt(b"t", "0123456789") == cipher.encrypt(b"t", "0123456789", 10)


@each_implementation
def test_longest_text(make: CipherFactory) -> None:
    cipher = make(KEY)
    text = "z" * MAX_LEN
    assert cipher.decrypt(b"", cipher.encrypt(b"", text, 36), 36) == text


@each_implementation
def test_tweak_changes_the_ciphertext(make: CipherFactory) -> None:
    cipher = make(KEY)
    assert cipher.encrypt(b"a", "0123456789") != cipher.encrypt(b"b", "0123456789")


@each_implementation
@pytest.mark.parametrize("size", [0, 8, 15, 17, 31, 33, 64])
def test_rejects_key_sizes(make: CipherFactory, size: int) -> None:
    with pytest.raises(ValueError, match="16, 24 or 32 bytes"):
        make(bytes(size))


@each_implementation
def test_rejects_a_key_that_is_not_bytes(make: CipherFactory) -> None:
    with pytest.raises(TypeError):
        make("00" * 16)  # type: ignore[arg-type]


@each_implementation
@pytest.mark.parametrize(
    ("tweak", "text", "radix"),
    [
        (b"", "0123456789", 1),
        (b"", "0123456789", 37),
        (b"", "0123456789", -10),
        (b"", "12345", 10),  # 10**5 < 10**6: below the minimum domain
        (b"", "1" * 19, 2),  # 2**19 < 10**6
        (b"", "abc", 36),  # 36**3 < 10**6
        (b"", "1", 10),
        (b"", "", 10),
        (b"", "1" * (MAX_LEN + 1), 10),
        (bytes(MAX_TWEAK_LEN + 1), "0123456789", 10),
        (b"", "012345678a", 10),
        (b"", "0123456789ABCDEF", 16),
        (b"", "0123456789", 8),
        (b"", "\uff14\uff11\uff11\uff11\uff11\uff11\uff11", 10),  # fullwidth digits
        (b"", "4111 1111 1111", 10),
    ],
)
def test_rejects_inputs_outside_the_domain(make: CipherFactory, tweak: bytes, text: str, radix: int) -> None:
    cipher = make(KEY)
    for operation in (cipher.encrypt, cipher.decrypt):
        with pytest.raises(ValueError) as caught:
            operation(tweak, text, radix)
        assert len(text) < 4 or text not in str(caught.value)  # never echoes the text
        # Both implementations say the same thing.
        with pytest.raises(ValueError) as reference:
            getattr(ReferenceFF1(KEY), operation.__name__)(tweak, text, radix)
        assert str(caught.value) == str(reference.value)


@each_implementation
def test_smallest_domains_are_accepted(make: CipherFactory) -> None:
    cipher = make(KEY)
    for radix in range(2, 37):
        text = ALPHABET[radix - 1] * min_length(radix)
        assert cipher.decrypt(b"", cipher.encrypt(b"", text, radix), radix) == text


@each_implementation
@pytest.mark.parametrize(
    ("tweak", "text", "radix"), [("t", "0123456789", 10), (b"", 123456, 10), (b"", "0123456", 10.0)]
)
def test_rejects_wrong_types(make: CipherFactory, tweak: Any, text: Any, radix: Any) -> None:
    with pytest.raises(TypeError):
        make(KEY).encrypt(tweak, text, radix)


def random_vectors(count: int, seed: int) -> list[tuple[bytes, bytes, str, int]]:
    """Keys of each size, tweaks of 0-32 bytes, every radix; lengths mostly short, some up to MAX_LEN."""
    rng = random.Random(seed)
    cases = []
    for index in range(count):
        key = rng.randbytes((16, 24, 32)[index % 3])
        radix = rng.randint(2, 36)
        low = min_length(radix)
        high = rng.choice([low + 4, 24, 60, MAX_LEN]) if index % 4 else MAX_LEN // 4
        length = rng.randint(low, max(low, high))
        text = "".join(rng.choice(ALPHABET[:radix]) for _ in range(length))
        cases.append((key, rng.randbytes(rng.randint(0, 32)), text, radix))
    return cases


def test_random_vectors_agree_with_an_independent_ff1() -> None:
    compiled = ff1.CompiledFF1
    for key, tweak, text, radix in random_vectors(RANDOM_VECTORS, seed=20261126):
        expected = fastfpe_ff1.encrypt(key.hex(), tweak.hex(), ALPHABET[:radix], text)
        reference = ReferenceFF1(key)
        assert reference.encrypt(tweak, text, radix) == expected, (radix, len(text), len(tweak))
        if compiled is not None:
            cipher = compiled(key)
            assert cipher.encrypt(tweak, text, radix) == expected, (radix, len(text), len(tweak))
            assert cipher.decrypt(tweak, expected, radix) == text


@compiled_only
def test_compiled_matches_reference_at_the_u128_boundary() -> None:
    """Around the length where radix ** v leaves 2 ** 120 the compiled code switches to Python ints."""
    assert ff1.CompiledFF1 is not None
    rng = random.Random(7)
    for radix in range(2, 37):
        v = 1
        while radix**v <= 2**120:
            v += 1
        for length in (2 * v - 3, 2 * v - 2, 2 * v - 1, 2 * v, 2 * v + 1):
            if not min_length(radix) <= length <= MAX_LEN:
                continue
            key = rng.randbytes(32)
            text = "".join(rng.choice(ALPHABET[:radix]) for _ in range(length))
            compiled, reference = ff1.CompiledFF1(key), ReferenceFF1(key)
            ciphertext = reference.encrypt(b"edge", text, radix)
            assert compiled.encrypt(b"edge", text, radix) == ciphertext, (radix, length)
            assert compiled.decrypt(b"edge", ciphertext, radix) == text


def test_module_functions_use_the_active_implementation() -> None:
    assert ff1.FF1 is (ff1.CompiledFF1 or ReferenceFF1)
    if native.DISABLED:
        assert ff1.CompiledFF1 is None
    ciphertext = ff1.ff1_encrypt(KEY, b"tw", "4111111111", 10)
    assert ciphertext == ReferenceFF1(KEY).encrypt(b"tw", "4111111111")
    assert ff1.ff1_decrypt(KEY, b"tw", ciphertext) == "4111111111"


@compiled_only
def test_extension_is_built_unless_disabled() -> None:
    assert ff1.FF1 is ff1.CompiledFF1


def test_no_extensions_selects_the_reference() -> None:
    code = "from switch.cards import ff1; print(ff1.FF1 is ff1.ReferenceFF1)"
    env = {**os.environ, "SWITCH_NO_EXTENSIONS": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"
