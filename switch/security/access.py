"""The check every call of the switch's services passes before it does anything:
who is calling (switch.security.identity) and whether its grant has the call's role
(switch.security.policy). The API's decorators run it; the grant it returns rides
with the call (current_grant) for the merchant-scope checks of the handlers."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from switch.domain.errors import PermissionDenied, Unauthenticated
from switch.security.identity import ANONYMOUS, IdentitySource, from_certificate
from switch.security.policy import Grant, Policy, Role

current_grant: ContextVar[Grant] = ContextVar("current_grant")


class Access:
    def __init__(self, policy: Policy, source: IdentitySource, header: str = "") -> None:
        self.policy = policy
        self.source = source
        self.header = header  # the trusted identity header, when source is HEADER

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


def check_merchant(grant: Grant, merchant_id: str) -> None:
    """PermissionDenied when the caller may not act for this merchant."""
    if not grant.may_act_for(merchant_id):
        raise PermissionDenied("this caller may not act for this merchant")
