"""What the fault suite writes down: the network's operations and the client's calls.

Both are JSON lines, one record a line, so a run can be read back (and checked
again) after the processes are gone. Neither holds a card number: the network
records the masked instrument the switch sends it, the client records keys,
amounts and answers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# What the network did with an operation (NetworkOp.effect).
EXECUTED = "executed"  # an approval that moved (or undid) money at the network
DECLINED = "declined"  # an authorization the network declined: no money
DUPLICATE = "duplicate"  # a resend of a reference already executed: answered again, not executed
REPEATED = "repeated"  # a reversal of a transaction already reversed: acknowledged again
UNMATCHED = "unmatched"  # a reversal of a transaction the network never approved: acknowledged


@dataclass(frozen=True)
class NetworkOp:
    seq: int
    at: float
    kind: str  # authorize | capture | void | refund | reverse
    transaction_id: str
    merchant_id: str
    amount: int  # minor units
    currency: str
    reference: str  # the operation's reference, when the switch sends one
    masked_instrument: str
    response_code: str
    authorization_code: str
    effect: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> NetworkOp:
        return cls(**json.loads(line))


@dataclass(frozen=True)
class Attempt:
    """One gRPC call of an operation: its status and how long it took."""

    code: str  # a grpc.StatusCode name: OK, UNAVAILABLE, ...
    elapsed: float
    at: float  # wall clock when it ended


@dataclass
class ClientOp:
    """One idempotency key: what the client sent under it, every attempt, and the answer."""

    kind: str  # authorize | capture | void | refund
    key: str
    merchant_id: str
    amount: int  # what the network sees: the authorized, captured, voided or refunded minor units
    currency: str
    transaction_id: str  # the transaction operated on; for an authorization, the answer's ("" if none)
    started_at: float
    timeout: float  # each attempt's deadline, seconds
    contended: bool = False  # raced on purpose against another operation of its transaction
    attempts: list[Attempt] = field(default_factory=list)
    # The answer the client was told (an OK status), else None:
    # authorize: {"decision": "approved" | "declined", "response_code", "transaction_id", "replayed"}
    # others:    {"status": "captured" | ..., "captured", "refunded", "replayed"}
    answer: dict[str, Any] | None = None

    @property
    def troubled_at(self) -> float:
        """When its first failed attempt ended (the fault that failed it was on then), or
        when it began if none failed."""
        return next((a.at for a in self.attempts if a.code != "OK"), self.started_at)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> ClientOp:
        raw = json.loads(line)
        raw["attempts"] = [Attempt(**attempt) for attempt in raw["attempts"]]
        return cls(**raw)


def read_network_log(path: Path) -> list[NetworkOp]:
    """The network's log; a torn last line (the process killed mid-write) is ignored."""
    if not path.exists():
        return []
    ops = []
    for line in path.read_text().splitlines():
        try:
            ops.append(NetworkOp.from_json(line))
        except (ValueError, TypeError):
            continue
    return ops


def write_client_log(path: Path, ops: list[ClientOp]) -> None:
    path.write_text("".join(op.to_json() + "\n" for op in ops))


def read_client_log(path: Path) -> list[ClientOp]:
    return [ClientOp.from_json(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = [
    "DECLINED",
    "DUPLICATE",
    "EXECUTED",
    "REPEATED",
    "UNMATCHED",
    "Attempt",
    "ClientOp",
    "NetworkOp",
    "read_client_log",
    "read_network_log",
    "write_client_log",
]
