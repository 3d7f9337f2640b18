"""Pure translation between the adapter contract and ISO 8583 messages: no I/O.

to_message builds the request for one AdapterRequest; to_result reads the answer
back as an AdapterResult in the switch's response-code vocabulary. The RRN is
derived from the transaction id, so the authorization, its completion and its
reversal all carry the same retrieval reference, which is how the network ties
them together. The client assigns each message's STAN, except the 0100's, which
its reversal's field 90 must repeat without any stored state (original.py).
Every request's fields are checked against their ISO 8583 character types.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final

from switch.adapters.contract import AdapterRequest, AdapterResult
from switch.domain.models import OperationKind, mask_pan
from switch.domain.response_codes import ResponseCode

from . import content, original, spec
from .framing import Message
from .terminal import Terminal

MAX_STAN = original.MAX_STAN

# ISO 4217 numeric codes (field 49). Extend as routes need more currencies.
NUMERIC_CURRENCY: Final = MappingProxyType(
    {
        "USD": "840",
        "EUR": "978",
        "GBP": "826",
        "JPY": "392",
        "BRL": "986",
        "INR": "356",
        "KES": "404",
        "CNY": "156",
        "KWD": "414",
        "CAD": "124",
        "AUD": "036",
        "CHF": "756",
        "MXN": "484",
        "SGD": "702",
        "HKD": "344",
        "ZAR": "710",
        "NGN": "566",
        "SEK": "752",
        "BHD": "048",
        "CLP": "152",
    }
)
ALPHA_CURRENCY: Final = MappingProxyType({numeric: alpha for alpha, numeric in NUMERIC_CURRENCY.items()})

# Field 39 codes networks send that the switch's table does not list, mapped onto it.
# Codes the table lists map to themselves; anything else is a do-not-honor decline.
_NETWORK_CODES: Final = MappingProxyType(
    {
        "03": ResponseCode.NOT_PERMITTED,  # invalid merchant
        "04": ResponseCode.RESTRICTED,  # pick up card
        "41": ResponseCode.RESTRICTED,  # lost card
        "43": ResponseCode.RESTRICTED,  # stolen card
        "55": ResponseCode.DO_NOT_HONOR,  # incorrect PIN
        "58": ResponseCode.NOT_PERMITTED,  # not permitted to terminal
        "85": ResponseCode.APPROVED,  # no reason to decline (zero-amount verification)
    }
)

_REQUEST_TYPE: Final = {
    OperationKind.AUTHORIZE: spec.AUTHORIZATION,
    OperationKind.CAPTURE: spec.COMPLETION,
    OperationKind.VOID: spec.REVERSAL,
    OperationKind.REFUND: spec.COMPLETION,  # a refund advice: 0220 with processing code 20
}


class UnsupportedCurrency(ValueError):
    """The currency has no ISO 4217 numeric code in NUMERIC_CURRENCY."""


def numeric_currency(alpha: str) -> str:
    try:
        return NUMERIC_CURRENCY[alpha]
    except KeyError:
        raise UnsupportedCurrency(f"currency {alpha} has no ISO 4217 numeric code for field 49") from None


def retrieval_reference(transaction_id: str) -> str:
    """Twelve digits derived from the transaction id: the same for every message of one transaction."""
    digest = int.from_bytes(hashlib.sha256(transaction_id.encode()).digest()[:8], "big")
    return f"{digest % 10**12:012d}"


def to_message(
    request: AdapterRequest, *, stan: int, terminal: Terminal, now: datetime, reversal_advice: bool = False
) -> Message:
    """The ISO request for one AdapterRequest. reversal_advice: a 0420 instead of a 0400 for a void.

    stan is the client's, for every message but the 0100, whose STAN and field 7 come from the
    transaction id (original.py). now is the current time, in UTC."""
    if request.kind not in _REQUEST_TYPE:
        raise ValueError(f"an ISO 8583 card route cannot {request.kind.value}")
    mti = _REQUEST_TYPE[request.kind]
    if request.kind is OperationKind.VOID and reversal_advice:
        mti = spec.REVERSAL_ADVICE
    if mti == spec.AUTHORIZATION:
        stan, sent = original.stan(request.transaction_id), original.sent_at(request.transaction_id) or now
    else:
        sent = now
    message: Message = {
        "t": mti,
        "3": spec.REFUND if request.kind is OperationKind.REFUND else spec.PURCHASE,
        "4": _digits(request.amount.minor_units, 12, "amount"),
        **_stamp(stan, sent, terminal),
        "32": terminal.acquirer_id,
        "37": retrieval_reference(request.transaction_id),
        "41": _text(terminal.terminal_id, 8, "terminal id"),
        "42": _text(request.merchant_id, 15, "merchant id"),
        "49": numeric_currency(request.amount.currency),
    }
    if request.card is not None:
        # The PAN travels on the 0100, and on a reversal whenever the switch still holds the
        # card (the adapter's own reverse()): networks that match by PAN need it there.
        message["2"] = request.card.pan
    if mti == spec.AUTHORIZATION:
        if request.card is None:
            raise ValueError("an ISO 8583 authorization needs the clear card")
        if request.card.expiry_month:  # a card from a token carries no expiry
            message["14"] = f"{request.card.expiry_year % 100:02d}{request.card.expiry_month:02d}"
        message["18"] = terminal.merchant_category_code
        message["22"] = terminal.pos_entry_mode
        message["25"] = terminal.pos_condition_code
        message["43"] = terminal.card_acceptor
    else:
        if request.authorization_code:
            message["38"] = _text(request.authorization_code, 6, "authorization code")
        if mti in (spec.REVERSAL, spec.REVERSAL_ADVICE):
            message["90"] = original_data(request.transaction_id, terminal)
    content.check(message)
    return message


def original_data(transaction_id: str, terminal: Terminal) -> str:
    """Field 90 of a reversal: the 0100's MTI, STAN, field 7 and acquirer, then the forwarding
    institution (none: zeros). Recomputed from the transaction id as the 0100 computed them; an id
    that carries no time gives zeros for field 7, and the RRN in field 37 identifies the original."""
    sent = original.sent_at(transaction_id)
    transmitted = sent.strftime("%m%d%H%M%S") if sent is not None else "0" * 10
    acquirer = terminal.acquirer_id.rjust(11, "0")
    return spec.AUTHORIZATION + f"{original.stan(transaction_id):06d}" + transmitted + acquirer + "0" * 11


def network_message(code: str, *, stan: int, now: datetime) -> Message:
    """An 0800: sign-on (spec.SIGN_ON) or echo (spec.ECHO)."""
    message = {"t": spec.NETWORK, "7": _utc(now).strftime("%m%d%H%M%S"), "11": f"{stan:06d}", "70": code}
    content.check(message)
    return message


def match_key(message: Message) -> tuple[str, str]:
    """What pairs an answer with its request: STAN and RRN together, then the RRN (empty for
    network messages). Together, because a 0100's STAN is derived, so two in flight may share it."""
    return pair_key(message.get("11", ""), message.get("37", ""))


def pair_key(stan: str, rrn: str) -> tuple[str, str]:
    return f"{stan}/{rrn}", rrn


def to_result(answer: Message) -> AdapterResult:
    """The AdapterResult for an ISO answer; an unknown field 39 code is a do-not-honor decline."""
    raw_code = answer.get("39", "")
    code = _NETWORK_CODES.get(raw_code) or ResponseCode.from_code(raw_code)
    return AdapterResult(
        code.code,
        code.message,
        authorization_code=answer.get("38", "").strip() if code.approved else "",
        network_reference=answer.get("37", ""),
    )


def next_stan(stan: int) -> int:
    """1..999999 and round again: a STAN of 0 is not valid on most networks."""
    return stan % MAX_STAN + 1


def _stamp(stan: int, when: datetime, terminal: Terminal) -> Message:
    """Field 7 in UTC, as the standard has it; 12 and 13 in the terminal's own time zone."""
    local = when.astimezone(terminal.timezone)
    return {
        "7": _utc(when).strftime("%m%d%H%M%S"),
        "11": f"{stan:06d}",
        "12": local.strftime("%H%M%S"),
        "13": local.strftime("%m%d"),
    }


def _utc(when: datetime) -> datetime:
    return when.astimezone(UTC)


def _digits(value: int, width: int, what: str) -> str:
    text = f"{value:0{width}d}"
    if value < 0 or len(text) > width:
        raise ValueError(f"{what} does not fit {width} digits")
    return text


def _text(value: str, width: int, what: str) -> str:
    if len(value) > width or not value.isascii():
        raise ValueError(f"{what} must be at most {width} ASCII characters")
    return value.ljust(width)


def describe(message: Message) -> str:
    """A one-line summary for logs: the PAN masked, nothing else sensitive."""
    parts = [f"mti={message.get('t', '?')}", f"stan={message.get('11', '')}", f"rrn={message.get('37', '')}"]
    if "39" in message:
        parts.append(f"code={message['39']}")
    if "70" in message:
        parts.append(f"network={message['70']}")
    if "2" in message:
        parts.append(f"pan={mask_pan(message['2'])}")
    return " ".join(parts)
