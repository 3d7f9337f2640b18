"""The switch's exception tree. Each error carries the gRPC status it maps to.

    SwitchError
    ├── InvalidRequest        INVALID_ARGUMENT, with field violations
    ├── NotFound              NOT_FOUND
    ├── FailedPrecondition    FAILED_PRECONDITION (the transaction's state forbids the call)
    ├── IdempotencyConflict   ALREADY_EXISTS (same key, different request)
    ├── ConcurrentUpdate      ABORTED (lost a race on the same transaction; retry)
    ├── Overloaded            RESOURCE_EXHAUSTED (shed before any side effect)
    ├── DeadlineExceeded      DEADLINE_EXCEEDED
    ├── Unavailable           UNAVAILABLE (a store is down; safe to retry with the same key)
    ├── Unauthenticated       UNAUTHENTICATED (no verified identity)
    ├── PermissionDenied      PERMISSION_DENIED (no role for the call, or a merchant out of scope)
    └── RateLimited           RESOURCE_EXHAUSTED (the caller is over its rate for the call)

A decline is not an error: it is a normal result with a response code. Errors
are mapped to gRPC statuses once, in switch.api.status. Messages never contain a card
number; callers build them from masked values only.

This module does not import grpc: configuration (which `switch serve` reads before
it forks its workers) raises through modules that import it, and gRPC must not be
loaded before the fork.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Code(enum.IntEnum):
    """The google.rpc.Code (= gRPC status code) values the switch answers with.

    Of the switch's three kinds of code, this is the status code each error
    carries; switch.api.status turns it into the call's gRPC status. It is not a
    response code (switch.domain.response_codes: the outcome of an answered
    authorization). It copies the values of google.rpc.Code (grpc.StatusCode) it
    needs, so that this module imports neither; switch.api.status asserts that
    the names agree."""

    DEADLINE_EXCEEDED = 4
    INVALID_ARGUMENT = 3
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    INTERNAL = 13
    UNAVAILABLE = 14
    PERMISSION_DENIED = 7
    UNAUTHENTICATED = 16


@dataclass(frozen=True, slots=True)
class Violation:
    """One rejected field: its path in the request (e.g. "amount.currency") and why."""

    field: str
    description: str


# An error must reach the caller, and a unary call's error travels in its trailers:
# the status message (grpc-message, percent-encoded: up to 3 bytes per byte) and the
# google.rpc.Status with the violations (grpc-status-details-bin, base64: 4 per 3).
# A default client refuses trailers over 8 KiB (grpc.max_metadata_size). At these
# caps the worst case, every character 4 bytes of UTF-8, is about 5.5 KiB, and an
# ordinary one (ASCII) under 2 KiB; a batch item's error is as small.
MAX_VIOLATIONS = 10  # reported; then one more saying how many were left out
MAX_FIELD_BYTES = 100  # a field path can hold a caller's metadata key
MAX_DESCRIPTION_BYTES = 200
MAX_ERROR_MESSAGE_BYTES = 320
ELIDED = "..."


class SwitchError(Exception):
    code = Code.INTERNAL

    def __init__(self, message: str) -> None:
        message = clip(message, MAX_ERROR_MESSAGE_BYTES)  # it is sent: bounded whatever it quotes
        super().__init__(message)
        self.message = message


class InvalidRequest(SwitchError):
    """INVALID_ARGUMENT with the bad fields, at most MAX_VIOLATIONS of them (every
    error must fit a default client's metadata limit, whatever the request held)."""

    code = Code.INVALID_ARGUMENT

    def __init__(self, violations: list[Violation]) -> None:
        kept = [
            Violation(clip(v.field, MAX_FIELD_BYTES), clip(v.description, MAX_DESCRIPTION_BYTES))
            for v in violations[:MAX_VIOLATIONS]
        ]
        if len(violations) > MAX_VIOLATIONS:
            kept.append(Violation(ELIDED, f"{len(violations) - MAX_VIOLATIONS} more violations left out"))
        detail = "; ".join(f"{v.field}: {v.description}" if v.field else v.description for v in kept)
        super().__init__(f"invalid request: {detail}")
        self.violations = kept


def clip(text: str, max_bytes: int) -> str:
    """text cut to at most max_bytes of UTF-8 (at a character boundary), "..." marking a cut."""
    if len(text) * 4 <= max_bytes:  # no character takes more than 4 bytes: no need to encode
        return text
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[: max_bytes - len(ELIDED)].decode(errors="ignore") + ELIDED


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


class Unauthenticated(SwitchError):
    """No verified identity where the call needs one (no client certificate)."""

    code = Code.UNAUTHENTICATED


class PermissionDenied(SwitchError):
    """The caller lacks the call's role, or acts for a merchant outside its scope.
    Raised before anything is claimed, counted or sent."""

    code = Code.PERMISSION_DENIED


class EnumerationRefused(PermissionDenied):
    """Too many different card numbers sharing the digits a token shows, from one
    caller: what an enumeration of a token's candidates looks like."""


class RateLimited(SwitchError):
    """The caller is over its rate for this call; retry later."""

    code = Code.RESOURCE_EXHAUSTED


class StartupError(Exception):
    """The configuration is valid but the switch cannot start with it (a store does not
    answer); the message names the setting."""
