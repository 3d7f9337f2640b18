"""Identifiers as schemes accept them: the SWIFT character set, the schema's lengths, a UETR.

Errors never include the value: it may be an account id.
"""

from __future__ import annotations

import hashlib
import uuid

# SWIFT "x" set, which SEPA and CBPR+ identifiers keep to ("_" is not in it).
_SWIFT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?:().,'+ ")
MAX_ID = 35  # Max35Text: MsgId, EndToEndId, TxId, proxy-free ids
MAX_ACCOUNT = 34  # Max34Text: an account's Othr/Id


def is_swift_text(value: str) -> bool:
    return all(c in _SWIFT for c in value)


def is_checked(value: str, limit: int = MAX_ID) -> bool:
    """Whether value is 1 to limit characters of the SWIFT set, as an identifier may be."""
    return 0 < len(value) <= limit and is_swift_text(value) and not value.startswith("/") and "//" not in value


def checked(value: str, what: str, limit: int = MAX_ID) -> str:
    """value when it is 1 to limit characters of the SWIFT set; ValueError otherwise."""
    if not is_checked(value, limit):
        raise ValueError(f"{what} must be 1 to {limit} characters of the SWIFT set")
    return value


def is_printable(value: str, limit: int) -> bool:
    return 0 < len(value) <= limit and value.isprintable()


def printable(value: str, what: str, limit: int) -> str:
    """value for a field that allows any printable text (an alias), bounded."""
    if not is_printable(value, limit):
        raise ValueError(f"{what} must be 1 to {limit} printable characters")
    return value


def end_to_end(transaction_id: str) -> str:
    """The EndToEndId (and TxId) for a switch transaction id: its "_" is outside the SWIFT set."""
    return checked(transaction_id.replace("_", "-"), "transaction id")


def transaction_id(end_to_end_id: str) -> str:
    """The switch transaction id an EndToEndId was made from (end_to_end's inverse, for
    the switch's "tx_" ids); ValueError for one the switch could not have made."""
    candidate = "tx_" + end_to_end_id[3:] if end_to_end_id.startswith("tx-") else end_to_end_id
    if not candidate or end_to_end(candidate) != end_to_end_id or "-" in candidate:
        raise ValueError("the end-to-end id names no transaction of this switch")
    return candidate


def transfer_message_id(transaction_id: str) -> str:
    """The MsgId of a transaction's pacs.008, derived like its EndToEndId: a return or a
    recall names it (OrgnlMsgId) without the switch storing it. One transfer per
    transaction, so it is unique."""
    return checked("M-" + end_to_end(transaction_id), "transaction id")


def uetr(transaction_id: str) -> str:
    """The transfer's UETR, a UUID v4 derived from the transaction id: a resend, a return or a
    recall names the same one without the switch storing it."""
    digest = hashlib.sha256(b"uetr:" + transaction_id.encode()).digest()[:16]
    return str(uuid.UUID(bytes=digest, version=4))
