"""The ISO 8583:1987 field specification this adapter and its simulator speak.

Binary bitmaps, ASCII fields, ASCII lengths for the variable fields. Every
standard data element 2..128 is defined, from pyiso8583's own ISO 8583:1987
ASCII specification: networks echo fields the switch never sends (32 acquiring
institution, 33, 44, 48, 55...), and a bitmap bit for an undefined field leaves
its length unknown, so the whole answer, an approval included, would be lost.
The fields the switch uses are restated below and take precedence. Framing (the
2-byte length header) is in framing.py, not here.
"""

from __future__ import annotations

from typing import Any, Final

from iso8583.specs import default_ascii

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


# Data elements 2..128 as ISO 8583:1987 lays them out in ASCII. Not "1": pyiso8583's is a hex-text
# bitmap, ours is binary (below), and it also decodes a tertiary bitmap flagged by field 65 with "1".
_STANDARD: Final = {field: dict(entry) for field, entry in default_ascii.items() if field.isdigit() and field != "1"}

SPEC: Final[dict[str, dict[str, Any]]] = {
    **_STANDARD,
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
    "18": _fixed(4, "Merchant Category Code"),
    "22": _fixed(3, "Point of Service Entry Mode"),
    "25": _fixed(2, "Point of Service Condition Code"),
    "32": _llvar(11, "Acquiring Institution Identification Code"),
    "37": _fixed(12, "Retrieval Reference Number"),
    "38": _fixed(6, "Authorization Identification Response"),
    "39": _fixed(2, "Response Code"),
    "41": _fixed(8, "Card Acceptor Terminal Identification"),
    "42": _fixed(15, "Card Acceptor Identification Code"),
    "43": _fixed(40, "Card Acceptor Name/Location"),
    "49": _fixed(3, "Currency Code, Transaction (ISO 4217 numeric)"),
    "70": _fixed(3, "Network Management Information Code"),
    "90": _fixed(42, "Original Data Elements"),
}

# ISO 8583:1987 character types of the fields the switch sends. pyiso8583 checks lengths and the
# ASCII encoding, not content, so mapping checks these before encoding (content.py).
NUMERIC = "n"  # digits only
ALPHANUMERIC = "an"  # letters and digits
PRINTABLE = "ans"  # letters, digits and special characters (printable ASCII, space included)
TYPES: Final = {
    "2": NUMERIC,
    "3": NUMERIC,
    "4": NUMERIC,
    "7": NUMERIC,
    "11": NUMERIC,
    "12": NUMERIC,
    "13": NUMERIC,
    "14": NUMERIC,
    "18": NUMERIC,
    "22": NUMERIC,
    "25": NUMERIC,
    "32": NUMERIC,
    "37": ALPHANUMERIC,
    "38": ALPHANUMERIC,  # right-padded with spaces when shorter, as networks accept
    "39": ALPHANUMERIC,
    "41": PRINTABLE,
    "42": PRINTABLE,
    "43": PRINTABLE,
    "49": NUMERIC,
    "70": NUMERIC,
    "90": NUMERIC,
}

# The answer to each request type; anything else is not a request we make.
RESPONSE_TO: Final = {
    AUTHORIZATION: AUTHORIZATION_RESPONSE,
    COMPLETION: COMPLETION_RESPONSE,
    REVERSAL: REVERSAL_RESPONSE,
    REVERSAL_ADVICE: REVERSAL_ADVICE_RESPONSE,
    NETWORK: NETWORK_RESPONSE,
}
