"""Idempotency: what makes two requests "the same", and how answers are kept for replays.

A request's hash covers everything that changes its meaning, with the card
replaced by its keyed fingerprint, so the hash is safe to store. The stored
answer is the exact response given, encoded with orjson, so a replay returns it
field for field with replayed=true.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from switch.domain.models import (
    Account,
    Authorization,
    AuthorizationResult,
    Card,
    Instrument,
    Money,
    Operation,
    TransactionRecord,
)
from switch.stores.rows import record_from_row, transaction_row


def authorization_hash(authorization: Authorization, instrument: Instrument) -> str:
    source = authorization.source
    metadata = authorization.metadata
    if isinstance(source, Card):
        card_details: list[Any] | None = [source.expiry_month, source.expiry_year, source.holder_name]
        account = None
    else:
        card_details = None
        account = _account(source) if isinstance(source, Account) else None
    destination = authorization.destination
    amount = authorization.amount
    # The exact list hashed since the first version (stored hashes must keep matching):
    # only how its parts are fetched is cheaper (kind._value_ is kind.value, without the
    # enum property's call; an empty metadata is sorted as []).
    data = orjson.dumps(
        [
            "authorize",
            authorization.merchant_id,
            amount.minor_units,
            amount.currency,
            instrument.kind._value_,
            instrument.fingerprint,  # the card or account itself, keyed: safe to hash and store
            card_details,
            account,
            None if destination is None else _account(destination),
            sorted(metadata) if metadata else [],
        ]
    )
    return hashlib.sha256(data).hexdigest()[:32]


def operation_hash(operation: Operation) -> str:
    amount = operation.amount
    return _digest(
        [
            operation.kind.value,
            operation.transaction_id,
            None if amount is None else amount.minor_units,
            None if amount is None else amount.currency,
        ]
    )


def _account(account: Account | None) -> list[str] | None:
    return None if account is None else [account.rail, account.id, account.country, account.holder_name]


def _digest(parts: list[Any]) -> str:
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:32]


def encode_result(result: AuthorizationResult) -> bytes:
    fee = result.fee
    return orjson.dumps(
        {
            "k": result.idempotency_key,
            "t": result.transaction_id,
            "c": result.response_code,
            "m": result.message,
            "r": result.route,
            "a": result.authorization_code,
            "tk": result.token,
            "f": None if fee is None else [fee.minor_units, fee.currency],
        }
    )


def decode_result(payload: bytes, *, replayed: bool) -> AuthorizationResult:
    data = orjson.loads(payload)
    fee = data["f"]
    return AuthorizationResult(
        idempotency_key=data["k"],
        transaction_id=data["t"],
        response_code=data["c"],
        message=data["m"],
        route=data["r"],
        authorization_code=data["a"],
        token=data["tk"],
        fee=None if fee is None else Money(fee[0], fee[1]),
        replayed=replayed,
    )


def encode_record(record: TransactionRecord) -> bytes:
    """A snapshot of a transaction: the answer to a capture, void or refund."""
    return orjson.dumps(transaction_row(record))


def decode_record(payload: bytes) -> TransactionRecord:
    return record_from_row(orjson.loads(payload))
