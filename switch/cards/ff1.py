"""Format-preserving encryption, NIST SP 800-38G FF1 over AES, for the tokenizer.

Two implementations with one interface, ``cipher = FF1(key)``, then
``cipher.encrypt(tweak, text, radix)`` / ``cipher.decrypt(...)``:

- the compiled one, ``switch.cards._ff1.FF1`` (one OpenSSL AES context per key, C
  integers where the numbers fit), used unless extensions are missing or
  SWITCH_NO_EXTENSIONS=1;
- ``ReferenceFF1`` below: the spec's pseudo-code in Python ints, AES from the
  ``cryptography`` package, slow and obviously correct, the one the tests check
  the compiled one against.

``FF1`` is whichever is active; ``ff1_encrypt`` / ``ff1_decrypt`` use it with one
cached cipher per key.

The domain both enforce (identically; the tests check it):

- radix 2..36, alphabet ``"0123456789abcdefghijklmnopqrstuvwxyz"[:radix]``;
- 2 <= len(text) <= MAX_LEN (256, for every radix: FF1 itself allows up to
  2**32, a bound nothing here needs; it is large enough that the compiled code's
  Python-int path for long strings is exercised and tested);
- radix ** len(text) >= MIN_DOMAIN (1,000,000), the minimum domain of SP 800-38G
  Rev. 1;
- tweaks of 0..MAX_TWEAK_LEN (256) bytes; keys of 16, 24 or 32 bytes.

Errors are ValueError and never quote the text or the key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from switch import native

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
MIN_RADIX = 2
MAX_RADIX = 36
MIN_LEN = 2
MAX_LEN = 256
MIN_DOMAIN = 1_000_000
MAX_TWEAK_LEN = 256
KEY_SIZES = (16, 24, 32)
ROUNDS = 10


class FF1Cipher(Protocol):
    """What both implementations offer, for one AES key."""

    def encrypt(self, tweak: bytes, text: str, radix: int = 10) -> str: ...

    def decrypt(self, tweak: bytes, text: str, radix: int = 10) -> str: ...


class ReferenceFF1:
    """FF1 as written in SP 800-38G (Algorithms 7 and 8), step by step."""

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes):
            raise TypeError("the FF1 key must be bytes")
        if len(key) not in KEY_SIZES:
            raise ValueError("the FF1 key must be 16, 24 or 32 bytes")
        # ECB on single blocks is CIPH_K; the context is made once per key.
        self._aes = Cipher(algorithms.AES(key), modes.ECB()).encryptor()

    # Names follow the spec: A and B are the halves (a, b), while the spec's byte
    # count b is b_len here.

    def encrypt(self, tweak: bytes, text: str, radix: int = 10) -> str:
        numerals = _numerals(tweak, text, radix)
        n, t = len(numerals), len(tweak)
        u, v = n // 2, n - n // 2
        a, b = numerals[:u], numerals[u:]
        b_len = _byte_len(radix, v)
        d = 4 * -(-b_len // 4) + 4
        p = _p_block(radix, u, n, t)
        for i in range(ROUNDS):
            q = tweak + bytes((-t - b_len - 1) % 16) + bytes([i]) + _num(b, radix).to_bytes(b_len, "big")
            y = self._num_s(p + q, d)
            m = u if i % 2 == 0 else v
            c = (_num(a, radix) + y) % _pow(radix, m)
            a, b = b, _str(c, radix, m)
        return "".join(ALPHABET[x] for x in a + b)

    def decrypt(self, tweak: bytes, text: str, radix: int = 10) -> str:
        numerals = _numerals(tweak, text, radix)
        n, t = len(numerals), len(tweak)
        u, v = n // 2, n - n // 2
        a, b = numerals[:u], numerals[u:]
        b_len = _byte_len(radix, v)
        d = 4 * -(-b_len // 4) + 4
        p = _p_block(radix, u, n, t)
        for i in reversed(range(ROUNDS)):
            q = tweak + bytes((-t - b_len - 1) % 16) + bytes([i]) + _num(a, radix).to_bytes(b_len, "big")
            y = self._num_s(p + q, d)
            m = u if i % 2 == 0 else v
            c = (_num(b, radix) - y) % _pow(radix, m)
            a, b = _str(c, radix, m), a
        return "".join(ALPHABET[x] for x in a + b)

    def _num_s(self, p_q: bytes, d: int) -> int:
        """Steps 6.ii-6.iv: R = PRF(P || Q); S = the first d bytes of R || CIPH(R xor [1]) || ...; NUM(S)."""
        r = self._prf(p_q)
        s = r
        for j in range(1, -(-d // 16)):
            s += self._ciph(_xor(r, j.to_bytes(16, "big")))
        return int.from_bytes(s[:d], "big")

    def _prf(self, x: bytes) -> bytes:
        """CBC-MAC: Y_j = CIPH(Y_{j-1} xor X_j), Y_0 = 0; the last Y."""
        y = bytes(16)
        for j in range(0, len(x), 16):
            y = self._ciph(_xor(y, x[j : j + 16]))
        return y

    def _ciph(self, block: bytes) -> bytes:
        return self._aes.update(block)


def _numerals(tweak: bytes, text: str, radix: int) -> list[int]:
    """Checks the arguments against the domain and returns the text as numerals."""
    if not isinstance(radix, int):
        raise TypeError("the radix must be an int")
    if not isinstance(tweak, bytes):
        raise TypeError("the tweak must be bytes")
    if not isinstance(text, str):
        raise TypeError("the text must be a str")
    check_domain(tweak, len(text), radix)
    alphabet = ALPHABET[:radix]
    numerals = [alphabet.find(c) for c in text]
    if -1 in numerals:
        raise ValueError(f"the text has characters outside the radix-{radix} alphabet")
    return numerals


def check_domain(tweak: bytes, length: int, radix: int) -> None:
    """The limits of the module docstring; ValueError naming the rule broken."""
    if not MIN_RADIX <= radix <= MAX_RADIX:
        raise ValueError(f"the radix must be an integer from {MIN_RADIX} to {MAX_RADIX}")
    if len(tweak) > MAX_TWEAK_LEN:
        raise ValueError(f"the tweak must be at most {MAX_TWEAK_LEN} bytes")
    if not MIN_LEN <= length <= MAX_LEN:
        raise ValueError(f"the text must be {MIN_LEN} to {MAX_LEN} characters long")
    if _pow(radix, length) < MIN_DOMAIN:
        raise ValueError(f"radix ** length must be at least {MIN_DOMAIN:,} (the FF1 minimum domain)")


def _p_block(radix: int, u: int, n: int, t: int) -> bytes:
    """P = [1]^1 || [2]^1 || [1]^1 || [radix]^3 || [10]^1 || [u mod 256]^1 || [n]^4 || [t]^4."""
    head = bytes([1, 2, 1]) + radix.to_bytes(3, "big") + bytes([10, u % 256])
    return head + n.to_bytes(4, "big") + t.to_bytes(4, "big")


def _byte_len(radix: int, v: int) -> int:
    """b = ceil(ceil(v * log2(radix)) / 8), in exact integer arithmetic."""
    return ((_pow(radix, v) - 1).bit_length() + 7) // 8


def _pow(radix: int, exponent: int) -> int:
    return int(radix**exponent)  # int ** int is typed Any: the exponent could be negative


def _num(numerals: list[int], radix: int) -> int:
    total = 0
    for x in numerals:
        total = total * radix + x
    return total


def _str(value: int, radix: int, m: int) -> list[int]:
    out = [0] * m
    for k in range(m - 1, -1, -1):
        value, out[k] = divmod(value, radix)
    return out


def _xor(x: bytes, y: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(x, y, strict=True))


CipherFactory = Callable[[bytes], FF1Cipher]

_compiled = native.load("switch.cards._ff1")
CompiledFF1: CipherFactory | None = None if _compiled is None else _compiled.FF1
FF1: CipherFactory = CompiledFF1 or ReferenceFF1

_ciphers: dict[bytes, FF1Cipher] = {}
_MAX_CACHED = 64  # keys are few; the bound only stops a caller with many keys from growing it forever


def _cipher(key: bytes) -> FF1Cipher:
    cipher = _ciphers.get(key)
    if cipher is None:
        cipher = FF1(key)
        if len(_ciphers) >= _MAX_CACHED:
            _ciphers.clear()
        _ciphers[key] = cipher
    return cipher


def ff1_encrypt(key: bytes, tweak: bytes, text: str, radix: int = 10) -> str:
    """FF1-encrypts text (numerals of the radix-`radix` alphabet) under key and tweak."""
    return _cipher(key).encrypt(tweak, text, radix)


def ff1_decrypt(key: bytes, tweak: bytes, text: str, radix: int = 10) -> str:
    """The inverse of ff1_encrypt."""
    return _cipher(key).decrypt(tweak, text, radix)
