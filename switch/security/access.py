"""The check every call of the switch's services passes before it does anything:
who is calling (switch.security.identity) and whether its grant has the call's role
(switch.security.policy). The API's decorators run it; the grant it returns rides
with the call (current_grant) for the merchant-scope checks of the handlers.

Refusals go into the audit trail (switch.security.audit.trail) as security events:
noted, and written a moment later in a batch, so a flood of denials costs no
commit each; record() is for the calls whose every outcome must be durable before
the caller hears it (Detokenize)."""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any

from switch.domain.audit import EventKind, SecurityEvent
from switch.domain.errors import (
    EnumerationRefused,
    PermissionDenied,
    RateLimited,
    SwitchError,
    Unauthenticated,
    Unavailable,
)
from switch.security.audit.trail import AuditTrail
from switch.security.identity import ANONYMOUS, IdentitySource, from_certificate
from switch.security.policy import Grant, Policy, Role

current_grant: ContextVar[Grant] = ContextVar("current_grant")


class AuditUnavailable(Unavailable):
    """The audit trail could not be written, so the call was not answered."""


class Access:
    def __init__(
        self, policy: Policy, source: IdentitySource, header: str = "", trail: AuditTrail | None = None
    ) -> None:
        self.policy = policy
        self.source = source
        self.header = header  # the trusted identity header, when source is HEADER
        self.trail = trail  # None: refusals are only logged (a switch always has one)

    def caller(self, context: Any, header_value: str | None) -> str:
        """The call's identity; header_value: the trusted header's, already cleaned."""
        if self.source is IdentitySource.CERTIFICATE:
            identity = from_certificate(context.peer_identities())
            if identity is None:
                raise Unauthenticated("a client certificate is required")
            return identity
        if self.source is IdentitySource.HEADER:
            if not header_value:
                raise Unauthenticated(f"the {self.header} header is required")
            return header_value
        return ANONYMOUS

    def admit(self, caller: str, role: Role) -> Grant:
        """The caller's grant when it holds role; PermissionDenied otherwise."""
        grant = self.policy.grant(caller)
        if grant is None or role not in grant.roles:
            # The caller knows who it is: the message names the role, not the identity.
            raise PermissionDenied(f"this caller may not {role.value}")
        current_grant.set(grant)
        return grant

    def refused(self, caller: str, subject: str, error: SwitchError) -> None:
        """Notes error in the audit trail when it refused the caller (no identity, no
        role or scope, a rate, an enumeration); other errors are not security events."""
        kind = _refusal_kind(error)
        if kind is not None and self.trail is not None:
            self.trail.note(SecurityEvent(kind, caller, error.code.name, subject, error.message, time.time()))

    async def record(self, event: SecurityEvent) -> None:
        """Writes event durably; AuditUnavailable when the trail cannot take it."""
        try:
            if self.trail is None:
                raise LookupError("no audit trail")  # fail closed: an unaudited answer is never sent
            await self.trail.record(event)
        except Exception:
            raise AuditUnavailable("the audit trail is unavailable; nothing was done, retry later") from None


def _refusal_kind(error: SwitchError) -> EventKind | None:
    if isinstance(error, EnumerationRefused):
        return EventKind.ENUMERATION
    if isinstance(error, RateLimited):
        return EventKind.RATE_LIMITED
    if isinstance(error, (PermissionDenied, Unauthenticated)):
        return EventKind.DENIED
    return None


def check_merchant(grant: Grant, merchant_id: str) -> None:
    """PermissionDenied when the caller may not act for this merchant."""
    if not grant.may_act_for(merchant_id):
        raise PermissionDenied("this caller may not act for this merchant")
