"""What every call of the switch's own services goes through, in one place.

Each call gets a request id (the caller's `x-request-id` metadata, or one made
here) and is admitted, or refused, under its caller's identity and the role the
method needs (switch.security.access: the client certificate's identity with TLS,
a trusted sidecar's header, or the anonymous caller). Id and caller go into every
log line written while the handler runs (switch.telemetry.logs reads them from
switch.telemetry.call_context), and the id goes back to the caller: in the
trailing metadata of a unary call, errors included (it rides with the status,
where initial metadata would cost a message of its own on every call), and in
the initial metadata of a stream. Any exception a unary handler
raises becomes the call's gRPC status here (switch.api.status), and at DEBUG level
each call writes one access line. An id that holds a card number is refused
(INVALID_ARGUMENT naming the header) before it reaches a log line: the call gets
an id made here instead. A request whose bytes did not decode (switch.api.decoding)
is refused here too.

These are decorators on the servicers' methods, not a grpc.aio ServerInterceptor:
an interceptor costs every call a chain of coroutines and a new method handler,
where a decorator, applied once at import, adds one coroutine frame around the
handler: every call pays this, so it must stay the cheaper of the two.
Health checks and reflection, which are not the switch's own, go undecorated.

Refusals (no identity, no role, out of scope, over a rate, an enumeration) are
noted in the audit trail here, once, whichever layer raised them. A method
decorated with audit= is recorded whatever its outcome, durably, before its
answer leaves; when the trail cannot be written, the caller gets UNAVAILABLE
instead of the answer.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc

from switch.api.convert import NO_CARD_NUMBER
from switch.api.decoding import Undecodable
from switch.api.status import as_switch_error, to_grpc_status
from switch.cards.luhn import contains_card_number
from switch.domain.audit import EventKind, SecurityEvent
from switch.domain.errors import InvalidRequest, SwitchError, Violation
from switch.security.access import Access, AuditUnavailable
from switch.security.audit.trail import ALLOWED
from switch.security.policy import Role
from switch.telemetry.call_context import caller_id, request_id

log = logging.getLogger("switch.access")

MAX_ID_LENGTH = 128

Request = TypeVar("Request")
Response = TypeVar("Response")
Context = grpc.aio.ServicerContext[Any, Any]


class Guarded(Protocol):
    """A servicer: it holds the access check its calls pass."""

    access: Access


Servicer = TypeVar("Servicer", bound=Guarded)
Method = Callable[[Servicer, Request, Context], Awaitable[Response]]
StreamMethod = Callable[[Servicer, Request, Context], Awaitable[None]]
# What an audited call was about, for its security event: (subject, detail), never a PAN.
Describe = Callable[[Any], tuple[str, str]]


def unary(
    role: Role, *, audit: tuple[EventKind, Describe] | None = None
) -> Callable[[Method[Servicer, Request, Response]], Method[Servicer, Request, Response]]:
    """A unary handler that needs role: call context, admission, the request id in the
    trailing metadata, and any exception turned into the call's status. audit: record
    every call of it, allowed or not, as an event of that kind before answering."""

    def decorate(method: Method[Servicer, Request, Response]) -> Method[Servicer, Request, Response]:
        name = method.__qualname__

        @functools.wraps(method)
        async def call(self: Servicer, request: Request, context: Context) -> Response:
            identifier, refused = _enter(context, self.access, role)
            context.set_trailing_metadata((("x-request-id", identifier),))
            started = time.perf_counter()
            outcome = "OK"
            try:
                if refused is not None:
                    raise refused
                if isinstance(request, Undecodable):
                    raise request.error()
                response = await method(self, request, context)
                if audit is not None:
                    await _record(self.access, audit, request, ALLOWED, "")
                return response
            except Exception as exc:
                error = as_switch_error(exc)
                if audit is None:
                    self.access.refused(caller_id.get(), name, error)
                elif not isinstance(error, AuditUnavailable):
                    try:
                        await _record(self.access, audit, request, error.code.name, error.message)
                    except AuditUnavailable as unavailable:
                        error = unavailable
                status = to_grpc_status(error)
                outcome = status.code.name
                # Aborting replaces the trailing metadata: keep the request id.
                trailing = (("x-request-id", identifier), *status.trailing_metadata)
                await context.abort(status.code, status.details, trailing)
                raise
            finally:
                _access(name, outcome, started)

        return call

    return decorate


def streaming(role: Role) -> Callable[[StreamMethod[Servicer, Request]], StreamMethod[Servicer, Request]]:
    """A streaming handler that needs role and writes its answers with context.write:
    call context, admission and the request id in the initial metadata. Its items
    carry their own errors."""

    def decorate(method: StreamMethod[Servicer, Request]) -> StreamMethod[Servicer, Request]:
        name = method.__qualname__

        @functools.wraps(method)
        async def call(self: Servicer, requests: Request, context: Context) -> None:
            identifier, refused = _enter(context, self.access, role)
            started = time.perf_counter()
            if refused is not None:
                self.access.refused(caller_id.get(), name, refused)
                status = to_grpc_status(refused)
                _access(name, status.code.name, started)
                trailing = (("x-request-id", identifier), *status.trailing_metadata)
                await context.abort(status.code, status.details, trailing)
            await context.send_initial_metadata((("x-request-id", identifier),))
            outcome = "OK"
            try:
                await method(self, requests, context)
            except BaseException as exc:  # the caller went away (cancelled), or a bug: gRPC ends the stream
                outcome = type(exc).__name__
                raise
            finally:
                _access(name, outcome, started)

        return call

    return decorate


def _enter(context: Context, access: Access, role: Role) -> tuple[str, SwitchError | None]:
    """Sets the call's request id and caller for the handler's log lines and admits the
    caller; returns the id, and the error to answer with instead of running the handler
    (an id holding a card number, no identity, no role)."""
    identifier: str | None = ""
    header: str | None = ""
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and isinstance(value, str):
            identifier = _clean(value)
        elif key == access.header and isinstance(value, str):
            header = _clean(value)
    refused: SwitchError | None = None
    if identifier is None or header is None:
        bad = (("x-request-id", identifier), (access.header, header))
        refused = InvalidRequest([Violation(name, NO_CARD_NUMBER) for name, value in bad if value is None])
    identifier = identifier or os.urandom(16).hex()
    request_id.set(identifier)  # the call runs in a task of its own: these end with it
    if refused is None:
        try:
            caller = access.caller(context, header)
            caller_id.set(caller)
            access.admit(caller, role)
        except SwitchError as error:
            refused = error
    return identifier, refused


async def _record(access: Access, audit: tuple[EventKind, Describe], request: Any, outcome: str, error: str) -> None:
    kind, describe = audit
    subject, detail = describe(request) if not isinstance(request, Undecodable) else ("an undecodable request", "")
    detail = "; ".join(part for part in (detail, error) if part)
    await access.record(SecurityEvent(kind, caller_id.get(), outcome, subject, detail, time.time()))


def _clean(value: str) -> str | None:
    """Ids are echoed and logged: printable ASCII only, bounded; None when one holds a
    card number (looked for in all of it, before it is cut)."""
    if contains_card_number(value):
        return None
    value = value[:MAX_ID_LENGTH]
    return value if value.isascii() and value.isprintable() else ""


def _access(method: str, outcome: str, started: float) -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s %s %.2f ms", method, outcome, (time.perf_counter() - started) * 1000.0)
