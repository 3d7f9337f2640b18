"""Between the wire and the domain: parse and validate requests, build responses.

Parsing collects every bad field before it raises, so a caller sees all of its
mistakes at once as InvalidRequest with field paths ("amount.currency",
"source.card.pan"). Descriptions never echo a card number, and identifiers and
free text (keys, ids, names, metadata) must not hold one: it would be stored and
echoed in clear (luhn.contains_card_number says what looks like one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from google.protobuf.timestamp_pb2 import Timestamp

from switch.cards import luhn
from switch.domain import currency
from switch.domain.errors import InvalidRequest, SwitchError, Violation
from switch.domain.models import (
    Account,
    Authorization,
    AuthorizationResult,
    Card,
    Money,
    Operation,
    OperationKind,
    Source,
    Token,
    TransactionRecord,
    TransactionStatus,
    unchecked_authorization,
    unchecked_card,
    unchecked_money,
)
from switch.money.fees import FeeQuote, QuoteRequest
from switch.v1 import switch_pb2 as pb

MAX_KEY = 128
MAX_ID = 64
MAX_NAME = 128
MAX_ACCOUNT_ID = 128
MAX_METADATA_ENTRIES = 32
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
# Every item of a batch gets an answer in one message, which must fit the send
# limit (16 MiB): at most MAX_BATCH_ITEMS answers of at most ~4.2 KiB (the largest
# error, see switch.domain.errors) is under 9 MB. tests/test_convert.py checks the sum.
MAX_BATCH_ITEMS = 2_000
NO_CARD_NUMBER = "must not contain a card number"
PAN_LENGTHS = range(12, 20)
_RAIL = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_CURRENCIES = frozenset(currency.MINOR_UNIT_EXPONENT)
_has_card_number = luhn.contains_card_number


class _Violations:
    def __init__(self) -> None:
        self.found: list[Violation] = []

    def add(self, field: str, description: str) -> None:
        self.found.append(Violation(field, description))

    def text(
        self, field: str, value: str, max_length: int, *, required: bool = True, card_number_allowed: bool = False
    ) -> str:
        """Checks an identifier or free text; the description never quotes the value."""
        if required and not value:
            self.add(field, "is required")
        elif len(value) > max_length:
            self.add(field, f"must be at most {max_length} characters")
        elif not value.isprintable():
            self.add(field, "must not contain control characters")
        elif not card_number_allowed and _has_card_number(value):
            self.add(field, NO_CARD_NUMBER)
        return value

    def money(self, field: str, value: pb.Money) -> Money | None:
        ok = True
        if value.minor_units <= 0:
            self.add(f"{field}.minor_units", "must be a positive number of minor units")
            ok = False
        if not currency.is_known(value.currency):
            self.add(f"{field}.currency", "must be an ISO 4217 currency code, e.g. USD")
            ok = False
        return Money(value.minor_units, value.currency) if ok else None

    def raise_if_any(self) -> None:
        if self.found:
            raise InvalidRequest(self.found)


def authorization(request: pb.AuthorizeRequest, deadline: float | None = None) -> Authorization:
    """The request as an Authorization; InvalidRequest lists every bad field.

    A valid request takes the quick path: each field checked once, no violation
    list, values built without re-checking (Money is not validated twice). Any
    doubt sends the whole request through the full parser, which alone says what
    is wrong, so errors are exactly what they always were.
    """
    key = request.idempotency_key
    merchant = request.merchant_id
    amount = request.amount  # unset: the default message, whose minor_units (0) fail below
    units = amount.minor_units
    code = amount.currency
    if (
        units > 0
        and code in _CURRENCIES
        and key
        and len(key) <= MAX_KEY
        and key.isprintable()
        and merchant
        and len(merchant) <= MAX_ID
        and merchant.isprintable()
        and not _has_card_number(key)
        and not _has_card_number(merchant)
    ):
        which = request.WhichOneof("source")
        source: Source | None = None
        if which == "card":
            source = _quick_card(request.card)
        elif which == "account":
            source = _quick_account(request.account)
        elif which == "token":
            source = _quick_token(request)
        destination = None
        if request.HasField("destination"):
            destination = _quick_account(request.destination)
            if destination is None:
                source = None
        metadata = _quick_metadata(request.metadata) if request.metadata else ()
        if source is not None and metadata is not None:
            # units is a protobuf int64 (an int in range) and code a known currency: Money's own checks.
            money = unchecked_money(units, code)
            return unchecked_authorization(
                key, merchant, money, source, destination=destination, metadata=metadata, deadline=deadline
            )
    return _authorization_checked(request, deadline)


def _quick_card(card: pb.Card) -> Card | None:
    """The card when every field is valid (as _card checks them), else None."""
    pan = card.pan
    month = card.expiry_month
    year = card.expiry_year
    holder = card.holder_name
    if (
        12 <= len(pan) <= 19
        and pan.isascii()
        and pan.isdigit()
        and 1 <= month <= 12
        and 2000 <= year <= 2199
        and len(holder) <= MAX_NAME
        and holder.isprintable()
        and (not holder or not _has_card_number(holder))
        and luhn.luhn_valid(pan)
    ):
        return unchecked_card(pan, month, year, holder)
    return None


def _quick_account(account: pb.Account) -> Account | None:
    """The account when every field is valid (as _account checks them), else None."""
    account_id = account.id
    country = account.country
    holder = account.holder_name
    rail = account.rail
    if (
        account_id
        and len(account_id) <= MAX_ACCOUNT_ID
        and account_id.isprintable()
        and len(holder) <= MAX_NAME
        and holder.isprintable()
        and (not holder or not _has_card_number(holder))
        and _RAIL.fullmatch(rail)
        and not _has_card_number(rail)
        and (not country or _COUNTRY.fullmatch(country))
    ):
        return Account(rail, account_id, country, holder)
    return None


def _quick_token(request: pb.AuthorizeRequest) -> Token | None:
    value = request.token
    key_id = request.token_key_id
    if (
        value
        and len(value) <= MAX_ID
        and value.isprintable()
        and len(key_id) <= MAX_ID
        and key_id.isprintable()
        and (not key_id or not _has_card_number(key_id))
    ):
        return Token(value, key_id)
    return None


def _quick_metadata(entries: Mapping[str, str]) -> tuple[tuple[str, str], ...] | None:
    pairs = tuple(sorted(entries.items()))
    if len(pairs) > MAX_METADATA_ENTRIES:
        return None
    for key, value in pairs:
        if not (
            key
            and len(key) <= MAX_METADATA_KEY
            and key.isprintable()
            and len(value) <= MAX_METADATA_VALUE
            and value.isprintable()
            and not _has_card_number(key)
            and not _has_card_number(value)
        ):
            return None
    return pairs


def _authorization_checked(request: pb.AuthorizeRequest, deadline: float | None = None) -> Authorization:
    """authorization's full parser: collects every violation, in field order."""
    v = _Violations()
    key = v.text("idempotency_key", request.idempotency_key, MAX_KEY)
    merchant = v.text("merchant_id", request.merchant_id, MAX_ID)
    amount = v.money("amount", request.amount) if request.HasField("amount") else None
    if not request.HasField("amount"):
        v.add("amount", "is required")
    source = _source(v, request)
    destination = _account(v, "destination", request.destination) if request.HasField("destination") else None
    metadata = _metadata(v, request.metadata.items())
    v.raise_if_any()
    assert amount is not None and source is not None
    return Authorization(key, merchant, amount, source, destination, metadata, deadline)


def _source(v: _Violations, request: pb.AuthorizeRequest) -> Source | None:
    which = request.WhichOneof("source")
    if which == "card":
        return _card(v, "source.card", request.card)
    if which == "token":
        key_id = v.text("token_key_id", request.token_key_id, MAX_ID, required=False)
        # A token never passes Luhn: the tokenizer says so more helpfully when one does.
        return Token(v.text("source.token", request.token, MAX_ID, card_number_allowed=True), key_id)
    if which == "account":
        return _account(v, "source.account", request.account)
    v.add("source", "set one of card, token or account")
    return None


def _card(v: _Violations, where: str, card: pb.Card) -> Card:
    pan = card.pan
    if not pan.isascii() or not pan.isdigit():
        v.add(f"{where}.pan", "must hold digits only")
    elif len(pan) not in PAN_LENGTHS:
        v.add(f"{where}.pan", f"must be {PAN_LENGTHS.start} to {PAN_LENGTHS.stop - 1} digits")
    elif not luhn.luhn_valid(pan):
        v.add(f"{where}.pan", "fails the Luhn check")
    if not 1 <= card.expiry_month <= 12:
        v.add(f"{where}.expiry_month", "must be 1 to 12")
    if not 2000 <= card.expiry_year <= 2199:
        v.add(f"{where}.expiry_year", "must be a four-digit year")
    holder = v.text(f"{where}.holder_name", card.holder_name, MAX_NAME, required=False)
    return Card(pan, card.expiry_month, card.expiry_year, holder)


def card_to_tokenize(request: pb.TokenizeRequest) -> Card:
    v = _Violations()
    if not request.HasField("card"):
        v.add("card", "is required")
    card = _card(v, "card", request.card)
    v.raise_if_any()
    return card


def quote_request(request: pb.QuoteFeeRequest) -> QuoteRequest:
    v = _Violations()
    merchant = v.text("merchant_id", request.merchant_id, MAX_ID)
    amount = v.money("amount", request.amount) if request.HasField("amount") else None
    if not request.HasField("amount"):
        v.add("amount", "is required")
    if request.rail and not _RAIL.fullmatch(request.rail):
        v.add("rail", "must name a rail: lower-case letters, digits, '-' or '_', at most 32")
    elif _has_card_number(request.rail):
        v.add("rail", NO_CARD_NUMBER)
    for field in ("card_country", "merchant_country"):
        if getattr(request, field) and not _COUNTRY.fullmatch(getattr(request, field)):
            v.add(field, "must be an ISO 3166-1 alpha-2 code, e.g. BR")
    if request.settlement_currency and not currency.is_known(request.settlement_currency):
        v.add("settlement_currency", "must be an ISO 4217 currency code, e.g. EUR")
    v.raise_if_any()
    assert amount is not None
    return QuoteRequest(
        merchant,
        amount,
        request.rail,
        request.card_country,
        request.merchant_country,
        request.settlement_currency,
    )


def quote_to_proto(quote: FeeQuote) -> pb.FeeQuote:
    currency_code = quote.fee.currency
    return pb.FeeQuote(
        fee=money_to_proto(quote.fee),
        shares=[
            pb.FeeShare(party=party, amount=pb.Money(minor_units=units, currency=currency_code))
            for party, units in quote.shares
        ],
        schedule=quote.schedule,
        settlement_amount=None if quote.settlement is None else money_to_proto(quote.settlement),
    )


def _account(v: _Violations, field: str, account: pb.Account) -> Account:
    if not _RAIL.fullmatch(account.rail):
        v.add(f"{field}.rail", "must name a rail: lower-case letters, digits, '-' or '_', at most 32")
    elif _has_card_number(account.rail):
        v.add(f"{field}.rail", NO_CARD_NUMBER)
    # An account id may be a long number (a bank account, a phone number without its
    # "+"): 1 in 10 of those passes Luhn, so refusing card-like ones would refuse real
    # accounts. It is the instrument itself, kept like the card is (masked).
    account_id = v.text(f"{field}.id", account.id, MAX_ACCOUNT_ID, card_number_allowed=True)
    if account.country and not _COUNTRY.fullmatch(account.country):
        v.add(f"{field}.country", "must be an ISO 3166-1 alpha-2 code, e.g. BR")
    holder = v.text(f"{field}.holder_name", account.holder_name, MAX_NAME, required=False)
    return Account(account.rail, account_id, account.country, holder)


def _metadata(v: _Violations, items: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    pairs = tuple(sorted(items))
    if len(pairs) > MAX_METADATA_ENTRIES:
        v.add("metadata", f"must have at most {MAX_METADATA_ENTRIES} entries")
    for key, value in pairs:
        # The field's name quotes the key: not when the key holds a card number.
        name = (
            "metadata[(a key holding a card number)]"
            if _has_card_number(key)
            else f"metadata[{key[:MAX_METADATA_KEY]}]"
        )
        v.text(name, key, MAX_METADATA_KEY)
        v.text(name, value, MAX_METADATA_VALUE, required=False)
    return pairs


def operation(kind: OperationKind, request: pb.CaptureRequest | pb.VoidRequest | pb.RefundRequest) -> Operation:
    v = _Violations()
    transaction_id = v.text("transaction_id", request.transaction_id, MAX_ID)
    key = v.text("idempotency_key", request.idempotency_key, MAX_KEY)
    amount = None
    if not isinstance(request, pb.VoidRequest) and request.HasField("amount"):
        amount = v.money("amount", request.amount)
    v.raise_if_any()
    return Operation(kind, transaction_id, key, amount)


def transaction_id(request: pb.GetTransactionRequest) -> str:
    v = _Violations()
    value = v.text("transaction_id", request.transaction_id, MAX_ID)
    v.raise_if_any()
    return value


def money_to_proto(money: Money) -> pb.Money:
    return pb.Money(minor_units=money.minor_units, currency=money.currency)


def result_to_proto(result: AuthorizationResult) -> pb.AuthorizeResponse:
    return pb.AuthorizeResponse(
        idempotency_key=result.idempotency_key,
        transaction_id=result.transaction_id,
        decision=pb.DECISION_APPROVED if result.approved else pb.DECISION_DECLINED,
        response_code=result.response_code,
        message=result.message,
        route=result.route,
        authorization_code=result.authorization_code,
        token=result.token,
        fee=None if result.fee is None else money_to_proto(result.fee),
        replayed=result.replayed,
    )


def batch_size(request: pb.AuthorizeBatchRequest) -> int:
    """The number of items; InvalidRequest when their answers might not fit one message."""
    count = len(request.requests)
    if count > MAX_BATCH_ITEMS:
        raise InvalidRequest([Violation("requests", f"must hold at most {MAX_BATCH_ITEMS} items")])
    return count


def error_to_proto(idempotency_key: str, error: SwitchError) -> pb.AuthorizeResponse:
    """A failed item of a batch or stream: the error travels in the response.

    The key is echoed only when it is a valid one: an overlong key would make the
    answer as large as the request, and a key holding a card number must not come
    back. A batch's caller matches answers by position; a stream's sees "" and the
    error naming idempotency_key."""
    violations = getattr(error, "violations", [])
    if len(idempotency_key) > MAX_KEY or _has_card_number(idempotency_key):
        idempotency_key = ""
    return pb.AuthorizeResponse(
        idempotency_key=idempotency_key,
        decision=pb.DECISION_UNSPECIFIED,
        message=error.message,
        error=pb.ItemError(
            code=error.code,
            message=error.message,
            field_violations=[pb.FieldViolation(field=x.field, description=x.description) for x in violations],
        ),
    )


_STATUS = {status: pb.TransactionStatus.Value(f"TRANSACTION_STATUS_{status.name}") for status in TransactionStatus}


def record_to_proto(record: TransactionRecord, *, replayed: bool = False) -> pb.Transaction:
    return pb.Transaction(
        transaction_id=record.transaction_id,
        status=_STATUS[record.status],
        authorized=money_to_proto(record.authorized),
        captured=money_to_proto(record.captured),
        refunded=money_to_proto(record.refunded),
        route=record.route,
        masked_instrument=record.masked_instrument,
        response_code=record.response_code,
        merchant_id=record.merchant_id,
        authorization_code=record.authorization_code,
        created_at=_timestamp(record.created_at),
        updated_at=_timestamp(record.updated_at),
        replayed=replayed,
    )


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp
