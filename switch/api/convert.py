"""Between the wire and the domain: parse and validate requests, build responses.

What a valid request is, field by field, is switch.api.rules: each rule (test,
field, message) is written there once, and both of this module's ways through a
request read it. A valid authorization takes the quick path, functions compiled
from the rules at import; anything they refuse goes through the full parser,
which reports from the same rules every bad field before it raises, so a caller
sees all of its mistakes at once as InvalidRequest with field paths
("amount.currency", "source.card.pan"). Descriptions never echo a card number, and
identifiers and free text (keys, ids, names, metadata) must not hold one: it would
be stored and echoed in clear (luhn.contains_card_number says what looks like one).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Sequence

import orjson
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from switch.api import rules
from switch.cards import luhn
from switch.domain.alerts import DEFAULT_PAGE, AlertQuery, RiskAlert
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
    mask_account,
    mask_pan,
    unchecked_authorization,
    unchecked_card,
    unchecked_money,
)
from switch.money.fees import FeeQuote, QuoteRequest
from switch.v1 import switch_pb2 as pb

# Every item of a batch gets an answer in one message, which must fit the send
# limit (16 MiB): at most MAX_BATCH_ITEMS answers of at most ~4.2 KiB (the largest
# error, see switch.domain.errors) is under 9 MB. tests/test_convert.py checks the sum.
MAX_BATCH_ITEMS = 2_000
MAX_KEY = rules.MAX_KEY
NO_CARD_NUMBER = rules.NO_CARD_NUMBER  # switch.api.decorators refuses headers with it
_has_card_number = luhn.contains_card_number
_is_rail: Callable[[str], object] = rules.NAMES["is_rail"]  # type: ignore[assignment]


def _token(key_id: str, value: str) -> Token:
    return Token(value, key_id)


# The quick path, compiled from the rules: it builds the values unchecked once every
# rule holds, and an int64 with a known currency is all Money's own checks ask.
_quick_authorization: Callable[[pb.AuthorizeRequest, float | None], Authorization | None] = rules.AUTHORIZATION.quick(
    unchecked_authorization,
    parts={
        "amount": unchecked_money,
        "card": unchecked_card,
        "token": _token,
        "account": Account,
        "destination": Account,
    },
    extras=("deadline",),
)


def authorization(request: pb.AuthorizeRequest, deadline: float | None = None) -> Authorization:
    """The request as an Authorization; InvalidRequest lists every bad field.

    A valid request takes the quick path: each field tested once against the rules,
    no violation list, values built without re-checking (Money is not validated
    twice). Anything it refuses goes through the full parser, which alone says what
    is wrong, from the same rules.
    """
    made = _quick_authorization(request, deadline)
    return made if made is not None else _authorization_checked(request, deadline)


def _authorization_checked(request: pb.AuthorizeRequest, deadline: float | None = None) -> Authorization:
    """authorization's full parser: reports every violation, in field order."""
    _raise_if_any(rules.AUTHORIZATION, request)
    which = request.WhichOneof("source")
    source: Source = (
        _card(request.card)
        if which == "card"
        else _account(request.account)
        if which == "account"
        else Token(request.token, request.token_key_id)
    )
    return Authorization(
        request.idempotency_key,
        request.merchant_id,
        _money(request.amount),
        source,
        _account(request.destination) if request.HasField("destination") else None,
        tuple(sorted(request.metadata.items())),
        deadline,
    )


def alert_query(request: pb.ListAlertsRequest) -> AlertQuery:
    _raise_if_any(rules.ALERTS, request)
    since = request.since.ToNanoseconds() / 1e9 if request.HasField("since") else 0.0
    until = request.until.ToNanoseconds() / 1e9 if request.HasField("until") else math.inf
    if until <= since:
        raise InvalidRequest([Violation("until", "must be after since")])
    after = _page_cursor(request.page_token) if request.page_token else None
    return AlertQuery(request.kind, request.merchant_id, since, until, after, request.page_size or DEFAULT_PAGE)


def alerts_to_proto(alerts: Sequence[RiskAlert], query: AlertQuery) -> pb.ListAlertsResponse:
    """The page; its next_page_token when it is full (the next page may be empty)."""
    response = pb.ListAlertsResponse(alerts=[_alert(alert) for alert in alerts])
    if alerts and len(alerts) >= query.limit:
        response.next_page_token = base64.urlsafe_b64encode(orjson.dumps(alerts[-1].cursor)).decode()
    return response


def _alert(alert: RiskAlert) -> pb.Alert:
    try:
        decided = orjson.loads(alert.decision) if alert.decision else {}
    except orjson.JSONDecodeError:
        decided = {}
    return pb.Alert(
        transaction_id=alert.transaction_id,
        merchant_id=alert.merchant_id,
        kind=alert.kind,
        reason=str(decided.get("reason", "")),
        response_code=alert.response_code,
        created_at=_timestamp(alert.created_at),
        sanctions_version=str(decided.get("sanctions", "")),
    )


def _page_cursor(token: str) -> tuple[float, str]:
    """The cursor a next_page_token carries; INVALID_ARGUMENT for anything the switch did not write."""
    try:
        created_at, transaction_id = orjson.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, TypeError, UnicodeEncodeError, binascii.Error):
        created_at = transaction_id = None
    if type(created_at) not in (int, float) or not isinstance(transaction_id, str):
        raise InvalidRequest([Violation("page_token", "is not a page token this switch gave")])
    return float(created_at), transaction_id


def _raise_if_any(group: rules.Group, request: Message) -> None:
    """InvalidRequest naming every rule of group that request breaks."""
    found: list[Violation] = []
    group.report(request, "", found)
    if found:
        raise InvalidRequest(found)


def _money(value: pb.Money) -> Money:
    return Money(value.minor_units, value.currency)


def _card(card: pb.Card) -> Card:
    return Card(card.pan, card.expiry_month, card.expiry_year, card.holder_name)


def _account(account: pb.Account) -> Account:
    return Account(account.rail, account.id, account.country, account.holder_name)


def card_to_tokenize(request: pb.TokenizeRequest) -> Card:
    found = [] if request.HasField("card") else [Violation("card", rules.REQUIRED.message)]
    rules.CARD.report(request.card, "card.", found)
    if found:
        raise InvalidRequest(found)
    return _card(request.card)


def quote_request(request: pb.QuoteFeeRequest) -> QuoteRequest:
    _raise_if_any(rules.QUOTE, request)
    return QuoteRequest(
        request.merchant_id,
        _money(request.amount),
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


_FOLLOW_UPS = {pb.CaptureRequest: rules.CAPTURE, pb.VoidRequest: rules.VOID, pb.RefundRequest: rules.REFUND}


def operation(kind: OperationKind, request: pb.CaptureRequest | pb.VoidRequest | pb.RefundRequest) -> Operation:
    _raise_if_any(_FOLLOW_UPS[type(request)], request)
    amount = None if isinstance(request, pb.VoidRequest) or not request.HasField("amount") else request.amount
    return Operation(kind, request.transaction_id, request.idempotency_key, None if amount is None else _money(amount))


def transaction_id(request: pb.GetTransactionRequest) -> str:
    _raise_if_any(rules.TRANSACTION, request)
    return request.transaction_id


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


MAX_REASON_LENGTH = rules.MAX_REASON
_DETOKENIZE_FIELDS = {"source.token": "token", "source.token_key_id": "key_id"}


def detokenize_request(request: pb.DetokenizeRequest) -> tuple[Token, str]:
    """(the token, the reason given); InvalidRequest naming token, key_id or reason.
    The token's own checks (shape, Luhn, key id) are the tokenizer's: see detokenize_error."""
    found: list[Violation] = []
    if not request.token:
        found.append(Violation("token", rules.REQUIRED.message))
    reason = request.reason.strip()
    if not reason:
        found.append(Violation("reason", "is required: why the card number is needed (a case or ticket id)"))
    elif len(reason) > MAX_REASON_LENGTH or not reason.isprintable():
        found.append(Violation("reason", f"must be printable text of at most {MAX_REASON_LENGTH} characters"))
    elif _has_card_number(reason):
        found.append(Violation("reason", NO_CARD_NUMBER))
    if found:
        raise InvalidRequest(found)
    return Token(request.token, request.key_id), reason


def detokenize_error(error: InvalidRequest) -> InvalidRequest:
    """The tokenizer's refusal, with the fields named as DetokenizeRequest names them."""
    renamed = [Violation(_DETOKENIZE_FIELDS.get(v.field, v.field), v.description) for v in error.violations]
    return InvalidRequest(renamed)


def holder_tier_request(request: pb.SetHolderTierRequest) -> tuple[Card | Token | Account, str]:
    """(the holder, the tier); InvalidRequest naming the holder's fields, tier or reason.
    A card's number alone is read; a token's own checks are the tokenizer's (holder_error)."""
    _raise_if_any(rules.HOLDER_TIER, request)
    which = request.WhichOneof("holder")
    holder: Card | Token | Account
    if which == "card":
        holder = unchecked_card(request.card.pan, 0, 0)
    elif which == "token":
        holder = Token(request.token, request.token_key_id)
    else:
        holder = Account(request.account.rail, request.account.id)
    return holder, request.tier


_HOLDER_FIELDS = {"source.token": "holder.token", "source.token_key_id": "token_key_id"}


def holder_error(error: InvalidRequest) -> InvalidRequest:
    """The tokenizer's refusal of a holder's token, with the fields named as SetHolderTierRequest names them."""
    return InvalidRequest([Violation(_HOLDER_FIELDS.get(v.field, v.field), v.description) for v in error.violations])


def describe_holder_tier(request: pb.SetHolderTierRequest) -> tuple[str, str]:
    """What the audit trail records of a SetHolderTier call: the holder masked (a card by
    its first 6 and last 4 digits, an account by its rail and masked id), the tier and
    the reason; nothing that holds a card number where none belongs."""
    which = request.WhichOneof("holder")
    if which == "card":
        pan = request.card.pan
        is_pan = pan.isascii() and pan.isdigit() and len(pan) in rules.PAN_LENGTHS
        holder = f"card {mask_pan(pan)}" if is_pan else "card (not a card number)"
    elif which == "token":
        holder = f"token {_recordable_token(request.token)}"
    elif which == "account":
        rail = request.account.rail if _is_rail(request.account.rail) else "(not a rail)"
        holder = f"account {rail}:{mask_account(request.account.id[: rules.MAX_ACCOUNT_ID])}"
    else:
        holder = "(no holder)"
    tier = request.tier if request.tier.isascii() and request.tier.isprintable() else "(not a tier)"
    return holder, f"tier {tier[: rules.MAX_TIER]}; reason: {_recordable(request.reason)}"


def _recordable_token(token: str) -> str:
    """A token as the audit trail may keep it (a token is no card number: it fails the Luhn
    check); whatever stands where a token goes and is no token is not kept."""
    if not (12 <= len(token) <= 19 and token.isascii() and token.isdigit()) or luhn.luhn_valid(token):
        return "(not a token)"
    return token


def _recordable(reason: str) -> str:
    reason = reason.strip()[:MAX_REASON_LENGTH]
    return "(not recordable)" if not reason.isprintable() or _has_card_number(reason) else reason


def fraud_report(request: pb.ReportFraudRequest) -> tuple[str, bool]:
    """(the transaction id, whether it is fraud); InvalidRequest naming transaction_id or reason."""
    _raise_if_any(rules.FRAUD_REPORT, request)
    return request.transaction_id, request.fraud


def describe_fraud_report(request: pb.ReportFraudRequest) -> tuple[str, str]:
    """What the audit trail records of a ReportFraud call: the transaction, the label, the reason."""
    transaction_id = request.transaction_id[: rules.MAX_ID]
    if not (transaction_id.isascii() and transaction_id.isprintable()) or _has_card_number(transaction_id):
        transaction_id = "(not a transaction id)"
    label = "fraud" if request.fraud else "not fraud"
    return f"transaction {transaction_id}", f"{label}; reason: {_recordable(request.reason)}"


def model_promotion(request: pb.PromoteModelRequest) -> tuple[str, str, str]:
    """(the policy version, the model version, the reason); InvalidRequest naming the field."""
    _raise_if_any(rules.MODEL_PROMOTION, request)
    return request.policy_version, request.model_version, request.reason.strip()


def describe_model_promotion(request: pb.PromoteModelRequest) -> tuple[str, str]:
    """What the audit trail records of a PromoteModel call: the policy and model named, the reason."""
    policy, model = (_recordable_version(version) for version in (request.policy_version, request.model_version))
    return f"policy {policy} model {model}", f"reason: {_recordable(request.reason)}"


def _recordable_version(version: str) -> str:
    version = version[: rules.MAX_VERSION]
    if not (version.isascii() and version.isprintable()) or _has_card_number(version):
        return "(not a version)"
    return version or "(none)"


def describe_detokenize(request: pb.DetokenizeRequest) -> tuple[str, str]:
    """What the audit trail records of a Detokenize call: the token and key id (a token
    is no card number: it fails the Luhn check) and the reason. Whatever a caller put
    where a token goes that holds a card number, or is no token at all, is not kept."""
    token = _recordable_token(request.token)
    key_id = request.key_id if request.key_id.isascii() and request.key_id.isprintable() else "(not a key id)"
    return f"token {token} key {key_id[:32] or '(active)'}", f"reason: {_recordable(request.reason)}"
