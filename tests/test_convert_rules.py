"""One table drives both of convert's ways through a request: for every rule in
switch.api.rules, a request that breaks that rule alone is refused by the quick path,
and the report names exactly that rule's field and message."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings

from switch.api import convert, rules
from switch.domain.errors import InvalidRequest, Violation
from switch.domain.models import OperationKind
from switch.v1 import switch_pb2 as pb
from tests.test_convert import VISA, requests, valid_request

Change = Callable[[Any], None]
Reach = Callable[[Any], Any]

# A value that breaks the rule with this message and passes the rules before it in its
# field (bad_value checks both); "must be at most N characters" takes N + 1 of them.
BAD: dict[str, object] = {
    rules.REQUIRED.message: "",
    "must not contain control characters": "tab\there",
    rules.NO_CARD_NUMBER: VISA,
    "must hold digits only": "4111-1111-1111-1111",
    "must be 12 to 19 digits": "4" * 11,
    "fails the Luhn check": "4111111111111112",
    "must be 1 to 12": 13,
    "must be a four-digit year": 2200,
    "must be a positive number of minor units": 0,
    "must be an ISO 4217 currency code, e.g. USD": "usd",
    "must be an ISO 4217 currency code, e.g. EUR": "QQQ",
    rules.IS_RAIL.message: "Instant",
    rules.IS_COUNTRY.message: "BRA",
}

# How each case of a oneof is set to something valid, before one of its rules is broken.
ONE_OF: dict[str, Change] = {
    "card": lambda m: m.card.CopyFrom(pb.Card(pan=VISA, expiry_month=1, expiry_year=2030, holder_name="A B")),
    "token": lambda m: setattr(m, "token", "tok_1"),
    "account": lambda m: m.account.CopyFrom(pb.Account(rail="instant", id="acct-1", country="BR", holder_name="A B")),
}


def bad_value(field: rules.Field, rule: rules.Rule) -> object:
    at_most = re.fullmatch(r"must be at most (\d+) characters", rule.message)
    value = "x" * (int(at_most[1]) + 1) if at_most else BAD[rule.message]
    earlier = field.rules[: field.rules.index(rule)]
    assert all(other.check(value) for other in earlier) and not rule.check(value), (field.path, rule, value)
    return value


def breaking(group: rules.Group, reach: Reach, prefix: str) -> Iterator[tuple[str, str, Change]]:
    """(field path, message, a change that breaks that rule alone) for every rule of
    group, whose message a valid request holds at reach(request)."""
    for member in group.members:
        if isinstance(member, rules.Field):
            for rule in member.rules:
                yield prefix + member.path, rule.message, _set(reach, member.name, bad_value(member, rule))
        elif isinstance(member, rules.Part):
            if not member.optional:
                yield prefix + member.name, rules.REQUIRED.message, _clear(reach, member.name)
            yield from breaking(member.group, _at(reach, member.name), f"{prefix}{member.name}.")
        elif isinstance(member, rules.OneOf):
            yield prefix + member.name, member.missing, _clear(reach, member.name)
            for case, of_case in member.cases.items():
                inner = (
                    breaking(of_case, reach, prefix)
                    if case in member.scalars
                    else breaking(of_case, _at(reach, case), f"{prefix}{member.name}.{case}.")
                )
                for path, message, change in inner:
                    yield path, message, _both(_choose(reach, case), change)
        else:
            many = {f"k{n}": "v" for n in range(rules.MAX_METADATA_ENTRIES + 1)}
            yield prefix + member.name, member.count.message, _add(reach, member.name, many)
            for rule in member.key.rules:
                key = bad_value(member.key, rule)
                assert isinstance(key, str)
                yield member.entry_path(key), rule.message, _add(reach, member.name, {key: "v"})
            for rule in member.value.rules:
                value = bad_value(member.value, rule)
                yield member.entry_path("note"), rule.message, _add(reach, member.name, {"note": value})


def _at(reach: Reach, name: str) -> Reach:
    return lambda request: getattr(reach(request), name)


def _set(reach: Reach, name: str, value: object) -> Change:
    return lambda request: setattr(reach(request), name, value)


def _clear(reach: Reach, name: str) -> Change:
    return lambda request: reach(request).ClearField(name)


def _add(reach: Reach, name: str, entries: dict[str, Any]) -> Change:
    return lambda request: getattr(reach(request), name).update(entries)


def _choose(reach: Reach, case: str) -> Change:
    return lambda request: ONE_OF[case](reach(request))


def _both(first: Change, second: Change) -> Change:
    def change(request: Any) -> None:
        first(request)
        second(request)

    return change


def full_request() -> pb.AuthorizeRequest:
    """A valid request with every optional part set, so that each rule has a value to break."""
    request = valid_request()
    request.destination.CopyFrom(pb.Account(rail="ach_2", id="acct-2", country="US", holder_name="C D"))
    request.metadata["note"] = "x"
    return request


def _id(case: tuple[str, str, Change]) -> str:
    return f"{case[0]}: {case[1]}"


AUTHORIZATION_CASES = list(breaking(rules.AUTHORIZATION, lambda request: request, ""))


def test_the_full_request_takes_the_quick_path() -> None:
    request = full_request()
    made = convert._quick_authorization(request, 1.5)
    assert made is not None and made == convert._authorization_checked(request, 1.5)
    for choose in ONE_OF.values():
        choose(request)
        assert convert._quick_authorization(request, None) is not None


@pytest.mark.parametrize("case", AUTHORIZATION_CASES, ids=_id)
def test_each_rule_of_an_authorization_is_checked_by_both_paths(case: tuple[str, str, Change]) -> None:
    path, message, change = case
    request = full_request()
    change(request)
    assert convert._quick_authorization(request, None) is None
    with pytest.raises(InvalidRequest) as caught:
        convert.authorization(request)
    assert caught.value.violations == [Violation(path, message)]
    assert VISA not in caught.value.message


def test_the_cases_cover_every_rule_of_an_authorization() -> None:
    paths = {path for path, _, _ in AUTHORIZATION_CASES}
    for expected in ("source.card.pan", "source.account.rail", "source.token", "token_key_id", "destination.id"):
        assert expected in paths
    assert "metadata[(a key holding a card number)]" in paths
    assert len(AUTHORIZATION_CASES) == len({(path, message) for path, message, _ in AUTHORIZATION_CASES})


@settings(max_examples=600, deadline=None)
@given(requests())
def test_the_quick_path_refuses_exactly_the_requests_the_report_names(request: pb.AuthorizeRequest) -> None:
    found: list[Violation] = []
    rules.AUTHORIZATION.report(request, "", found)
    assert (convert._quick_authorization(request, None) is None) == bool(found)


# --- the calls that have only the report ---------------------------------------------------

MONEY = pb.Money(minor_units=250, currency="USD")
REPORTED: list[tuple[str, Callable[[], Any], Callable[[Any], object], rules.Group, Callable[[Any], Any], str]] = [
    (
        "quote",
        lambda: pb.QuoteFeeRequest(
            merchant_id="m-1",
            amount=MONEY,
            rail="instant",
            card_country="BR",
            merchant_country="US",
            settlement_currency="EUR",
        ),
        convert.quote_request,
        rules.QUOTE,
        lambda request: request,
        "",
    ),
    (
        "capture",
        lambda: pb.CaptureRequest(transaction_id="tx-1", idempotency_key="k-1", amount=MONEY),
        lambda request: convert.operation(OperationKind.CAPTURE, request),
        rules.CAPTURE,
        lambda request: request,
        "",
    ),
    (
        "void",
        lambda: pb.VoidRequest(transaction_id="tx-1", idempotency_key="k-1"),
        lambda request: convert.operation(OperationKind.VOID, request),
        rules.VOID,
        lambda request: request,
        "",
    ),
    (
        "refund",
        lambda: pb.RefundRequest(transaction_id="tx-1", idempotency_key="k-1", amount=MONEY),
        lambda request: convert.operation(OperationKind.REFUND, request),
        rules.REFUND,
        lambda request: request,
        "",
    ),
    (
        "get",
        lambda: pb.GetTransactionRequest(transaction_id="tx-1"),
        convert.transaction_id,
        rules.TRANSACTION,
        lambda request: request,
        "",
    ),
    (
        "promote",
        lambda: pb.PromoteModelRequest(policy_version="a66b863188b0a4c7", model_version="e3db7dd2bb9fca02", reason="r"),
        convert.model_promotion,
        rules.MODEL_PROMOTION,
        lambda request: request,
        "",
    ),
    (
        "tokenize",
        lambda: pb.TokenizeRequest(card=pb.Card(pan=VISA, expiry_month=1, expiry_year=2030, holder_name="A B")),
        convert.card_to_tokenize,
        rules.CARD,
        lambda request: request.card,
        "card.",
    ),
]
REPORTED_CASES = [
    (name, make, parse, case)
    for name, make, parse, group, reach, prefix in REPORTED
    for case in breaking(group, reach, prefix)
]


@pytest.mark.parametrize(
    ("name", "make", "parse", "case"), REPORTED_CASES, ids=[f"{c[0]} {_id(c[3])}" for c in REPORTED_CASES]
)
def test_each_rule_of_the_other_calls_is_reported(
    name: str, make: Callable[[], Any], parse: Callable[[Any], object], case: tuple[str, str, Change]
) -> None:
    path, message, change = case
    parse(make())  # valid as made
    request = make()
    change(request)
    with pytest.raises(InvalidRequest) as caught:
        parse(request)
    assert caught.value.violations == [Violation(path, message)]
    assert VISA not in caught.value.message


def test_tokenize_without_a_card_reports_it_and_the_empty_cards_fields() -> None:
    with pytest.raises(InvalidRequest) as caught:
        convert.card_to_tokenize(pb.TokenizeRequest())
    assert [(v.field, v.description) for v in caught.value.violations] == [
        ("card", "is required"),
        ("card.pan", "must hold digits only"),
        ("card.expiry_month", "must be 1 to 12"),
        ("card.expiry_year", "must be a four-digit year"),
    ]


# --- the table itself ---------------------------------------------------------------------


def test_a_rule_may_use_only_the_tables_names() -> None:
    with pytest.raises(ValueError, match=r"not in switch\.api\.rules\.NAMES"):
        rules.Rule("is_valid(value)", "must be valid")


def test_a_group_names_only_fields_its_message_has() -> None:
    with pytest.raises(ValueError, match="has no field 'pin'"):
        rules.Group(pb.Card, rules.Field("pin", rules.REQUIRED))
    with pytest.raises(ValueError, match="is one of"):
        rules.Group(pb.AuthorizeRequest, rules.OneOf("source", "set one", card=rules.CARD))


def test_an_unset_part_needs_no_presence_test_when_its_rules_refuse_the_empty_message() -> None:
    assert rules.MONEY.refuses_empty()  # so the quick path relies on 0 minor units
    request = valid_request()
    request.ClearField("amount")
    assert convert._quick_authorization(request, None) is None
