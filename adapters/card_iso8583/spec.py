"""The ISO 8583:1987 field specification this adapter and its simulator speak.

Binary bitmaps, ASCII fields, ASCII lengths for the variable fields. Only the
fields the switch uses are defined: a message carrying any other field fails to
decode, which is what we want from a peer that drifted from the agreement.
Framing (the 2-byte length header) is in framing.py, not here.
"""

from __future__ import annotations

from typing import Any, Final

AUTHORIZATION = "0100"
AUTHORIZATION_RESPONSE = "0110"
COMPLETION = "0220"
COMPLETION_RESPONSE = "0230"
REVERSAL = "0400"
REVERSAL_RESPONSE = "0410"
REVERSAL_ADVICE = "0420"
REVERSAL_ADVICE_RESPONSE = "0430"
NETWORK = "0800"
NETWORK_RESPONSE = "0810"

# Field 70 network management information codes.
SIGN_ON = "001"
ECHO = "301"

PURCHASE = "000000"  # field 3: goods and services, default accounts
REFUND = "200000"  # field 3: a return of goods, credited to the card


def _fixed(length: int, desc: str) -> dict[str, Any]:
    return {"data_enc": "ascii", "len_enc": "ascii", "len_type": 0, "max_len": length, "desc": desc}


def _llvar(max_length: int, desc: str) -> dict[str, Any]:
    return {"data_enc": "ascii", "len_enc": "ascii", "len_type": 2, "max_len": max_length, "desc": desc}


def _bitmap(desc: str) -> dict[str, Any]:
    return {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 8, "desc": desc}


SPEC: Final[dict[str, dict[str, Any]]] = {
    "h": _fixed(0, "Message Header"),  # none: the TCP length header frames messages
    "t": _fixed(4, "Message Type Identifier"),
    "p": _bitmap("Bitmap, Primary"),
    "1": _bitmap("Bitmap, Secondary"),
    "2": _llvar(19, "Primary Account Number"),
    "3": _fixed(6, "Processing Code"),
    "4": _fixed(12, "Amount, Transaction (minor units)"),
    "7": _fixed(10, "Transmission Date and Time (MMDDhhmmss)"),
    "11": _fixed(6, "System Trace Audit Number"),
    "12": _fixed(6, "Time, Local Transaction (hhmmss)"),
    "13": _fixed(4, "Date, Local Transaction (MMDD)"),
    "14": _fixed(4, "Date, Expiration (YYMM)"),
    "37": _fixed(12, "Retrieval Reference Number"),
    "38": _fixed(6, "Authorization Identification Response"),
    "39": _fixed(2, "Response Code"),
    "41": _fixed(8, "Card Acceptor Terminal Identification"),
    "42": _fixed(15, "Card Acceptor Identification Code"),
    "49": _fixed(3, "Currency Code, Transaction (ISO 4217 numeric)"),
    "70": _fixed(3, "Network Management Information Code"),
    "90": _fixed(42, "Original Data Elements"),
}

# The answer to each request type; anything else is not a request we make.
RESPONSE_TO: Final = {
    AUTHORIZATION: AUTHORIZATION_RESPONSE,
    COMPLETION: COMPLETION_RESPONSE,
    REVERSAL: REVERSAL_RESPONSE,
    REVERSAL_ADVICE: REVERSAL_ADVICE_RESPONSE,
    NETWORK: NETWORK_RESPONSE,
}
