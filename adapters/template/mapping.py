"""Pure translation between the adapter contract and the example protocol: no I/O.

A request, for every operation kind:

    {"id": "T1A2B3C4000000000001", "op": "authorize", "ref": "tx-1", "merchant": "m-1",
     "amount": 1000, "currency": "USD",
     "card": {"number": "4111111111111111", "expiry": "2099-12"}}   an authorization from a card,
     "account": "ana@bank"                                           or from an account;
     "original_auth": "K7M2QX"                                       captures, voids, refunds

and its answer, which never echoes the card or the account:

    {"id": "T1A2B3C4000000000001", "ref": "tx-1", "result": "approved",
     "auth_code": "K7M2QX", "network_ref": "N0000000001"}

"id" is the client's, unique among the requests in flight; "ref" is the switch's
transaction id, so a capture, void or refund names its original and a stray
answer cannot settle the wrong request.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Final

from switch.adapters.contract import AdapterRequest, AdapterResult
from switch.domain.models import OperationKind, mask_account, mask_pan
from switch.domain.response_codes import ResponseCode

from .framing import Message

MAX_TEXT = 64

# The network's results onto the switch's one vocabulary. A result not listed here
# is still an answer, so it is a definite decline (do not honor), never unknown.
RESULTS: Final = MappingProxyType(
    {
        "approved": ResponseCode.APPROVED,
        "do_not_honor": ResponseCode.DO_NOT_HONOR,
        "insufficient_funds": ResponseCode.INSUFFICIENT_FUNDS,
        "expired_card": ResponseCode.EXPIRED_CARD,
        "unknown_account": ResponseCode.INVALID_ACCOUNT,
        "over_limit": ResponseCode.EXCEEDS_AMOUNT_LIMIT,
        "not_permitted": ResponseCode.NOT_PERMITTED,
        "invalid": ResponseCode.INVALID_TRANSACTION,
    }
)


def to_message(request: AdapterRequest, request_id: str) -> Message:
    """The wire request for one AdapterRequest. ValueError when the protocol cannot carry it:
    the adapter builds every message before sending any, so such a request goes out never."""
    if request.amount.minor_units < 0 or (request.kind is OperationKind.AUTHORIZE and not request.amount.minor_units):
        raise ValueError("an amount must be positive")
    message: Message = {
        "id": request_id,
        "op": request.kind.value,
        "ref": _checked(request.transaction_id, "transaction id"),
        "merchant": _checked(request.merchant_id, "merchant id"),
        "amount": request.amount.minor_units,
        "currency": request.amount.currency,
    }
    if request.kind is OperationKind.AUTHORIZE:
        message.update(_source(request))
    elif request.authorization_code:
        message["original_auth"] = _checked(request.authorization_code, "authorization code")
    return message


def match_key(message: Message) -> tuple[str, str]:
    """What pairs an answer with its request: the client's id, then the transaction id."""
    return str(message.get("id", "")), str(message.get("ref", ""))


def to_result(answer: Message) -> AdapterResult:
    result = str(answer.get("result", ""))
    reference = str(answer.get("network_ref", ""))
    code = RESULTS.get(result)
    if code is None:
        code = ResponseCode.DO_NOT_HONOR
        return AdapterResult(code.code, f"{code.message}: unknown network result", network_reference=reference)
    if not code.approved:
        return AdapterResult(code.code, f"{code.message} ({result})", network_reference=reference)
    auth_code = str(answer.get("auth_code", ""))
    return AdapterResult(code.code, code.message, authorization_code=auth_code, network_reference=reference)


def refused(reason: str) -> AdapterResult:
    """The decline of a request the protocol cannot carry. Nothing was sent, so it is definite."""
    code = ResponseCode.INVALID_TRANSACTION
    return AdapterResult(code.code, f"{code.message}: {reason}")


def describe(message: Message) -> str:
    """A one-line summary for logs: chosen fields only, the card and the account masked."""
    parts = [f"{field}={message[field]}" for field in ("op", "id", "ref", "result") if field in message]
    card = message.get("card")
    if isinstance(card, dict):
        parts.append(f"card={mask_pan(str(card.get('number', '')))}")
    if "account" in message:
        parts.append(f"account={mask_account(str(message['account']))}")
    return " ".join(parts)


def _source(request: AdapterRequest) -> dict[str, Any]:
    if request.card is not None:
        # What the network's schema allows (messages.schema.json), refused unsent otherwise.
        if not (request.card.pan.isascii() and request.card.pan.isdigit() and 12 <= len(request.card.pan) <= 19):
            raise ValueError("a card number must be 12 to 19 digits")
        card: dict[str, str] = {"number": request.card.pan}
        if request.card.expiry_month:  # a card from a token carries no expiry
            if not (1 <= request.card.expiry_month <= 12 and 1 <= request.card.expiry_year <= 9999):
                raise ValueError("a card expiry must be a month 1 to 12 of a four-digit year")
            card["expiry"] = f"{request.card.expiry_year:04d}-{request.card.expiry_month:02d}"
        return {"card": card}
    if request.account is not None:
        return {"account": _checked(request.account.id, "account id")}
    raise ValueError("an authorization needs a card or an account")


def _checked(value: str, what: str) -> str:
    # The error never includes the value: it may be an account id.
    if not value or len(value) > MAX_TEXT or not value.isprintable():
        raise ValueError(f"{what} must be 1 to {MAX_TEXT} printable characters")
    return value
