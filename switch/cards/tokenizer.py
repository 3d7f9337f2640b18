"""The tokenizer boundary: the last place a PAN is seen before the pipeline's stores.

It turns a card or an account into an Instrument: a keyed HMAC fingerprint (the
only identity Redis keys, velocity counters and the journal ever see), a masked
form for display and, when tokenization keys are configured, a card token.

Card tokens (format-preserving, FF1 over AES, see switch.cards.ff1):

- A token has the PAN's length and is all digits. It keeps the PAN's last 4 and
  its first ``head = min(6, length - 10)`` digits in clear (6 for 16-19 digits;
  5, 4, 3, 2 for 15, 14, 13, 12): exactly what mask_pan shows. The ``length -
  head - 4`` digits between (6 to 9, never fewer than 6, so the FF1 domain is at
  least 10**6) are encrypted under the active key with the tweak
  ``f"pan:{length}:{head digits}:{last 4}"``.
- Every token fails the Luhn check, so a token can never be mistaken for a card
  number. Making it fail takes two steps, and the first is not optional:
  1. h: add 1 (mod 10) to the last encrypted digit. Changing one digit of a
     Luhn-valid number always breaks its check, so h maps valid middles into
     the Luhn-invalid set N, one to one.
  2. Cycle-walk inside N: encrypt, and while the assembled number passes Luhn,
     encrypt again. For a fixed tweak FF1 is a permutation E of the middles;
     walking E until back in N is a permutation of N (each cycle of E visits
     its N elements in order; the walk sends each to the next), and it always
     ends: the start is in N, so its cycle holds one.
  Detokenizing inverts both: decrypt while the number passes Luhn, then
  subtract the 1; a result that fails Luhn was never issued: "unknown token".
  Without h, walking from a valid PAN to the first invalid number is not one
  to one (consecutive valid numbers on a cycle share the next invalid one) and
  need not end (a Luhn-valid fixed point of E loops forever).
- The token does not name its key: tokenize returns the key id beside it
  (CardToken.key_id) and detokenize takes it back (empty: the active key), so
  tokens made before a rotation keep working under their old key id.

Keys come from the [tokenization] table (switch.config.keys.parse_key_ring): either inline,
``{"active_key": "k2", "keys": {"k1": "<hex>", "k2": "<hex>"}}``, or
``{"key_file": "/path"}`` naming a JSON file of the same shape (orjson; see
write_key_file). Keys are 32, 48 or 64 hex digits (AES-128/192/256). No message,
repr or log ever shows key material or a PAN.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from switch.cards import ff1
from switch.cards.luhn import luhn_valid
from switch.domain.errors import InvalidRequest, Violation
from switch.domain.models import (
    Account,
    Card,
    Instrument,
    InstrumentKind,
    Token,
    mask_account,
    mask_pan,
    unchecked_instrument,
)

MIN_PAN_LENGTH = 12
MAX_PAN_LENGTH = 19
KEPT_TAIL = 4
MIN_ENCRYPTED = 6  # 10 ** 6: the FF1 minimum domain
_SHA256_BLOCK = 64
_IPAD = bytes(byte ^ 0x36 for byte in range(256))
_OPAD = bytes(byte ^ 0x5C for byte in range(256))
_CARD, _ACCOUNT = InstrumentKind.CARD, InstrumentKind.ACCOUNT


@dataclass(frozen=True, slots=True, repr=False)
class KeyRing:
    """Tokenization keys by id, and the id of the one new tokens are made with."""

    keys: Mapping[str, bytes]
    active_key: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))
        if self.active_key not in self.keys:
            raise ValueError("the active key id names no key of the ring")
        if any(len(key) not in ff1.KEY_SIZES for key in self.keys.values()):
            raise ValueError("tokenization keys must be 16, 24 or 32 bytes")

    def __repr__(self) -> str:
        return f"KeyRing(active_key={self.active_key!r}, key_ids={sorted(self.keys)!r})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class CardToken:
    """A card token, the key id it was made with, and the PAN's masked form."""

    token: str
    key_id: str
    masked: str


class Tokenizer:
    def __init__(
        self, fingerprint_key: bytes, key_ring: KeyRing | None = None, *, cipher: ff1.CipherFactory = ff1.FF1
    ) -> None:
        """cipher picks the FF1 implementation (tests pin the compiled one or the reference)."""
        if len(fingerprint_key) < 16:
            raise ValueError("the fingerprint key must be at least 16 bytes")
        self._ring = key_ring
        # One cipher per key, made once: each holds its AES context.
        self._ciphers = {} if key_ring is None else {key_id: cipher(key) for key_id, key in key_ring.keys.items()}
        self._active: tuple[str, ff1.FF1Cipher] | None = None
        if key_ring is not None:
            self._active = (key_ring.active_key, self._ciphers[key_ring.active_key])
        # HMAC-SHA256 (RFC 2104) with both keyed states hashed once: a fingerprint is
        # then two copies and two one-block hashes, the same digest as hmac.new's.
        block = fingerprint_key if len(fingerprint_key) <= _SHA256_BLOCK else hashlib.sha256(fingerprint_key).digest()
        block = block.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(block.translate(_IPAD))
        self._outer = hashlib.sha256(block.translate(_OPAD))

    def card(self, card: Card) -> Instrument:
        pan = card.pan
        fingerprint = self._fingerprint(b"card:" + pan.encode())
        if self._active is None:
            return unchecked_instrument(_CARD, fingerprint, mask_pan(pan))
        token, masked = self._token(pan, self._active[1])
        return unchecked_instrument(_CARD, fingerprint, masked, token)

    def account(self, account: Account) -> Instrument:
        identity = f"account:{account.rail}:{account.id}".encode()
        return unchecked_instrument(_ACCOUNT, self._fingerprint(identity), mask_account(account.id))

    def tokenize(self, card: Card) -> CardToken:
        """The card's token under the active key; the same PAN and key give the same token."""
        if self._active is None:
            raise ValueError("no tokenization keys are configured")
        key_id, cipher = self._active
        token, masked = self._token(card.pan, cipher)
        return CardToken(token, key_id, masked)

    @staticmethod
    def _token(pan: str, cipher: ff1.FF1Cipher) -> tuple[str, str]:
        """(token, masked PAN) under this key's cipher; InvalidRequest for what is not a card number."""
        if not (_is_pan_shaped(pan) and luhn_valid(pan)):
            raise InvalidRequest([Violation("source.card.pan", "must be 12 to 19 digits passing the Luhn check")])
        head, middle, tail = _split(pan)
        tweak = _tweak(pan, head, tail)
        middle = cipher.encrypt(tweak, _shift_last(middle, 1))
        while luhn_valid(head + middle + tail):
            middle = cipher.encrypt(tweak, middle)
        return head + middle + tail, mask_pan(pan)

    def detokenize(self, token: Token, key_id: str = "") -> Card:
        """The card a token stands for (PAN only: expiry 0/0, no holder); key_id "" is the active key."""
        value = token.value
        violations = []
        if not _is_pan_shaped(value):
            violations.append(Violation("source.token", "unknown token"))
        elif luhn_valid(value):
            violations.append(Violation("source.token", "passes the Luhn check: a card number, not a token"))
        cipher = None
        if self._ring is None:
            violations = violations or [Violation("source.token", "unknown token")]
        else:
            cipher = self._ciphers.get(key_id or self._ring.active_key)
            if cipher is None:
                violations.append(Violation("source.token_key_id", "unknown token key id"))
        if violations or cipher is None:
            raise InvalidRequest(violations)
        head, middle, tail = _split(value)
        tweak = _tweak(value, head, tail)
        middle = cipher.decrypt(tweak, middle)
        while luhn_valid(head + middle + tail):
            middle = cipher.decrypt(tweak, middle)
        pan = head + _shift_last(middle, -1) + tail
        if not luhn_valid(pan):
            raise InvalidRequest([Violation("source.token", "unknown token")])
        return Card(pan, 0, 0)

    def card_of(self, token: str, fingerprint: str) -> Card | None:
        """The card behind a token the switch issued for a transaction, under whichever key of
        the ring made it (the transaction keeps the token, not its key id), proven by the
        card's fingerprint: a wrong key can give a Luhn-valid number, never that fingerprint.
        None when no key gives it back. For a network that matches a reversal by the card."""
        if self._ring is None or not token:
            return None
        active = self._ring.active_key
        for key_id in sorted(self._ciphers, key=lambda key: key != active):  # the active key first
            try:
                card = self.detokenize(Token(token), key_id)
            except InvalidRequest:
                continue
            if hmac.compare_digest(self._fingerprint(b"card:" + card.pan.encode()), fingerprint):
                return card
        return None

    def _fingerprint(self, identity: bytes) -> str:
        """hmac.new(fingerprint_key, identity, hashlib.sha256).hexdigest()"""
        inner = self._inner.copy()
        inner.update(identity)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def _is_pan_shaped(value: str) -> bool:
    return MIN_PAN_LENGTH <= len(value) <= MAX_PAN_LENGTH and value.isascii() and value.isdigit()


# Kept leading digits by PAN length: 6, fewer when fewer than 6 would be left to encrypt.
_HEAD = {length: min(6, length - KEPT_TAIL - MIN_ENCRYPTED) for length in range(MIN_PAN_LENGTH, MAX_PAN_LENGTH + 1)}


def _split(number: str) -> tuple[str, str, str]:
    """(kept head, encrypted middle, kept last 4)."""
    head = _HEAD[len(number)]
    return number[:head], number[head:-KEPT_TAIL], number[-KEPT_TAIL:]


def _tweak(number: str, head: str, tail: str) -> bytes:
    return f"pan:{len(number)}:{head}:{tail}".encode()


def _shift_last(digits: str, delta: int) -> str:
    return digits[:-1] + str((ord(digits[-1]) - 48 + delta) % 10)
