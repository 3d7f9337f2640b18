"""The response-code table: every code the switch answers with, in one place.

Of the switch's three kinds of code, this is the business outcome of an
authorization ("00" approved, "05", "51", "91" ... declined), carried in a
successful call's answer. It is not a gRPC status: a call that fails carries one
of those instead (switch.domain.errors.Code, mapped in switch.api.status).

Codes follow ISO 8583 field 39 as card networks use them; local rails' reasons
are mapped onto the same table by their adapters, so callers see one vocabulary.
"""

from __future__ import annotations

import enum


class ResponseCode(enum.Enum):
    """A two-character response code, whether it approves, and its message."""

    APPROVED = ("00", True, "approved")
    REFER_TO_ISSUER = ("01", False, "refer to card issuer")
    DO_NOT_HONOR = ("05", False, "do not honor")
    INVALID_TRANSACTION = ("12", False, "invalid transaction")
    INVALID_AMOUNT = ("13", False, "invalid amount")
    INVALID_ACCOUNT = ("14", False, "invalid card number or account")
    INSUFFICIENT_FUNDS = ("51", False, "insufficient funds")
    EXPIRED_CARD = ("54", False, "expired card")
    NOT_PERMITTED = ("57", False, "transaction not permitted to cardholder")
    SUSPECTED_FRAUD = ("59", False, "suspected fraud")
    EXCEEDS_AMOUNT_LIMIT = ("61", False, "exceeds withdrawal amount limit")
    RESTRICTED = ("62", False, "restricted card")
    EXCEEDS_COUNT_LIMIT = ("65", False, "exceeds withdrawal frequency limit")
    ISSUER_UNAVAILABLE = ("91", False, "issuer or switch inoperative")
    NO_ROUTE = ("92", False, "no route to the destination")
    VIOLATION_OF_LAW = ("93", False, "transaction cannot be completed: violation of law")
    SYSTEM_ERROR = ("96", False, "system malfunction")

    def __init__(self, code: str, approved: bool, message: str) -> None:
        self.code = code
        self.approved = approved
        self.message = message

    @classmethod
    def from_code(cls, code: str) -> ResponseCode:
        """The entry for a two-character code; an unknown code is a do-not-honor decline."""
        return _BY_CODE.get(code, cls.DO_NOT_HONOR)


_BY_CODE = {member.code: member for member in ResponseCode}
