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
RESOLUTION: Final = "camt.029"  # resolution of investigation: the answer to a recall

# The versions whose official XSDs the tests validate against (README "ISO 20022 messages").

VERSIONS: Final = MappingProxyType(
    {
        IDENTIFICATION_REQUEST: "001.04",
        IDENTIFICATION_REPORT: "001.04",
        CREDIT_TRANSFER: "001.08",
        PAYMENT_RETURN: "001.11",
        RECALL: "001.12",
        STATUS_REPORT: "001.12",
        RESOLUTION: "001.14",
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
        RESOLUTION: "RsltnOfInvstgtn",
    }
)
NAMESPACE_PREFIX: Final = "urn:iso:std:iso:20022:tech:xsd:"
HEADER_NAMESPACE: Final = f"{NAMESPACE_PREFIX}head.001.001.02"


def definition(message_type: str) -> str:
    """The message definition identifier: "pacs.008.001.08"."""
    return f"{message_type}.{VERSIONS[message_type]}"


def namespace(message_type: str) -> str:
    return f"{NAMESPACE_PREFIX}{definition(message_type)}"


# pacs.002 transaction statuses.
ACCEPTED: Final = frozenset({"ACSC", "ACCP", "ACSP"})
SETTLED: Final = "ACSC"
REJECTED: Final = "RJCT"
UNREADABLE: Final = "FF01"  # invalid file format: a message the receiver cannot take

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
RETURN_AFTER_RECALL: Final = "FOCR"  # a return following a cancellation request
RECALL_REASON: Final = "TECH"  # a reversal: the switch never learnt the outcome
# camt.029 confirmations (ExternalInvestigationExecutionConfirmation1Code).
RECALL_ACCEPTED: Final = "CNCL"  # cancelled as requested: the money is to be returned
RECALL_REJECTED: Final = "RJCR"  # cancellation request rejected
NO_ORIGINAL: Final = "NOOR"  # a recall rejected: the original transfer was never received
