"""The ISO 20022 vocabulary this rail speaks: message types, namespaces and codes."""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from switch.domain.response_codes import ResponseCode

IDENTIFICATION_REQUEST: Final = "acmt.023"  # alias resolution
IDENTIFICATION_REPORT: Final = "acmt.024"
CREDIT_TRANSFER: Final = "pacs.008"  # FI-to-FI customer credit transfer
PAYMENT_RETURN: Final = "pacs.004"  # a refund
RECALL: Final = "camt.056"  # FI-to-FI payment cancellation request: a reversal
STATUS_REPORT: Final = "pacs.002"

VERSIONS: Final = MappingProxyType(
    {
        IDENTIFICATION_REQUEST: "001.03",
        IDENTIFICATION_REPORT: "001.03",
        CREDIT_TRANSFER: "001.08",
        PAYMENT_RETURN: "001.09",
        RECALL: "001.08",
        STATUS_REPORT: "001.10",
    }
)
# The element under <Document> that each message type wraps its content in.
ROOTS: Final = MappingProxyType(
    {
        IDENTIFICATION_REQUEST: "IdVrfctnReq",
        IDENTIFICATION_REPORT: "IdVrfctnRpt",
        CREDIT_TRANSFER: "FIToFICstmrCdtTrf",
        PAYMENT_RETURN: "PmtRtr",
        RECALL: "FIToFIPmtCxlReq",
        STATUS_REPORT: "FIToFIPmtStsRpt",
    }
)
NAMESPACE_PREFIX: Final = "urn:iso:std:iso:20022:tech:xsd:"


def namespace(message_type: str) -> str:
    return f"{NAMESPACE_PREFIX}{message_type}.{VERSIONS[message_type]}"


# pacs.002 transaction statuses.
ACCEPTED: Final = frozenset({"ACSC", "ACCP", "ACSP"})
REJECTED: Final = "RJCT"

# Rejection reasons (ExternalStatusReason1Code) onto the switch's table; others: do not honor.
REASONS: Final = MappingProxyType(
    {
        "AM04": ResponseCode.INSUFFICIENT_FUNDS,
        "AC01": ResponseCode.INVALID_ACCOUNT,  # incorrect account number
        "AC04": ResponseCode.INVALID_ACCOUNT,  # closed account
        "AC06": ResponseCode.INVALID_ACCOUNT,  # blocked account
        "AM02": ResponseCode.EXCEEDS_AMOUNT_LIMIT,
    }
)
NOT_FOUND: Final = "AC01"  # an alias that resolves to no account
RETURN_REASON: Final = "CUST"  # a refund the customer asked for
RECALL_REASON: Final = "TECH"  # a reversal: the switch never learnt the outcome
