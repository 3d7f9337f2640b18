"""Security events: what the audit trail records besides money.

A denial, a detokenization (allowed or not), a refused enumeration, a key
rotation, a configuration or certificate reload: each is one SecurityEvent,
journaled and chained like a journal entry (switch.stores.audit), so that removing
or editing one is as detectable as editing a payment. Events carry identities,
masked instruments and reasons, never a card number or key material.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass


class EventKind(enum.Enum):
    DENIED = "denied"  # no identity, no role, or a merchant outside the caller's scope
    DETOKENIZE = "detokenize"  # every Detokenize call, whatever its outcome
    RATE_LIMITED = "rate_limited"
    ENUMERATION = "enumeration"  # a card-number enumeration refused
    KEYS = "keys"  # a key rotated, or the keys a worker started with
    RELOAD = "reload"  # certificates read again
    HOLDER_TIER = "holder_tier"  # a holder's KYC tier set (SetHolderTier), whatever its outcome
    FRAUD_REPORT = "fraud_report"  # an authorization labelled fraud or not (ReportFraud), whatever its outcome
    MODEL_PROMOTION = "model_promotion"  # a fraud model made the live one (PromoteModel), whatever its outcome


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    kind: EventKind
    caller: str  # the verified identity ("" when the caller had none)
    outcome: str  # "allowed", or the status the caller got ("PERMISSION_DENIED", ...)
    subject: str  # what it was about: the RPC, a token, a key id (never a PAN)
    detail: str  # why, in words (a reason given, the rule that refused)
    created_at: float
    event_id: str = ""

    def __post_init__(self) -> None:
        if not self.event_id:
            object.__setattr__(self, "event_id", "ev_" + secrets.token_hex(12))
