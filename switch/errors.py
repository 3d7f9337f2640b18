"""The switch's exception tree. Each error carries the gRPC status it maps to.

    SwitchError
    ├── InvalidRequest        INVALID_ARGUMENT, with field violations
    ├── NotFound              NOT_FOUND
    ├── FailedPrecondition    FAILED_PRECONDITION (the transaction's state forbids the call)
    ├── IdempotencyConflict   ALREADY_EXISTS (same key, different request)
    ├── ConcurrentUpdate      ABORTED (lost a race on the same transaction; retry)
    ├── Overloaded            RESOURCE_EXHAUSTED (shed before any side effect)
    ├── DeadlineExceeded      DEADLINE_EXCEEDED
    └── Unavailable           UNAVAILABLE (a store is down; safe to retry with the same key)

A decline is not an error: it is a normal result with a response code. Errors
are mapped to gRPC statuses once, in switch.status. Messages never contain a card
number; callers build them from masked values only.

This module does not import grpc: configuration (which `switch serve` reads before
it forks its workers) raises through modules that import it, and gRPC must not be
loaded before the fork.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Code(enum.IntEnum):
    """The google.rpc.Code (= gRPC status code) values the switch answers with."""

    DEADLINE_EXCEEDED = 4
    INVALID_ARGUMENT = 3
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    INTERNAL = 13
    UNAVAILABLE = 14


@dataclass(frozen=True, slots=True)
class Violation:
    """One rejected field: its path in the request (e.g. "amount.currency") and why."""

    field: str
    description: str


class SwitchError(Exception):
    code = Code.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(SwitchError):
    code = Code.INVALID_ARGUMENT

    def __init__(self, violations: list[Violation]) -> None:
        detail = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(f"invalid request: {detail}")
        self.violations = violations


class NotFound(SwitchError):
    code = Code.NOT_FOUND


class FailedPrecondition(SwitchError):
    code = Code.FAILED_PRECONDITION


class IdempotencyConflict(SwitchError):
    code = Code.ALREADY_EXISTS


class ConcurrentUpdate(SwitchError):
    code = Code.ABORTED


class Overloaded(SwitchError):
    code = Code.RESOURCE_EXHAUSTED


class DeadlineExceeded(SwitchError):
    code = Code.DEADLINE_EXCEEDED


class Unavailable(SwitchError):
    code = Code.UNAVAILABLE
