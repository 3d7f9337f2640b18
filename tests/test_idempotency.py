"""Request hashes are stored: authorization_hash must give what it always gave."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.domain.models import Account, Authorization, Card, Instrument, InstrumentKind, Money, Token
from switch.flow.idempotency import authorization_hash


def first_hash(authorization: Authorization, instrument: Instrument) -> str:
    """authorization_hash as first written."""

    def account(value: Account | None) -> list[str] | None:
        return None if value is None else [value.rail, value.id, value.country, value.holder_name]

    source = authorization.source
    card_details = [source.expiry_month, source.expiry_year, source.holder_name] if isinstance(source, Card) else None
    parts: list[Any] = [
        "authorize",
        authorization.merchant_id,
        authorization.amount.minor_units,
        authorization.amount.currency,
        instrument.kind.value,
        instrument.fingerprint,
        card_details,
        account(source) if isinstance(source, Account) else None,
        account(authorization.destination),
        sorted(authorization.metadata),
    ]
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:32]


text = st.text(max_size=12)
accounts = st.builds(Account, rail=st.sampled_from(["instant", "ach"]), id=text, country=text, holder_name=text)
sources = st.one_of(
    st.builds(
        Card,
        pan=st.just("4111111111111111"),
        expiry_month=st.integers(1, 12),
        expiry_year=st.integers(2000, 2199),
        holder_name=text,
    ),
    accounts,
    st.builds(Token, value=text, key_id=text),
)


@st.composite
def authorizations(draw: st.DrawFn) -> tuple[Authorization, Instrument]:
    amount = Money(draw(st.integers(1, 2**63 - 1)), draw(st.sampled_from(["USD", "JPY", "KWD"])))
    metadata = tuple(draw(st.lists(st.tuples(text, text), max_size=4)))  # in any order: the hash sorts it
    authorization = Authorization("key", draw(text), amount, draw(sources), draw(st.none() | accounts), metadata)
    return authorization, Instrument(draw(st.sampled_from(InstrumentKind)), draw(text), "masked")


@settings(max_examples=300, deadline=None)
@given(authorizations())
def test_authorization_hash_is_unchanged(case: tuple[Authorization, Instrument]) -> None:
    authorization, instrument = case
    assert authorization_hash(authorization, instrument) == first_hash(authorization, instrument)


def test_a_known_hash() -> None:
    """Pinned: a hash stored by any version must still match."""
    authorization = Authorization("k", "m-1", Money(1000, "USD"), Card("4111111111111111", 12, 2030, "A B"))
    instrument = Instrument(InstrumentKind.CARD, "ab" * 32, "411111******1111")
    assert authorization_hash(authorization, instrument) == "b1052af3374719b88c0b319c4500f002"
