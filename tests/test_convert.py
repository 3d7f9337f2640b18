"""convert.authorization: its quick path for valid requests agrees with the full parser on
everything; errors stay small enough to deliver; identifiers hold no card number."""

from __future__ import annotations

from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch import server
from switch.api import convert
from switch.api.status import to_grpc_status
from switch.domain import errors
from switch.domain.errors import InvalidRequest, Violation
from switch.domain.models import Account, Authorization, Card, Money, OperationKind, Token
from switch.v1 import switch_pb2 as pb

VISA = "4111111111111111"
T = TypeVar("T")


def mostly(good: list[T], bad: list[T]) -> st.SearchStrategy[T]:
    """One of good nine times in ten, so that many whole requests are valid; else one of bad."""
    return st.sampled_from(good * (9 * len(bad)) + bad * len(good))


texts = mostly(
    ["a", "key-1", "m" * 64, "é", "+5511999990006"],
    ["", "m" * 65, "k" * 129, "tab\there", "x" * 513, "k-4111111111111111", "4111 1111 1111 1111"],
)
optional_texts = mostly(["", "A B", "é"], ["x" * 129, "new\nline", "\x00", "Ada 5555555555554444"])
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
    rail=mostly(["instant", "ach_2"], ["", "Instant", "r" * 33, "4111111111111111"]),
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
    st.dictionaries(mostly(["a", "b", "k" * 64], ["", "k" * 65, "\t", "4111111111111111"]), optional_texts, max_size=3),
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


# --- errors small enough to deliver ---------------------------------------------------------

WIDE = "\U0001f600"  # 4 bytes of UTF-8, and 12 once grpc percent-encodes the status message
DEFAULT_MAX_METADATA = 8 * 1024  # grpc.max_metadata_size when a client sets nothing


def test_an_error_keeps_ten_violations_and_counts_the_rest() -> None:
    error = InvalidRequest([Violation(f"metadata[k{n}]", "must not contain control characters") for n in range(300)])
    assert len(error.violations) == errors.MAX_VIOLATIONS + 1
    assert error.violations[:2] == [Violation(f"metadata[k{n}]", "must not contain control characters") for n in (0, 1)]
    assert error.violations[-1] == Violation("...", "290 more violations left out")
    assert error.message.startswith("invalid request: metadata[k0]: must not contain control characters; ")
    assert len(error.message.encode()) <= errors.MAX_ERROR_MESSAGE_BYTES
    few = InvalidRequest([Violation("amount", "is required")])
    assert few.violations == [Violation("amount", "is required")]
    assert few.message == "invalid request: amount: is required"


def test_long_fields_descriptions_and_messages_are_cut_at_a_character() -> None:
    (violation,) = InvalidRequest([Violation(WIDE * 100, "é" * 500)]).violations
    assert violation.field.endswith("...") and violation.description.endswith("...")
    assert len(violation.field.encode()) <= errors.MAX_FIELD_BYTES
    assert len(violation.description.encode()) <= errors.MAX_DESCRIPTION_BYTES
    assert violation.field.rstrip(".") == WIDE * len(violation.field.rstrip("."))  # no half character
    assert len(errors.NotFound(f"no transaction {'x' * 10_000}").message) <= errors.MAX_ERROR_MESSAGE_BYTES
    assert errors.clip("short", 5) == "short"


def _largest_error() -> InvalidRequest:
    """Every part at its cap, in the characters that cost the most on the wire."""
    return InvalidRequest([Violation(WIDE * 200 + str(n), WIDE * 200) for n in range(500)])


def test_the_largest_error_fits_a_default_clients_metadata_limit() -> None:
    status = to_grpc_status(_largest_error())
    # What the client counts: each entry's name + value + 32, the status message
    # percent-encoded (3 bytes for every byte that is not plain ASCII), and the
    # request id (128 characters at most) the handler adds.
    size = len("grpc-message") + 3 * len(status.details.encode()) + 32
    size += len("grpc-status") + 2 + 32 + len("x-request-id") + 128 + 32
    for key, value in status.trailing_metadata:
        size += len(key) + len(value) * 4 // 3 + 32  # a -bin value travels in base64
    assert size < DEFAULT_MAX_METADATA * 3 // 4, size


def test_a_full_batch_of_the_largest_errors_fits_one_message() -> None:
    item = convert.error_to_proto("k" * convert.MAX_KEY, _largest_error())
    assert convert.MAX_BATCH_ITEMS * (item.ByteSize() + 4) < server.MAX_MESSAGE_BYTES * 3 // 4


def test_a_batch_holds_at_most_max_batch_items() -> None:
    batch = pb.AuthorizeBatchRequest(requests=[pb.AuthorizeRequest()] * convert.MAX_BATCH_ITEMS)
    assert convert.batch_size(batch) == convert.MAX_BATCH_ITEMS
    batch.requests.append(pb.AuthorizeRequest())
    with pytest.raises(InvalidRequest) as caught:
        convert.batch_size(batch)
    assert [v.field for v in caught.value.violations] == ["requests"]


def test_an_item_error_echoes_only_a_valid_key() -> None:
    error = InvalidRequest([Violation("idempotency_key", "must not contain a card number")])
    assert convert.error_to_proto("k-1", error).idempotency_key == "k-1"
    assert convert.error_to_proto(f"order {VISA}", error).idempotency_key == ""
    assert convert.error_to_proto("k" * (convert.MAX_KEY + 1), error).idempotency_key == ""


# --- card numbers where identifiers and free text belong ------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: setattr(r, "idempotency_key", f"k-{VISA}"), "idempotency_key"),
        (lambda r: setattr(r, "merchant_id", "4111 1111 1111 1111"), "merchant_id"),
        (lambda r: r.card.__setattr__("holder_name", f"A {VISA}"), "source.card.holder_name"),
        (lambda r: r.metadata.__setitem__("note", VISA), "metadata[note]"),
        (lambda r: r.metadata.__setitem__(VISA, "x"), "metadata[(a key holding a card number)]"),
        (lambda r: r.destination.CopyFrom(pb.Account(rail=VISA, id="a")), "destination.rail"),
        (
            lambda r: r.destination.CopyFrom(pb.Account(rail="instant", id="a", holder_name=VISA)),
            "destination.holder_name",
        ),
    ],
)
def test_a_card_number_in_an_identifier_or_free_text_is_refused(change: Any, field: str) -> None:
    request = valid_request()
    change(request)
    with pytest.raises(InvalidRequest) as caught:
        convert.authorization(request)
    assert [(v.field, v.description) for v in caught.value.violations] == [(field, "must not contain a card number")]
    assert VISA not in caught.value.message


def test_an_account_id_may_be_a_long_number() -> None:
    """Bank account and phone numbers pass Luhn one time in ten: account ids are not checked."""
    request = valid_request()
    request.ClearField("card")
    request.account.CopyFrom(pb.Account(rail="instant", id="5511999990006"))
    assert convert.authorization(request).source == Account("instant", "5511999990006", "", "")


def test_follow_up_calls_refuse_a_card_number_as_transaction_id_or_key() -> None:
    with pytest.raises(InvalidRequest) as caught:
        convert.transaction_id(pb.GetTransactionRequest(transaction_id=VISA))
    assert [v.field for v in caught.value.violations] == ["transaction_id"]
    capture = pb.CaptureRequest(transaction_id="tx_1", idempotency_key=VISA)
    with pytest.raises(InvalidRequest) as caught:
        convert.operation(OperationKind.CAPTURE, capture)
    assert [v.field for v in caught.value.violations] == ["idempotency_key"]
