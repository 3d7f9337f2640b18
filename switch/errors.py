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
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc


@dataclass(frozen=True, slots=True)
class Violation:
    """One rejected field: its path in the request (e.g. "amount.currency") and why."""

    field: str
    description: str


class SwitchError(Exception):
    status_code = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(SwitchError):
    status_code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: list[Violation]) -> None:
        detail = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(f"invalid request: {detail}")
        self.violations = violations


class NotFound(SwitchError):
    status_code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(SwitchError):
    status_code = grpc.StatusCode.FAILED_PRECONDITION


class IdempotencyConflict(SwitchError):
    status_code = grpc.StatusCode.ALREADY_EXISTS


class ConcurrentUpdate(SwitchError):
    status_code = grpc.StatusCode.ABORTED


class Overloaded(SwitchError):
    status_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(SwitchError):
    status_code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unavailable(SwitchError):
    status_code = grpc.StatusCode.UNAVAILABLE
