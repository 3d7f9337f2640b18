"""What a leaf of the audit chain is made of, row by row, and the key verify finds its
row by. The compiled seal_rows (switch/stores/audit/_merkle.pyx) builds the same.

A payload starts with the kind of row, so a row of one table never hashes as a row
of another. An entry's response is bytes: it follows the JSON of its other fields
as it is (the JSON array is self-delimiting, so the two cannot be confused).
"""

from __future__ import annotations

from typing import Any

import orjson

TRANSACTION = b"t"
ENTRY = b"e"
WITHDRAWN = b"w"
EVENT = b"v"

_RESPONSE = 9  # an entry row's response (switch.stores.rows.ENTRY_COLUMNS)
# An entry row's decision and alert, each left out when empty: the rows sealed before
# they existed verify unchanged.
_DECISION, _ALERT = 13, 14


def transaction_payload(row: tuple[Any, ...]) -> bytes:
    """row: in switch.stores.rows.TRANSACTION_COLUMNS order."""
    return TRANSACTION + orjson.dumps(row)


def transaction_key(row: tuple[Any, ...]) -> list[Any]:
    return ["t", row[0], row[17]]  # transaction id, version


def entry_payload(row: tuple[Any, ...]) -> bytes:
    """row: in switch.stores.rows.ENTRY_COLUMNS order."""
    response: bytes = row[_RESPONSE]
    fields = row[:_RESPONSE] + row[_RESPONSE + 1 : _DECISION]
    fields += tuple(value for value in row[_DECISION : _ALERT + 1] if value)
    return ENTRY + orjson.dumps(fields) + response


def entry_key(row: tuple[Any, ...]) -> list[Any]:
    return ["e", row[1], row[2], row[11], row[12]]  # merchant, idempotency key, created_at, pending


def withdrawn_payload(merchant_id: str, idempotency_key: str, created_at: float) -> bytes:
    return WITHDRAWN + orjson.dumps((merchant_id, idempotency_key, created_at))


def event_payload(row: tuple[Any, ...]) -> bytes:
    """row: in switch.stores.audit.chain.EVENT_COLUMNS order."""
    return EVENT + orjson.dumps(row)
