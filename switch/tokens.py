"""The tokenizer boundary: the last place a PAN is seen before the pipeline's stores.

It turns a card or an account into an Instrument: a keyed HMAC fingerprint (the
only identity Redis keys, velocity counters and the journal ever see) and a
masked form for display. Format-preserving tokens (FF1) arrive with the cext
tokenizer; until then the switch issues no tokens and accepts none.
"""

from __future__ import annotations

import hashlib
import hmac

from switch.errors import InvalidRequest, Violation
from switch.models import Account, Card, Instrument, InstrumentKind, Token, mask_pan


class Tokenizer:
    def __init__(self, fingerprint_key: bytes) -> None:
        if len(fingerprint_key) < 16:
            raise ValueError("the fingerprint key must be at least 16 bytes")
        self._key = fingerprint_key

    def card(self, card: Card) -> Instrument:
        return Instrument(InstrumentKind.CARD, self._fingerprint(b"card:" + card.pan.encode()), mask_pan(card.pan))

    def account(self, account: Account) -> Instrument:
        identity = f"account:{account.rail}:{account.id}".encode()
        return Instrument(InstrumentKind.ACCOUNT, self._fingerprint(identity), mask_account(account.id))

    def detokenize(self, token: Token) -> Card:
        raise InvalidRequest([Violation("source.token", "unknown token")])

    def _fingerprint(self, identity: bytes) -> str:
        return hmac.new(self._key, identity, hashlib.sha256).hexdigest()


def mask_account(account_id: str) -> str:
    """Shows the last four characters of an account id or alias, at most a third of it."""
    shown = min(4, len(account_id) // 3)
    return "*" * (len(account_id) - shown) + account_id[len(account_id) - shown :]
