"""convert.authorization: its quick path for valid requests agrees with the full parser on everything."""

from __future__ import annotations

from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch import convert
from switch.errors import InvalidRequest
from switch.models import Authorization, Card, Money, Token
from switch.v1 import switch_pb2 as pb

VISA = "4111111111111111"
T = TypeVar("T")


def mostly(good: list[T], bad: list[T]) -> st.SearchStrategy[T]:
    """One of good nine times in ten, so that many whole requests are valid; else one of bad."""
    return st.sampled_from(good * (9 * len(bad)) + bad * len(good))


texts = mostly(["a", "key-1", "m" * 64, "é"], ["", "m" * 65, "k" * 129, "tab\there", "x" * 513])
optional_texts = mostly(["", "A B", "é"], ["x" * 129, "new\nline", "\x00"])
pans = mostly(
    [VISA, "378282246310005", "4000000000006"],
    ["4111111111111112", "4111-1111-1111-1111", "", "41111111111", "4" * 20, "\u0664" * 16],
)
cards = st.builds(
    pb.Card,
    pan=pans,
    expiry_month=mostly([1, 12], [0, 13]),
    expiry_year=mostly([2000, 2030, 2199], [1999, 2200]),
    holder_name=optional_texts,
)
accounts = st.builds(
    pb.Account,
    rail=mostly(["instant", "ach_2"], ["", "Instant", "r" * 33]),
    id=texts,
    country=mostly(["", "BR"], ["br", "BRA"]),
    holder_name=optional_texts,
)
amounts = st.builds(
    pb.Money,
    minor_units=mostly([1, 1000, 2**63 - 1], [-5, 0]),
    currency=mostly(["USD", "JPY"], ["QQQ", "", "usd"]),
)
metadata: st.SearchStrategy[dict[str, str]] = st.one_of(
    st.just({}),
    st.dictionaries(mostly(["a", "b", "k" * 64], ["", "k" * 65, "\t"]), optional_texts, max_size=3),
    st.dictionaries(st.text("abc", min_size=1, max_size=3), st.just("v"), min_size=30, max_size=34),
)


@st.composite
def requests(draw: st.DrawFn) -> pb.AuthorizeRequest:
    request = pb.AuthorizeRequest(idempotency_key=draw(texts), merchant_id=draw(texts), metadata=draw(metadata))
    if draw(mostly([True], [False])):
        request.amount.CopyFrom(draw(amounts))
    which = draw(mostly(["card", "token", "account"], [None]))
    if which == "card":
        request.card.CopyFrom(draw(cards))
    elif which == "account":
        request.account.CopyFrom(draw(accounts))
    elif which == "token":
        request.token = draw(texts)
        request.token_key_id = draw(optional_texts)
    destination = draw(st.one_of(st.none(), st.none(), accounts))
    if destination is not None:
        request.destination.CopyFrom(destination)
    return request


def outcome(parse: object, request: pb.AuthorizeRequest) -> Authorization | list[tuple[str, str]]:
    try:
        return parse(request, 12.5)  # type: ignore[operator,no-any-return]
    except InvalidRequest as error:
        return [(violation.field, violation.description) for violation in error.violations]


@settings(max_examples=600, deadline=None)
@given(requests())
def test_quick_path_agrees_with_the_full_parser(request: pb.AuthorizeRequest) -> None:
    quick = outcome(convert.authorization, request)
    assert quick == outcome(convert._authorization_checked, request)
    if isinstance(quick, Authorization):
        assert quick.deadline == 12.5
        assert type(quick.amount) is Money and type(quick.amount.minor_units) is int


def valid_request() -> pb.AuthorizeRequest:
    return pb.AuthorizeRequest(
        idempotency_key="k-1",
        merchant_id="m-1",
        amount=pb.Money(minor_units=1999, currency="USD"),
        card=pb.Card(pan=VISA, expiry_month=12, expiry_year=2030, holder_name="A B"),
    )


def test_valid_requests_take_the_quick_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def full_parser(request: pb.AuthorizeRequest, deadline: float | None = None) -> Authorization:
        raise AssertionError("a valid request went through the full parser")

    monkeypatch.setattr(convert, "_authorization_checked", full_parser)
    request = valid_request()
    expected = Authorization("k-1", "m-1", Money(1999, "USD"), Card(VISA, 12, 2030, "A B"))
    made = convert.authorization(request)
    assert made == expected and hash(made) == hash(expected)
    request.metadata["b"] = "2"
    request.metadata["a"] = "1"
    request.destination.CopyFrom(pb.Account(rail="instant", id="acct-1", country="BR"))
    made = convert.authorization(request)
    assert made.metadata == (("a", "1"), ("b", "2"))
    assert made.destination is not None and made.destination.id == "acct-1"
    request.ClearField("card")
    request.token = "4111110000001111"
    assert convert.authorization(request).source == Token("4111110000001111", "")


def test_errors_keep_their_fields_and_order() -> None:
    request = valid_request()
    request.merchant_id = ""
    request.amount.currency = "QQQ"
    request.card.pan = "4111111111111112"
    request.metadata[""] = "v"
    with pytest.raises(InvalidRequest) as caught:
        convert.authorization(request)
    assert [(v.field, v.description) for v in caught.value.violations] == [
        ("merchant_id", "is required"),
        ("amount.currency", "must be an ISO 4217 currency code, e.g. USD"),
        ("source.card.pan", "fails the Luhn check"),
        ("metadata[]", "is required"),
    ]
